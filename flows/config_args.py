"""The `--config FILE` and `--set KEY=VALUE` arguments of every command that reads a config (run, stage,
train, finetune, ablate, dedup-clean): one spelling of both, each command with its own help."""

from __future__ import annotations

import argparse

CONFIG_HELP = "YAML config (defaults: the published FineWeb/Gopher/C4 choices)"
SET_HELP = "override one config value, e.g. --set filter.language.min_score=0.7 (repeatable)"


def add_config_args(parser: argparse.ArgumentParser, config_help: str = CONFIG_HELP, set_help: str = SET_HELP) -> None:
    """--config (args.config) and --set, repeatable (args.overrides, a list of KEY=VALUE)."""
    parser.add_argument("--config", metavar="FILE", help=config_help)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=set_help)
