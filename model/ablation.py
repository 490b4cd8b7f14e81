"""`crawl2gpt ablate RUN_A RUN_B [...]`: does a curation choice make a better model?

FineWeb and DCLM decide every filter by training small models on each variant of the data and
comparing them. Here each run's shards (its curation as it is: nothing upstream reruns) train the
same GPT shape for the same number of tokens with the same seeds, each run with its own tokenizer;
every model is then measured in bits per byte (model/bits_per_byte.py), which does not depend on
the tokenizer, on

  - one common evaluation text (`--eval`; by default data/eval/web-main-text.jsonl), tokenized by
    each run's tokenizer: the same bytes for every model, so the one figure that compares them;
  - each run's own validation split (differs between runs: a filter changes what is in it).

  plan_ablation   check everything before any training: runs, shards with byte counts, the
                  evaluation text, the token budget and the shape; fix the steps and seeds
  run_arm         train one (run, seed) in OUT/arms/RUN/seed-S (the trainer resumes from its
                  checkpoints there), measure it, write its result.json last
  finish          ablation.json, the table, learning curves and a page (model/ablation_report.py)

Resumable: OUT/plan.json pins the plan; the same command again skips every arm with a
result.json and resumes the others from their checkpoints, so a killed ablation loses at most
the steps since an arm's last checkpoint. More --seeds extend a finished ablation (its arms
stay); any other change (other shards, settings or text) is refused rather than mixed with the
old arms.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.config import TrainConfig
from pipeline.atomic import atomic_write_text
from pipeline.document_texts import read_texts
from pipeline.errors import ConfigError, InputError
from pipeline.shard_format import MANIFEST_JSON, load_manifest
from pipeline.stage import sha256_file

log = logging.getLogger("crawl2gpt.ablate")

DEFAULT_EVAL = Path(__file__).resolve().parents[1] / "data" / "eval" / "web-main-text.jsonl"
PLAN = "plan.json"
RESULT = "result.json"
CURVE_POINTS = 6  # evaluations per arm unless train.eval_interval is set
METRICS = ("eval_bpb", "val_bpb")


@dataclass(frozen=True)
class RunSource:
    label: str
    shards: Path


def resolve_runs(specs: Sequence[str | Path]) -> list[RunSource]:
    """Each RUN: a run folder (its shards/ is used) or a shards folder; labels are the run folders'
    names, made unique with a number when two are alike."""
    if len(specs) < 2:
        raise InputError(f"an ablation compares runs: give at least two, got {len(specs)}")
    sources, seen = [], {}
    for spec in specs:
        path = Path(spec).expanduser()
        shards = path / "shards" if (path / "shards" / MANIFEST_JSON).is_file() else path
        if not (shards / MANIFEST_JSON).is_file():
            raise InputError(
                f"{spec} is neither a run folder with a finished shards/ nor a shards folder; "
                f"run the pipeline there (crawl2gpt run --until shards)"
            )
        name = (shards.parent if shards.name == "shards" else shards).resolve().name
        seen[name] = seen.get(name, 0) + 1
        sources.append(RunSource(name if seen[name] == 1 else f"{name}-{seen[name]}", shards.resolve()))
    return sources


def train_settings(config_path: str | None, overrides: Sequence[str]) -> tuple[TrainConfig, list[str]]:
    """The train section of `config_path` with `overrides` (train.* only: the runs' curation is
    what is compared), and the keys the overrides set."""
    from model.config import ModelSections

    foreign = [o for o in overrides if not o.startswith("train.")]
    if foreign:
        raise ConfigError(f"ablate takes train.* settings only (the runs' curation is what is compared): {foreign}")
    explicit = [o.split("=", 1)[0].removeprefix("train.") for o in overrides]
    return ModelSections.load(config_path, list(overrides)).train, explicit


def _budget(cfg: TrainConfig, tokens: int | None, manifests: dict[str, dict]) -> tuple[int, int]:
    """(steps, tokens per step). The default budget is one pass over the smallest run's train split,
    so no run sees a token twice."""
    per_step = cfg.batch_size * cfg.block_size * cfg.grad_accum_steps
    if tokens is None:
        tokens = min(m["totals"]["train"]["tokens"] for m in manifests.values())
    steps = tokens // per_step
    if steps < 1:
        raise ConfigError(
            f"--tokens {tokens:,} is less than one step ({per_step:,} tokens: train.batch_size x "
            "block_size x grad_accum_steps); give more tokens or a smaller batch"
        )
    return steps, per_step


def plan_ablation(
    runs: Sequence[str | Path],
    out: str | Path,
    cfg: TrainConfig,
    *,
    eval_path: str | Path | None = None,
    seeds: int = 3,
    tokens: int | None = None,
    explicit: Sequence[str] = (),
) -> dict[str, Any]:
    """Check the inputs and settings and fix the plan (written to OUT/plan.json by `start`).

    `explicit` names the train.* keys the user set: the eval and checkpoint intervals and the
    generated sample are chosen for the ablation only where the user did not choose them."""
    from model import preflight

    if seeds < 1:
        raise ConfigError(f"--seeds {seeds}: give at least 1 (3 or more to measure the noise)")
    sources = resolve_runs(runs)
    manifests = {s.label: load_manifest(s.shards) for s in sources}
    for source in sources:
        if not manifests[source.label].get("totals", {}).get("train", {}).get("bytes"):
            raise InputError(
                f"{source.shards}/{MANIFEST_JSON} has no byte counts (written before the shards stage "
                f"counted them): rerun that stage, e.g. crawl2gpt run ... --force shards"
            )
    eval_path = Path(eval_path or DEFAULT_EVAL).expanduser()
    texts = read_texts([eval_path])
    if not texts:
        raise InputError(f"--eval {eval_path} holds no text; give text, JSONL or Parquet documents")
    steps, per_step = _budget(cfg, tokens, manifests)
    interval = cfg.eval_interval if "eval_interval" in explicit else max(1, steps // CURVE_POINTS)
    settings = cfg.model_copy(
        update={
            "max_steps": steps,
            "eval_interval": interval,
            "checkpoint_interval": cfg.checkpoint_interval if "checkpoint_interval" in explicit else interval,
            "sample_tokens": cfg.sample_tokens if "sample_tokens" in explicit else 0,
            "warmup_steps": min(cfg.warmup_steps, max(0, steps - 1)),
            "nproc_per_node": 1,  # one process per arm
        }
    )
    settings = TrainConfig.model_validate(settings.model_dump())  # the consistency checks, on the final values
    for source in sources:
        preflight.check_run(source.shards, settings, world_size=1)
    return {
        "runs": [
            {
                "label": s.label,
                "shards": str(s.shards),
                "manifest_sha256": sha256_file(s.shards / MANIFEST_JSON),
                "train_tokens": manifests[s.label]["totals"]["train"]["tokens"],
            }
            for s in sources
        ],
        "eval": {
            "path": str(eval_path.resolve()),
            "documents": len(texts),
            "bytes": sum(len(t.encode("utf-8")) for t in texts),
            "sha256": hashlib.sha256("\x00".join(texts).encode()).hexdigest(),
        },
        "seeds": [settings.seed + i for i in range(seeds)],
        "tokens": steps * per_step,
        "tokens_per_step": per_step,
        "train": settings.model_dump(mode="json"),
        "out": str(Path(out).resolve()),
    }


def start(plan: dict[str, Any]) -> None:
    """Write OUT/plan.json, or check that the one there is this plan (a resumed ablation). More
    seeds than before are the one change accepted: the finished arms stay valid, and adding seeds
    is how a difference within noise gets resolved."""
    out = Path(plan["out"])
    path = out / PLAN
    if path.is_file():
        before = json.loads(path.read_text())
        if before == plan:
            return
        changed = sorted(k for k in plan if before.get(k) != plan[k])
        if changed != ["seeds"] or plan["seeds"][: len(before["seeds"])] != before["seeds"]:
            raise ConfigError(
                f"{out} holds an ablation with other {', '.join(changed)}: give another --out, or "
                f"delete {out} to start over (only --seeds may grow)"
            )
        log.info("%s: seeds %s added to the ablation", out, plan["seeds"][len(before["seeds"]) :])
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(plan, indent=2) + "\n")


def arms(plan: dict[str, Any]) -> list[tuple[str, int]]:
    """Every (run label, seed), seed-major: a killed ablation has then finished whole seeds of
    every run, not every seed of the first run."""
    return [(run["label"], seed) for seed in plan["seeds"] for run in plan["runs"]]


def arm_dir(plan: dict[str, Any], label: str, seed: int) -> Path:
    return Path(plan["out"]) / "arms" / label / f"seed-{seed}"


def read_result(plan: dict[str, Any], label: str, seed: int) -> dict[str, Any] | None:
    path = arm_dir(plan, label, seed) / RESULT
    return json.loads(path.read_text()) if path.is_file() else None


def run_arm(plan: dict[str, Any], label: str, seed: int, progress: bool = False) -> dict[str, Any]:
    """Train and measure one arm, or return its result when it has one."""
    from model.ablation_eval import encode_texts, split_text, text_bpb
    from model.tokenizer import shards_tokenizer
    from model.train import train
    from model.training import load_model, pick_device, read_metrics

    done = read_result(plan, label, seed)
    if done is not None:
        return done
    run = next(r for r in plan["runs"] if r["label"] == label)
    shards, folder = Path(run["shards"]), arm_dir(plan, label, seed)
    cfg = TrainConfig.model_validate({**plan["train"], "seed": seed})
    manifest = load_manifest(shards)
    eval_text = encode_texts(read_texts([plan["eval"]["path"]]), shards_tokenizer(shards, manifest), manifest["eot_id"])
    device = pick_device(cfg.device)

    def measure(step: int, model) -> dict[str, float]:
        return {"eval_bpb": text_bpb(model, eval_text, cfg.block_size, cfg.batch_size, device)}

    started = time.time()
    log.info("ablation arm %s seed %d: %d steps in %s", label, seed, cfg.max_steps, folder)
    summary = train(shards, folder, cfg, progress=progress, on_eval=measure)
    model, _, _ = load_model(folder, device)  # the last checkpoint: the weights at max_steps
    val = split_text(shards, manifest, "val")
    result = {
        "run": label,
        "seed": seed,
        "steps": summary["steps"],
        "tokens": summary["tokens_seen"],
        "params": summary["params"],
        "final_train_loss": summary["final_train_loss"],
        "eval_bpb": text_bpb(model, eval_text, cfg.block_size, cfg.batch_size, device),
        "val_bpb": text_bpb(model, val, cfg.block_size, cfg.batch_size, device) if val else None,
        "curve": [
            {
                "step": r["step"],
                "tokens": r["step"] * plan["tokens_per_step"],
                "eval_bpb": r.get("eval_bpb"),
                "val_bpb": r.get("val_bpb"),
            }
            for r in read_metrics(folder)
            if "eval_bpb" in r
        ],
        "device": device,
        "seconds": round(time.time() - started, 1),
    }
    atomic_write_text(folder / RESULT, json.dumps(result, indent=2) + "\n")  # last: the arm is done
    return result
