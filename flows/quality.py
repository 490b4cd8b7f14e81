"""`crawl2gpt quality train --positive P... --negative N... --out MODEL.bin`: a fastText quality
classifier for `filter.quality_model` (the work is pipeline/filter/quality_train.py).

No Prefect: training takes seconds on one core, and the filter stage that applies the model is the
run the UI shows.
"""

from __future__ import annotations

import argparse

DOCUMENTS = "text, JSONL or Parquet documents, or folders of them (e.g. runs/x/filter and runs/x/filter/rejects)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from pipeline.filter.quality_train import TrainOptions

    sub = parser.add_subparsers(dest="action", required=True)
    train = sub.add_parser("train", help="train a fastText classifier of positive vs negative documents")
    train.add_argument("--positive", nargs="+", required=True, metavar="PATH", help=f"documents to keep: {DOCUMENTS}")
    train.add_argument("--negative", nargs="+", required=True, metavar="PATH", help=f"documents to drop: {DOCUMENTS}")
    train.add_argument(
        "--out",
        required=True,
        metavar="MODEL.bin",
        help="the model to write (its held-out report goes to MODEL.bin.json); "
        "use it with --set filter.quality_model.path=MODEL.bin",
    )
    defaults = TrainOptions()
    train.add_argument(
        "--held-out",
        type=float,
        default=defaults.held_out,
        metavar="FRACTION",
        help=f"share of each side measured, not trained on (default {defaults.held_out})",
    )
    train.add_argument(
        "--threshold",
        type=float,
        default=defaults.threshold,
        help=f"score at which precision and recall are measured (default {defaults.threshold})",
    )
    train.add_argument("--seed", type=int, default=defaults.seed)
    train.add_argument("--epoch", type=int, default=defaults.epoch)
    train.add_argument("--lr", type=float, default=defaults.lr)
    train.add_argument("--word-ngrams", type=int, default=defaults.word_ngrams)
    train.add_argument("--dim", type=int, default=defaults.dim)
    train.add_argument(
        "--bucket",
        type=int,
        default=defaults.bucket,
        help=f"hashed n-gram rows (default {defaults.bucket}); the file holds (words + bucket) x dim floats",
    )


def run(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from pipeline.errors import ConfigError
    from pipeline.filter.quality_train import TrainOptions, report_text, train_quality_model

    if not 0 < args.held_out < 1:
        raise ConfigError(f"--held-out {args.held_out} is not between 0 and 1; give e.g. 0.2")
    if args.bucket < 1 or args.dim < 1 or args.epoch < 1 or args.lr <= 0:
        raise ConfigError("--bucket, --dim, --epoch and --lr must be positive")
    # every option the command line takes has the field's name (--word-ngrams -> word_ngrams)
    options = TrainOptions(**{f.name: getattr(args, f.name) for f in fields(TrainOptions) if hasattr(args, f.name)})
    print(report_text(train_quality_model(args.positive, args.negative, args.out, options)))
    return 0
