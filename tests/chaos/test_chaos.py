"""Crash and rerun: SIGKILL the pipeline inside every stage, rerun, compare with a clean run.

CI form (markers `chaos` + `slow`, in make test-slow: a clean run and seven restarted ones, ~1.5 min
on 2 cores): one kill in each of the six stages of one run on the bundled sample. make test keeps
the pieces: a SIGKILLed training resumes (tests/test_train.py), an interrupted stage leaves nothing
readable (tests/test_stage_contract.py).
Nightly form (`chaos` + `nightly`): four seeded kills per stage (24), on the shared WARCs
when present (three files: the extract pool runs parts in parallel when it is killed).
Figures are written to $CRAWL2GPT_CHAOS_REPORT (JSON) when set, for docs/reliability.md.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from chaos_harness import SMALL, chaos_run, kill_plan, run_to_end, snapshot, stage_seconds

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample" / "CC-SAMPLE-A-00002.warc.gz"
SHARED_WARCS = sorted((ROOT / ".." / "shared" / "data" / "warc").resolve().glob("CC-SAMPLE-A-0000*.warc.gz"))

pytestmark = pytest.mark.chaos


def _report(name: str, figures: dict) -> None:
    path = os.environ.get("CRAWL2GPT_CHAOS_REPORT")
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps({"test": name, **figures}) + "\n")


def _compare(baseline: dict, rerun: dict) -> None:
    for key in baseline:
        assert rerun[key] == baseline[key], f"{key} differs after kill and rerun"


def _check(tmp_path: Path, inputs: list[str], seed: int, per_stage: int, name: str) -> None:
    clean = tmp_path / "clean"
    clean_seconds = run_to_end(clean, inputs, SMALL)
    baseline = snapshot(clean)
    plan = kill_plan(seed, per_stage, stage_seconds(clean))
    log = chaos_run(tmp_path / "killed", inputs, SMALL, plan)
    _compare(baseline, snapshot(tmp_path / "killed"))
    landed = log.landed()
    _report(
        name,
        {
            "seed": seed,
            "planned": len(plan),
            "kills_landed": sum(landed.values()),
            "landed_by_stage": landed,
            "clean_run_s": round(clean_seconds, 1),
            "chaos_run_s": log.seconds,
            "docs": {s: baseline[s]["docs_out"] for s in ("extract", "filter", "dedup")},
            "shards": len(baseline["shards"]),
            "train_steps": len(baseline["train_losses"]),
            "kills": [vars(k) for k in log.kills],
        },
    )
    # Most kills must land inside a stage, not in the gaps between them, or the test tests little.
    assert sum(landed.values()) >= len(plan) - per_stage, log.kills
    assert len([s for s in landed if s != "between"]) >= 5, landed


@pytest.mark.slow
def test_kill_once_in_every_stage_then_rerun_matches_a_clean_run(tmp_path):
    _check(tmp_path, [str(SAMPLE)], seed=10, per_stage=1, name="chaos_ci")


@pytest.mark.nightly
def test_24_seeded_kills_then_rerun_matches_a_clean_run(tmp_path):
    inputs = [str(p) for p in SHARED_WARCS] or [str(SAMPLE)]
    _check(tmp_path, inputs, seed=2024, per_stage=4, name="chaos_nightly")
