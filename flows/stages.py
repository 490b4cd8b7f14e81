"""One Prefect flow per stage, each runnable alone on an existing input folder.

`crawl2gpt stage filter --input runs/x/extract --output runs/x/filter` and a UI run of the
`filter` deployment both land here; the end-to-end flow calls these same flows as subflows.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from crawl2gpt.config import RunConfig
from crawl2gpt.stages import load_stage, stage_options
from flows.artifacts import publish_stage
from flows.parts import prefect_map
from flows.server_lost import reported_as_server_lost
from pipeline.empty_output import describe_empty, empty_cause
from pipeline.run_lock import run_lock
from pipeline.stage import StageStats, run_stage


def load_config(config_path: str | None, overrides: list[str] | None) -> RunConfig:
    return RunConfig.load(config_path, overrides or [])


def execute_stage(name: str, inputs: list[str], output: str, cfg: RunConfig, force: bool) -> StageStats:
    """Run a stage with one Prefect task per part, then publish its stats."""
    logger = get_run_logger()
    # A stage flow started alone (the UI's per-stage deployments) locks its run folder like `crawl2gpt stage`;
    # under the pipeline flow this process already holds that lock and takes it again.
    with reported_as_server_lost(name), run_lock(Path(output).parent):
        with prefect_map(name, cfg) as map_parts:  # one task runner for all of the stage's map phases
            stats = run_stage(
                load_stage(name), inputs, Path(output), cfg, force=force, map_parts=map_parts, **stage_options(name)
            )
        logger.info(stats.summary())
        if stats.docs_out == 0 and name != "train":
            # Valid (the next stage reads it as 0 documents), but rarely what the user wanted:
            # say where the documents were lost, which may be a stage upstream of this one.
            what, _ = empty_cause([stats.output]) or (describe_empty(stats.to_dict()), "")
            logger.warning("%s wrote an empty output: %s", name, what)
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


# One plain `def` per stage (not a factory): deployments and `prefect deploy` find a flow by
# reading its module's source, and the UI's form takes each parameter's text from the docstring.


@flow(
    name="extract",
    flow_run_name=run_name("extract", "output", up=1),
    log_prints=True,
    description="WARC files -> extracted, normalized documents (Parquet, one part per file).",
)
def extract_flow(
    inputs: list[str],
    output: str,
    config_path: str | None = None,
    overrides: list[str] | None = None,
    force: bool = False,
) -> dict:
    """Run the extract stage on existing inputs.

    Args:
        inputs: WARC files, folders, globs, http(s):// or s3:// URLs.
        output: The folder this stage writes, e.g. runs/demo/extract.
        config_path: A YAML config file; empty means the published defaults.
        overrides: Config overrides as section.key=value, e.g. train.max_steps=100.
        force: Rerun even when the output's manifest says it is up to date.
    """
    return execute_stage("extract", inputs, output, load_config(config_path, overrides), force).to_dict()


@flow(
    name="filter",
    flow_run_name=run_name("filter", "output", up=1),
    log_prints=True,
    description="Documents -> documents kept by language, Gopher, C4 and FineWeb rules (+ rejects/).",
)
def filter_flow(
    inputs: list[str],
    output: str,
    config_path: str | None = None,
    overrides: list[str] | None = None,
    force: bool = False,
) -> dict:
    """Run the filter stage on existing inputs.

    Args:
        inputs: The extract folder(s), e.g. runs/demo/extract.
        output: The folder this stage writes, e.g. runs/demo/filter.
        config_path: A YAML config file; empty means the published defaults.
        overrides: Config overrides as section.key=value, e.g. train.max_steps=100.
        force: Rerun even when the output's manifest says it is up to date.
    """
    return execute_stage("filter", inputs, output, load_config(config_path, overrides), force).to_dict()


@flow(
    name="dedup",
    flow_run_name=run_name("dedup", "output", up=1),
    log_prints=True,
    description="Documents -> exact and MinHash-LSH near-duplicates removed (+ rejects/).",
)
def dedup_flow(
    inputs: list[str],
    output: str,
    config_path: str | None = None,
    overrides: list[str] | None = None,
    force: bool = False,
) -> dict:
    """Run the dedup stage on existing inputs.

    Args:
        inputs: The filter folder(s), e.g. runs/demo/filter.
        output: The folder this stage writes, e.g. runs/demo/dedup.
        config_path: A YAML config file; empty means the published defaults.
        overrides: Config overrides as section.key=value, e.g. train.max_steps=100.
        force: Rerun even when the output's manifest says it is up to date.
    """
    return execute_stage("dedup", inputs, output, load_config(config_path, overrides), force).to_dict()


@flow(
    name="tokenizer",
    flow_run_name=run_name("tokenizer", "output", up=1),
    log_prints=True,
    description="Deduplicated documents -> a SentencePiece BPE tokenizer.",
)
def tokenizer_flow(
    inputs: list[str],
    output: str,
    config_path: str | None = None,
    overrides: list[str] | None = None,
    force: bool = False,
) -> dict:
    """Run the tokenizer stage on existing inputs.

    Args:
        inputs: The dedup folder(s), e.g. runs/demo/dedup.
        output: The folder this stage writes, e.g. runs/demo/tokenizer.
        config_path: A YAML config file; empty means the published defaults.
        overrides: Config overrides as section.key=value, e.g. train.max_steps=100.
        force: Rerun even when the output's manifest says it is up to date.
    """
    return execute_stage("tokenizer", inputs, output, load_config(config_path, overrides), force).to_dict()


@flow(
    name="shards",
    flow_run_name=run_name("shards", "output", up=1),
    log_prints=True,
    description="Documents + tokenizer -> Parquet token shards, manifest and quality report.",
)
def shards_flow(
    inputs: list[str],
    output: str,
    config_path: str | None = None,
    overrides: list[str] | None = None,
    force: bool = False,
) -> dict:
    """Run the shards stage on existing inputs.

    Args:
        inputs: The dedup folder(s) and the tokenizer folder, e.g. runs/demo/dedup runs/demo/tokenizer.
        output: The folder this stage writes, e.g. runs/demo/shards.
        config_path: A YAML config file; empty means the published defaults.
        overrides: Config overrides as section.key=value, e.g. train.max_steps=100.
        force: Rerun even when the output's manifest says it is up to date.
    """
    return execute_stage("shards", inputs, output, load_config(config_path, overrides), force).to_dict()


@flow(
    name="train",
    flow_run_name=run_name("train", "output", up=1),
    log_prints=True,
    description="Token shards -> a GPT trained from scratch (checkpoints, metrics, samples).",
)
def train_flow(
    inputs: list[str],
    output: str,
    config_path: str | None = None,
    overrides: list[str] | None = None,
    force: bool = False,
) -> dict:
    """Run the train stage on existing inputs.

    Args:
        inputs: The shards folder, e.g. runs/demo/shards.
        output: The folder this stage writes, e.g. runs/demo/train.
        config_path: A YAML config file; empty means the published defaults.
        overrides: Config overrides as section.key=value, e.g. train.max_steps=100.
        force: Rerun even when the output's manifest says it is up to date.
    """
    return execute_stage("train", inputs, output, load_config(config_path, overrides), force).to_dict()


STAGE_FLOWS = {
    "extract": extract_flow,
    "filter": filter_flow,
    "dedup": dedup_flow,
    "tokenizer": tokenizer_flow,
    "shards": shards_flow,
    "train": train_flow,
}
