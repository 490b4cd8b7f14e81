"""`crawl2gpt dedup-clean [FOLDER ...] [--expired]`: delete the Redis keys that killed dedup runs left.

With FOLDER (a run folder or a dedup output folder): the keys of every dedup attempt that wrote
it or a folder inside it. With --expired: those of every attempt silent for dedup.redis_ttl_h
hours. With neither: list the attempts that have keys, deleting nothing. Where Redis is comes
from --config/--set, else from the first FOLDER's config.yaml (what `crawl2gpt run` wrote there).
No Prefect: this is bookkeeping of a Redis server, not a run. The work is pipeline/dedup/redis_clean.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from flows.config_args import add_config_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "folders",
        nargs="*",
        metavar="FOLDER",
        help="a run folder or a dedup output folder: delete the keys of every dedup attempt that wrote "
        "it or a folder inside it",
    )
    parser.add_argument(
        "--expired",
        action="store_true",
        help="delete the keys of every attempt silent for over dedup.redis_ttl_h hours, any folder",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="also delete FOLDER's keys of a run on another machine whose lease has not run out",
    )
    add_config_args(
        parser,
        config_help="YAML config naming the Redis (default: FOLDER/config.yaml)",
        set_help="e.g. --set dedup.redis_port=6380 (repeatable)",
    )


def _config_file(args: argparse.Namespace) -> str | None:
    if args.config:
        return args.config
    run_configs = [Path(folder) / "config.yaml" for folder in args.folders]
    return next((str(path) for path in run_configs if path.is_file()), None)


def run(args: argparse.Namespace) -> int:
    from crawl2gpt.config import RunConfig
    from pipeline.dedup.redis_clean import clean_expired, clean_folders, list_attempts

    cfg = RunConfig.load(_config_file(args), args.overrides).dedup
    where = f"Redis at {cfg.redis_host}:{cfg.redis_port} (prefix {cfg.redis_prefix})"
    if not args.folders and not args.expired:
        _print_list(list_attempts(cfg), where)
        return 0
    cleaned = [clean_folders(cfg, [Path(f) for f in args.folders], force=args.force)] if args.folders else []
    if args.expired:
        cleaned.append(clean_expired(cfg))
    attempts = [record for result in cleaned for record in result.attempts]
    if not attempts:
        print(f"no dedup keys of {' '.join(args.folders) or 'an expired attempt'} in {where}")
        return 0
    folders = sorted({record.folder or record.basename.decode(errors="replace") for record in attempts})
    print(
        f"deleted {sum(result.keys for result in cleaned)} keys of {len(attempts)} dedup attempt(s) in {where}: "
        + ", ".join(folders)
    )
    return 0


def _print_list(attempts: list, where: str) -> None:
    if not attempts:
        print(f"no dedup keys in {where}")
        return
    print(f"dedup attempts with keys in {where}:")
    for record, keys, lease_left_s in attempts:
        lease = (
            f"lease runs out in {lease_left_s / 3600:.1f} h"
            if lease_left_s > 0
            else f"lease ran out {-lease_left_s / 3600:.1f} h ago"
        )
        print(f"  {record.folder or '(no folder)'}  {keys} keys  pid {record.pid} on {record.host}  {lease}")
    print("delete them with: crawl2gpt dedup-clean FOLDER (or --expired)")
