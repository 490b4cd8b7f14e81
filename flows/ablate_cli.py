"""`crawl2gpt ablate RUN_A RUN_B [...] --eval TEXT --out DIR`: its arguments and what it runs (the
`ablate` flow, flows/ablate.py). Kept apart from the flow so that the CLI imports Prefect only for
the commands that run a flow."""

from __future__ import annotations

import argparse
from pathlib import Path

from flows.config_args import add_config_args
from flows.watch import checks_passed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "runs",
        nargs="+",
        metavar="RUN",
        help="run folders (their shards/) or shards folders; the first is the baseline",
    )
    parser.add_argument(
        "--eval",
        dest="eval_path",
        metavar="TEXT",
        help="common evaluation text: text, JSONL or Parquet documents (default data/eval/web-main-text.jsonl)",
    )
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="the ablation's folder; the same command resumes it"
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds per run (default 3)")
    parser.add_argument("--tokens", type=int, help="training tokens per arm (default: one pass over the smallest run)")
    add_config_args(
        parser,
        config_help="YAML whose train section sets the GPT shape and schedule",
        set_help="override a train setting, e.g. --set train.device=cuda (repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    from model.ablation import plan_ablation, train_settings
    from model.ablation_report import text

    cfg, explicit = train_settings(args.config, args.overrides)
    # every check before Prefect starts: a bad run folder, text or budget fails in a second
    budget = dict(eval_path=args.eval_path, seeds=args.seeds, tokens=args.tokens)
    plan_ablation(args.runs, args.out, cfg, **budget, explicit=explicit)
    checks_passed(args)  # from here on an error's traceback goes to the ablation's folder
    from flows.ablate import ablate_flow

    ablation = ablate_flow(runs=args.runs, output=args.out, **budget, config_path=args.config, overrides=args.overrides)
    print(text(ablation))
    print(f"\nablation page: {Path(ablation['plan']['out']) / 'ablation.html'}")
    return 0
