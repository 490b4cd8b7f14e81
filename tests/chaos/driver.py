"""Run the whole pipeline without Prefect, for the chaos tests to SIGKILL from outside.

    python tests/chaos/driver.py --input A.warc.gz --workdir RUN [--set train.max_steps=20 ...]

It is exactly `crawl2gpt.runner.run_pipeline` with the config the tests pass; nothing in it knows
it is being killed. It prints one JSON line (stage -> docs_out, skipped) when it finishes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from crawl2gpt.config import RunConfig  # noqa: E402
from crawl2gpt.runner import run_pipeline  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", action="append", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--config", default=None)
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--until", default="train")
    args = parser.parse_args(argv)
    cfg = RunConfig.load(args.config, args.overrides)
    results = run_pipeline(args.input, args.workdir, cfg, until=args.until)
    print(json.dumps({name: {"docs_out": s.docs_out, "skipped": s.skipped} for name, s in results.items()}))


if __name__ == "__main__":
    main()
