"""One Prefect flow per stage, each runnable alone on an existing input folder.

`crawl2gpt stage filter --input runs/x/extract --output runs/x/filter` and a UI run of the
`filter` deployment both land here; the end-to-end flow calls these same flows as subflows.
"""
from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from flows.artifacts import publish_stage
from flows.parts import prefect_map
from pipeline.config import RunConfig
from pipeline.run import load_stage, stage_options
from pipeline.stage import StageStats, run_stage


def load_config(config_path: str | None, overrides: list[str] | None) -> RunConfig:
    return RunConfig.load(config_path, overrides or [])


def execute_stage(name: str, inputs: list[str], output: str, cfg: RunConfig, force: bool) -> StageStats:
    """Run a stage with one Prefect task per part, then publish its stats."""
    logger = get_run_logger()
    stats = run_stage(
        load_stage(name),
        inputs,
        Path(output),
        cfg,
        force=force,
        map_parts=prefect_map(name, cfg),
        **stage_options(name),
    )
    logger.info(stats.summary())
    publish_stage(stats, cfg.name)
    publish_extras(name, stats, cfg)
    return stats


def publish_extras(name: str, stats: StageStats, cfg: RunConfig) -> None:
    """Stage-specific artifacts: the shard quality report and the loss curve."""
    from flows.reports import publish_shard_report, publish_training

    if name == "shards":
        publish_shard_report(Path(stats.output), cfg.name)
    elif name == "train":
        publish_training(Path(stats.output), cfg.name)


def run_name(prefix: str, parameter: str, up: int = 0):
    """Flow run names such as `filter-demo`: the stage and the run folder's name, not a full path."""

    def name() -> str:
        from prefect.runtime import flow_run

        path = Path(str(flow_run.parameters.get(parameter, "run")))
        for _ in range(up):
            path = path.parent
        return f"{prefix}-{path.name or 'run'}"

    return name


def _stage_flow(name: str, description: str):
    @flow(name=name, flow_run_name=run_name(name, "output", up=1), description=description, log_prints=True)
    def stage_flow(
        inputs: list[str],
        output: str,
        config_path: str | None = None,
        overrides: list[str] | None = None,
        force: bool = False,
    ) -> dict:
        """Run one stage of crawl2gpt on existing inputs.

        Args:
            inputs: WARC files, folders, globs or URLs for extract; the previous stage's folder(s) otherwise (shards takes the dedup and tokenizer folders).
            output: The folder this stage writes (e.g. runs/demo/filter).
            config_path: A YAML config file; empty means the published defaults.
            overrides: Config overrides as section.key=value, e.g. filter.language.min_score=0.7.
            force: Rerun even when the output's manifest says it is up to date.
        """
        cfg = load_config(config_path, overrides)
        return execute_stage(name, inputs, output, cfg, force).to_dict()

    stage_flow.__name__ = f"{name}_flow"
    return stage_flow


extract_flow = _stage_flow("extract", "WARC files -> extracted, normalized documents (Parquet, one part per file).")
filter_flow = _stage_flow("filter", "Documents -> documents kept by language, Gopher, C4 and FineWeb rules (+ rejects/).")
dedup_flow = _stage_flow("dedup", "Documents -> exact and MinHash-LSH near-duplicates removed (+ rejects/).")
tokenizer_flow = _stage_flow("tokenizer", "Deduplicated documents -> a SentencePiece BPE tokenizer.")
shards_flow = _stage_flow("shards", "Documents + tokenizer -> Parquet token shards, manifest and quality report.")
train_flow = _stage_flow("train", "Token shards -> a GPT trained from scratch (checkpoints, metrics, samples).")

STAGE_FLOWS = {
    "extract": extract_flow,
    "filter": filter_flow,
    "dedup": dedup_flow,
    "tokenizer": tokenizer_flow,
    "shards": shards_flow,
    "train": train_flow,
}
