"""`crawl2gpt`: run the whole DAG, one stage, training, generation or a report.

Every command that does work goes through a Prefect flow, so it shows up in the UI when
PREFECT_API_URL points at a server (an ephemeral local API is used otherwise).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from crawl2gpt.stages import STAGES
from flows import ablate_cli, dedup_clean, quality
from flows.config_args import add_config_args
from flows.failures import exit_cleanly_on_sigterm, prepare_environment, report_error
from flows.watch import WATCHED_COMMANDS, ServerWatch, checks_passed
from model import generate_args
from pipeline.errors import Crawl2GPTError, RunLockedError

VERBOSE_HELP = (
    "print the Python traceback of an error (run, stage and train write it to RUN/crawl2gpt-error.log "
    "once their checks before the first stage have passed)"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crawl2gpt", description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the whole DAG: extract -> filter -> dedup -> tokenizer -> shards -> train")
    run.add_argument(
        "--input",
        nargs="*",
        default=[],
        metavar="PATH_OR_URL",
        help="WARC files, folders, globs, http(s):// or s3:// URLs",
    )
    run.add_argument(
        "--crawl", metavar="CRAWL_ID", help="a Common Crawl crawl id, e.g. CC-MAIN-2024-22 (reads its warc.paths.gz)"
    )
    run.add_argument("--max-files", type=int, metavar="N", help="with --crawl: how many WARC files to take")
    run.add_argument(
        "--base-url", default="https://data.commoncrawl.org/", help="with --crawl: where crawl-data/ lives"
    )
    run.add_argument("--workdir", required=True, metavar="DIR", help="the run folder (one sub-folder per stage)")
    run.add_argument(
        "--force", metavar="STAGE", choices=[*STAGES, "all"], help="rerun this stage and every stage after it"
    )
    run.add_argument("--until", metavar="STAGE", choices=STAGES, default="train", help="stop after this stage")
    add_config_args(run)

    stage = sub.add_parser("stage", help="run one stage on an existing input folder")
    stage.add_argument("name", choices=STAGES)
    stage.add_argument(
        "--input",
        nargs="+",
        required=True,
        metavar="PATH",
        help="the previous stage's folder(s); WARC inputs for extract",
    )
    stage.add_argument("--output", required=True, metavar="DIR")
    stage.add_argument("--force", action="store_true", help="rerun even if the output's manifest is up to date")
    add_config_args(stage)

    train = sub.add_parser("train", help="train the GPT on a shards folder (same as `stage train`)")
    train.add_argument("--shards", required=True, metavar="DIR")
    train.add_argument("--output", required=True, metavar="DIR")
    train.add_argument("--force", action="store_true")
    add_config_args(train)

    generate_args.add_arguments(sub.add_parser("generate", help="generate text from a checkpoint"))

    ft = sub.add_parser(
        "finetune", help="fine-tune a checkpoint: instructions (sft) or a classification head (classify)"
    )
    ft_sub = ft.add_subparsers(dest="mode", required=True)
    sft = ft_sub.add_parser(
        "sft",
        help="instruction tuning with the prompt masked out of the loss "
        "(LoRA adapters with --set finetune.method=lora)",
    )
    sft.add_argument("--base", required=True, help="our train folder/checkpoint, or a local GPT-2 folder")
    sft.add_argument(
        "--data",
        required=True,
        help="JSONL (Alpaca instruction/input/output or chat messages), "
        "or a document stage folder to derive pairs from",
    )
    sft.add_argument("--output", required=True, metavar="DIR")
    add_config_args(sft)
    cls = ft_sub.add_parser("classify", help="replace the LM head by a classification head")
    cls.add_argument("--base", required=True, help="our train folder/checkpoint")
    cls.add_argument(
        "--data",
        required=True,
        help='TSV (label<TAB>text), JSONL ({"text": ..., "label": ...}), or a filter folder (keep/drop labels)',
    )
    cls.add_argument("--output", required=True, metavar="DIR")
    cls.add_argument(
        "--label-column",
        default="keep_drop",
        metavar="COLUMN",
        help="with a filter folder as --data: keep_drop labels kept documents 'keep' and rejects 'drop'; "
        "another column (e.g. language) labels every document, kept or rejected, by its value. "
        "TSV and JSONL carry their own labels",
    )
    add_config_args(cls)

    srv = sub.add_parser(
        "serve", help="register deployments (pipeline on a schedule, each stage) and run what the UI starts"
    )
    srv.add_argument(
        "--workdir", default="runs/scheduled", metavar="DIR", help="the run folder the deployments use by default"
    )
    srv.add_argument("--cron", default="0 3 * * *", help="schedule of the pipeline deployment ('' for none)")
    srv.add_argument(
        "--input", nargs="*", default=None, metavar="PATH_OR_URL", help="default inputs (the bundled sample)"
    )
    srv.add_argument(
        "--limit",
        type=int,
        default=None,
        metavar="N",
        help="run at most N flow runs at once; the others wait, Scheduled, for a free slot (default: one per CPU "
        "core, which fits runs of workers=1; for large runs whose stages use every core, 1)",
    )

    report = sub.add_parser(
        "report", help="print a run's quality summary and the report page's path, or compare two runs"
    )
    report.add_argument("run_dir", metavar="RUN_DIR", nargs="?")
    report.add_argument(
        "--compare",
        nargs=2,
        metavar=("RUN_A", "RUN_B"),
        help="write a page of the documents one run kept and the other dropped, per stage, with both reasons",
    )
    report.add_argument(
        "--output", metavar="DIR", help="with --compare: where the page goes (default RUN_B/compare-<RUN_A>)"
    )

    dedup_clean.add_arguments(
        sub.add_parser(
            "dedup-clean",
            help="delete the Redis keys (dedup.backend=redis) of dedup runs that were killed and will not be rerun",
        )
    )
    ablate_cli.add_arguments(
        sub.add_parser(
            "ablate",
            help="train the same GPT on each run's shards (same tokens, seeds) and compare them in bits per byte",
        )
    )
    quality.add_arguments(
        sub.add_parser(
            "quality",
            help="train a fastText quality classifier for filter.quality_model "
            "(quality train --positive --negative --out)",
        )
    )

    exp = sub.add_parser(
        "export", help="write a checkpoint as a Hugging Face folder (GPT-2 or Llama shape) that transformers loads"
    )
    exp.add_argument(
        "--ckpt", required=True, metavar="PATH", help="a train folder, its checkpoints/ folder or one checkpoint"
    )
    exp.add_argument(
        "--output",
        required=True,
        metavar="DIR",
        help="folder to write: config.json, model.safetensors, tokenizer.json, ...",
    )
    exp.add_argument("--force", action="store_true", help="replace DIR if it exists")
    _verbose_everywhere(sub)
    return parser


def _verbose_everywhere(sub: argparse._SubParsersAction) -> None:
    """`crawl2gpt run ... --verbose` works as well as `crawl2gpt --verbose run ...`."""
    for parser in sub.choices.values():
        # SUPPRESS: when absent after the subcommand, the global flag's value stands.
        parser.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                _verbose_everywhere(action)


def cmd_run(args: argparse.Namespace) -> int:
    from crawl2gpt.config import RunConfig
    from crawl2gpt.runner import check_run
    from pipeline.extract.sources import resolve_inputs

    cfg = RunConfig.load(args.config, args.overrides)  # fail on a bad config before any work starts
    if not args.input and not args.crawl:
        raise SystemExit("crawl2gpt run: give --input PATH_OR_URL... or --crawl CRAWL_ID")
    inputs = resolve_inputs(args.input, crawl=args.crawl, max_files=args.max_files, base_url=args.base_url)
    check_run(inputs, args.workdir, cfg, args.until)  # bad paths and settings fail here, before Prefect starts

    from flows.dag import pipeline_flow
    from flows.summary import print_run_summary
    from pipeline.run_lock import run_lock

    # a second run on this folder stops here, before Prefect starts (the flow re-enters the lock)
    with run_lock(args.workdir):
        checks_passed(args)  # from here on an error's traceback goes to the run folder
        results = pipeline_flow(
            inputs=inputs,
            workdir=args.workdir,
            config_path=args.config,
            overrides=args.overrides,
            force=args.force,
            until=args.until,
        )
    print_run_summary(Path(args.workdir), results)
    return 0


def cmd_stage(name: str, inputs: list[str], output: str, args: argparse.Namespace) -> int:
    from crawl2gpt.config import RunConfig
    from crawl2gpt.runner import check_stage

    check_stage(name, inputs, output, RunConfig.load(args.config, args.overrides))  # before Prefect starts

    from flows.stages import STAGE_FLOWS
    from flows.summary import print_stage_summary
    from pipeline.run_lock import run_lock

    with run_lock(Path(output).parent):  # the run folder a `crawl2gpt run` on it would lock
        checks_passed(args)
        stats = STAGE_FLOWS[name](
            inputs=inputs, output=output, config_path=args.config, overrides=args.overrides, force=args.force
        )
    print_stage_summary(stats)
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from crawl2gpt.config import RunConfig
    from flows.finetune import finetune_classify_flow, finetune_sft_flow

    RunConfig.load(args.config, args.overrides)
    checks_passed(args)
    common = dict(base=args.base, data=args.data, output=args.output, config_path=args.config, overrides=args.overrides)
    if args.mode == "sft":
        summary = finetune_sft_flow(**common)
    else:
        summary = finetune_classify_flow(**common, label_column=args.label_column)
    print(json.dumps({k: v for k, v in summary.items() if not isinstance(v, (dict, list))}, indent=1, default=str))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from model.export import export_checkpoint, summary_text

    print(summary_text(export_checkpoint(args.ckpt, args.output, force=args.force)))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from pipeline.report.build import build_report

    if args.compare:
        from pipeline.report.compare import compare_runs, compare_text

        print(compare_text(*compare_runs(*args.compare, output=args.output)))
        return 0
    if not args.run_dir:
        raise SystemExit("crawl2gpt report: give RUN_DIR, or --compare RUN_A RUN_B")
    summary, html_path = build_report(Path(args.run_dir))
    print(summary)
    print(f"\nreport: {html_path}")
    return 0


def error_log_folder(args: argparse.Namespace) -> Path | None:
    """The run folder an error's traceback is written to: the workdir, or a stage's parent. None
    while the checks before the first stage run: a refused command writes nothing."""
    if not getattr(args, "checked", False):
        return None
    if args.command == "run":
        return Path(args.workdir)
    if args.command in ("stage", "train"):
        return Path(args.output).parent
    if args.command == "ablate":
        return Path(args.out)
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    prepare_environment(args.verbose)  # before anything imports Prefect
    exit_cleanly_on_sigterm()
    # a hung Prefect server ends the run within a bound (flows/server_hung.py); watched from checks_passed() on
    args.server_watch = ServerWatch(lambda: _watch_server(args, argv))
    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "stage":
            return cmd_stage(args.name, args.input, args.output, args)
        if args.command == "train":
            return cmd_stage("train", [args.shards], args.output, args)
        if args.command == "generate":
            from model.generate import run

            return run(args)
        if args.command == "report":
            return cmd_report(args)
        if args.command == "dedup-clean":
            return dedup_clean.run(args)
        if args.command == "quality":
            return quality.run(args)
        if args.command == "ablate":
            return ablate_cli.run(args)
        if args.command == "export":
            return cmd_export(args)
        if args.command == "finetune":
            return cmd_finetune(args)
        if args.command == "serve":
            from flows.serve import serve_all

            serve_all(Path(args.workdir), args.cron or None, args.input, limit=args.limit)
            return 0
    except Crawl2GPTError as err:
        # a refused run writes nothing, not even its log, into a folder another process is using
        folder = None if isinstance(err, RunLockedError) else error_log_folder(args)
        return report_error(err, folder, args.verbose, argv)
    except Exception as err:  # a Prefect server that stopped answering is one message too, not a traceback
        from flows.server_lost import server_lost

        lost = server_lost(err, None)
        if lost is None:
            raise
        lost.__cause__ = lost.__cause__ or err  # the first failed request, else what reached us
        return report_error(lost, error_log_folder(args), args.verbose, argv)
    finally:
        args.server_watch.stop()
    return 1


def _watch_server(args: argparse.Namespace, argv: list[str]):
    """For the commands that run flows: a watchdog of the Prefect server (when PREFECT_API_URL names one)."""
    from flows.server_hung import NotWatching, watch_prefect_server

    if args.command not in WATCHED_COMMANDS:
        return NotWatching()
    from flows.server_lost import stage_running

    named = getattr(args, "name", None) or ("train" if args.command == "train" else None)
    return watch_prefect_server(
        lambda err: report_error(err, error_log_folder(args), args.verbose, argv), lambda: stage_running() or named
    )


if __name__ == "__main__":
    sys.exit(main())
