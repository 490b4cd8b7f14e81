"""The fast engine's CPU per page against trafilatura's, and a check that its outputs did not change.

Cost: `trafilatura.extract(html, url=url)` (defaults, the peer) and the fast engine's extraction
call (`fast_extract`: text, title, date; no normalization, which every engine shares) on the 297
truth pages, taking turns every CHUNK pages so that a busy shared machine's load falls on both
alike; each side's CPU seconds (process time) are summed over `--rounds` passes. Also our
extract path with the fast engine and normalization (`extract_main_text` + `normalize_text`, as
benchmarks/extraction_quality.py --engines times it).

Identity: `--save FILE` writes a digest of the fast engine's (text, title, date) or its error for
every HTML page of ../shared/data's WARCs (the truth pages and the sample WARCs); `--compare
FILE` recomputes them and names every page whose output differs. Save before an optimization,
compare after.

    python -m benchmarks.fast_engine_cost [--rounds 3] [--save FILE | --compare FILE]

Prints one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path

from benchmarks.extraction_pages import DEFAULT_DIR, load_pages, load_truth
from benchmarks.harness import print_result
from pipeline.extract.config import ExtractConfig
from pipeline.extract.http_response import parse_http_response
from pipeline.extract.line_filter import fast_extract
from pipeline.extract.main_text import decode_html, extract_main_text, is_html
from pipeline.extract.normalize import normalize_text
from pipeline.extract.warc import iter_warc_records

CHUNK = 25  # pages per turn


def all_html_pages(warc_dir: Path) -> dict[str, str]:
    """'WARC URL' -> decoded HTML for every HTML response of the WARCs in warc_dir."""
    pages = {}
    for warc in sorted(warc_dir.glob("*.warc.gz")):
        with open(warc, "rb") as fh:
            for record in iter_warc_records(fh, warc.name, {}, []):
                http = parse_http_response(record.read_block()) if record.rec_type == "response" else None
                ctype = http.headers.get("content-type") if http else None
                if http and is_html(ctype, None, http.body[:2048]):
                    url = record.headers.get("warc-target-uri", "").strip()
                    pages[f"{warc.name} {url}"] = decode_html(http.body, ctype)[0]
    return pages


def digests(pages: dict[str, str]) -> dict[str, str]:
    out = {}
    for key, html in pages.items():
        try:
            result = repr(fast_extract(html))
        except Exception as err:  # noqa: BLE001 - an error is an output too: it must not change
            result = f"{type(err).__name__}: {err}"
        out[key] = hashlib.sha1(result.encode("utf-8", "surrogatepass")).hexdigest()
    return out


def costs(pages: dict[str, tuple[str, str | None]], rounds: int) -> dict:
    import trafilatura

    cfg = ExtractConfig(engine="fast")

    def ours(url: str, html: str) -> None:
        extracted = extract_main_text(html, url, cfg)
        normalize_text(extracted.text, cfg) if extracted else ""

    sides = {
        "trafilatura": lambda url, html: trafilatura.extract(html, url=url),
        "fast_extract": lambda url, html: fast_extract(html),
        "fast_with_normalization": ours,
    }
    items = [(url, html) for url, (html, _) in pages.items()]
    for run in sides.values():  # warm-up: imports, the model, caches
        for url, html in items[:CHUNK]:
            run(url, html)
    seconds = dict.fromkeys(sides, 0.0)
    for _ in range(rounds):
        for at in range(0, len(items), CHUNK):
            for name, run in sides.items():
                started = time.process_time()
                for url, html in items[at : at + CHUNK]:
                    run(url, html)
                seconds[name] += time.process_time() - started
    n = rounds * len(items)
    return {
        name: {
            "ms_per_page": round(1000 * s / n, 2),
            "share_of_trafilatura": round(s / seconds["trafilatura"], 3),
        }
        for name, s in seconds.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--save", type=Path, help="write the fast engine's output digests here")
    parser.add_argument("--compare", type=Path, help="compare the fast engine's outputs with digests saved here")
    args = parser.parse_args()
    result: dict = {"benchmark": "fast_engine_cost", "load_average": [round(x, 2) for x in os.getloadavg()]}
    if args.save or args.compare:
        now = digests(all_html_pages(DEFAULT_DIR) | load_pages_by_key())
        if args.save:
            args.save.write_text(json.dumps(now, indent=0, sort_keys=True))
        if args.compare:
            before = json.loads(args.compare.read_text())
            changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
            result["identity"] = {"pages": len(now), "changed": len(changed), "first_changed": changed[:10]}
    else:
        truth = load_truth(DEFAULT_DIR / "CC-SAMPLE-A-extraction-truth.jsonl")
        pages = load_pages(DEFAULT_DIR, truth)
        result |= {"pages": len(pages), "rounds": args.rounds, "chunk": CHUNK, "sides": costs(pages, args.rounds)}
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print_result(result)


def load_pages_by_key() -> dict[str, str]:
    """The truth pages, keyed 'truth URL'."""
    truth = load_truth(DEFAULT_DIR / "CC-SAMPLE-A-extraction-truth.jsonl")
    return {f"truth {url}": html for url, (html, _) in load_pages(DEFAULT_DIR, truth).items()}


if __name__ == "__main__":
    main()
