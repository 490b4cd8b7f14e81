"""The `train` stage and its torchrun launcher.

TrainStage      inputs = [a shards folder]; one part, the run; writes in place (atomic=False)
                so that a crashed run resumes from its checkpoints
launch_torchrun train.nproc_per_node > 1: `python -m model.train` (its `main`) under torchrun,
                DDP or FSDP2; a rank's error (a damaged shard, a full disk, ...) is raised here
                as itself (model/distributed.py rank_error), so the user reads one message, not
                torchrun's traceback of every rank
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from model import distributed, preflight
from model.config import ModelRun
from model.train import train
from pipeline.errors import InputError
from pipeline.stage import PartResult, Stage, StageStats


class TrainStage(Stage):
    """Stage `train`: inputs = [shards folder]; one part (the run); writes in place (atomic=False)."""

    name = "train"
    config_sections = ("train",)
    NOT_IN_KEY = ("profile_steps",)  # a trace changes no weight: turning it on must not retrain

    def config_slice(self, cfg: ModelRun) -> dict[str, Any]:
        section = cfg.train.model_dump(mode="json")
        return {"train": {k: v for k, v in section.items() if k not in self.NOT_IN_KEY}}

    def check_inputs(self, inputs: Sequence[str], cfg: ModelRun) -> None:
        """One shards folder that can be trained on as configured, by the ranks the stage will
        launch: `crawl2gpt train` checks it before Prefect starts, the plan before torchrun does."""
        if len(inputs) != 1:
            raise InputError(f"train takes one shards folder, got {len(inputs)} inputs: {list(inputs)}")
        preflight.check_run(inputs[0], cfg.train, world_size=cfg.train.nproc_per_node)

    def plan(self, inputs: Sequence[str], cfg: ModelRun) -> list[str]:
        self.check_inputs(inputs, cfg)
        return [str(inputs[0])]

    def run_part(self, part: str, workdir: Path, cfg: ModelRun) -> PartResult:
        started = time.time()
        if cfg.train.nproc_per_node > 1 and "RANK" not in os.environ:
            summary = launch_torchrun(part, workdir, cfg)
        else:
            summary = train(part, workdir, cfg.train, progress=sys.stderr.isatty())
        outputs = ["metrics.jsonl", "loss.png", "checkpoints"]
        counts = {"steps": summary["steps"], "tokens": summary["tokens_seen"]}
        return PartResult(
            part=part, outputs=outputs, counts=counts, seconds=round(time.time() - started, 3), meta=summary
        )

    def finish(self, workdir: Path, results: list[PartResult], cfg: ModelRun) -> StageStats:
        summary = results[0].meta
        return StageStats(stage=self.name, docs_in=summary["tokens_seen"], docs_out=summary["steps"], extra=summary)


TRAIN = TrainStage()


def launch_torchrun(shards_dir: str, out_dir: Path, cfg: ModelRun) -> dict[str, Any]:
    """Train with `cfg.train.nproc_per_node` processes under torchrun (DDP or FSDP2), so a flow
    or `crawl2gpt train` uses every GPU of its machine. Rank 0 prints the summary last."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config_path = out_dir / "train-config.yaml"  # the exact config the ranks use, kept beside the outputs
    cfg.write(config_path)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={cfg.train.nproc_per_node}",
        "-m",
        "model.train",
        "--shards",
        str(shards_dir),
        "--out",
        str(out_dir),
        "--config",
        str(config_path),
        "--quiet",
    ]
    root = str(Path(__file__).resolve().parents[1])  # the ranks import this checkout's packages
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        failed = (
            f"torchrun with {cfg.train.nproc_per_node} processes failed (exit {done.returncode}):\n"
            f"{done.stderr[-4000:]}"
        )
        raise distributed.rank_error(done.stderr) or RuntimeError(failed)
    return json.loads(done.stdout.strip().splitlines()[-1])
