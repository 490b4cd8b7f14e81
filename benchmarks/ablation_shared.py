"""The ablation of docs/ablation.md at the largest budget the shared WARCs allow: filters as the demo
configures them vs every filter rule off, on CC-SAMPLE-A-00001 and -00002 (00000 holds the pages of
the default evaluation text, data/eval/), one pass over the filtered run's train split, 3 seeds.

    .venv/bin/python -m benchmarks.ablation_shared [--out .bench/ablation-shared] [--seeds 3]
        [--name ablation] [--set train.KEY=VALUE ...]

docs/ablation.md's two runs: `--seeds 3 --set train.optimizer=adamw` (AdamW, the default then) and
`--seeds 5 --name ablation-muon` (Muon, the default since).

Runs the pipeline (no Prefect: crawl2gpt.runner.run_pipeline) and the ablation library directly,
so a loaded machine's slow Prefect server start cannot fail it; rerunning resumes both. Prints the
table, then the JSON summary as its last line.
"""

from __future__ import annotations

import argparse
import time

from benchmarks.harness import BENCH_DIR, ROOT, SAMPLE_WARCS, print_result, timed
from crawl2gpt.config import RunConfig
from crawl2gpt.runner import run_pipeline
from model.ablation import arms, plan_ablation, run_arm, start, train_settings
from model.ablation_report import finish, text

FILTER_FAMILIES = ("language", "gopher_quality", "gopher_repetition", "c4", "fineweb")
# The demo's shape (configs/ablate-demo.yaml) with half its batch: one pass over ~240k tokens is
# then ~230 steps, not ~115.
TRAIN = ["train.batch_size=8"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(BENCH_DIR / "ablation-shared"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--name", default="ablation", help="the ablation's folder under --out (the curated runs are shared)"
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="train.KEY=VALUE")
    args = parser.parse_args()
    warcs = [str(p) for p in SAMPLE_WARCS[1:]]
    demo = ROOT / "configs" / "demo.yaml"
    variants = {
        "filters-on": [],
        "filters-off": [f"filter.{family}.enabled=false" for family in FILTER_FAMILIES],
    }
    started = time.time()
    for name, overrides in variants.items():
        run_pipeline(warcs, f"{args.out}/{name}", RunConfig.load(str(demo), overrides), until="shards")
    curated = time.time() - started
    cfg, explicit = train_settings(str(ROOT / "configs" / "ablate-demo.yaml"), TRAIN + args.overrides)
    plan = plan_ablation(
        [f"{args.out}/{name}" for name in variants], f"{args.out}/{args.name}", cfg, seeds=args.seeds, explicit=explicit
    )
    start(plan)
    with timed() as clock:
        for label, seed in arms(plan):
            run_arm(plan, label, seed)
    ablation = finish(plan)
    print(text(ablation))
    print_result(
        {
            "curation_s": round(curated, 1),
            "ablation_wall_s": round(clock.wall_s, 1),
            "ablation_cpu_s": round(clock.cpu_s, 1),
            "tokens": plan["tokens"],
            "spread": ablation["spread"],
            "differences": ablation["differences"],
        }
    )


if __name__ == "__main__":
    main()
