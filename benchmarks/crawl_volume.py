"""Curation at Common Crawl's file size: extract -> shards on WARCs of ~35,000 HTML responses.

A CC-MAIN WARC file holds about 35,000-40,000 HTML responses (~1 GB gzipped) beside their request
and metadata records, redirects and non-HTML payloads. This builds WARC files of that shape from
the real pages of ../shared/data/warc (255 HTML pages, German, English and a dozen more
languages): every response is a real page's HTML with its paragraphs (<p> contents) replaced by
paragraphs of other pages of the same language, so each document is new text in real markup;
10% are exact copies of a recent page at a new URL and 20% near copies (one paragraph swapped,
a banner added), which is what a crawl's dedup sees. Each response has its request and metadata
record; 3% of fetches are 301 redirects, 4% PNG/PDF payloads, 1% 404 pages.

Each stage (extract, filter, dedup, tokenizer, shards; workers=2, no Prefect) runs in its own
process; per stage: wall seconds, documents/s and per core, peak memory of the process tree
(summed RSS of the stage process and its workers, sampled every 0.2 s), counts in and out.
The config keeps English and German and a 8,000-token BPE (a vocabulary this corpus supports).

usage: nice -n 10 python -m benchmarks.crawl_volume [--responses 5000 35000] [--warcs W ...]
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import random
import re
import shutil
import sys
import time
from collections import deque
from pathlib import Path

from benchmarks.harness import BENCH_DIR, SAMPLE_WARCS, print_result
from benchmarks.process_tree import run_measured

WORK = BENCH_DIR / "crawl_volume"
STAGES = ("extract", "filter", "dedup", "tokenizer", "shards")
OVERRIDES = ["name=crawl_volume", "workers=2", "filter.language.languages=[en, de]", "tokenizer.vocab_size=8000"]
PARAGRAPH = re.compile(r"(<p(?:\s[^>]*)?>)(.*?)(</p>)", re.S | re.I)
BANNER = "<p>Subscribe to our newsletter and get every article first, free for thirty days.</p>"


# ------------------------------------------------------------------ the real pages


def source_pages(warcs: list[Path]) -> list[dict]:
    """Real HTML responses of the sample WARCs: url, html, language of their main text."""
    cache = WORK / "pages.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    import trafilatura
    from warcio.archiveiterator import ArchiveIterator

    from pipeline.filter.language import detect

    pages, seen = [], set()
    for warc in warcs:
        with open(warc, "rb") as fh:
            for record in ArchiveIterator(fh):
                if record.rec_type != "response" or record.http_headers.get_statuscode() != "200":
                    continue
                body = record.content_stream().read()
                if b"<html" not in body[:2000].lower() or body in seen:
                    continue
                seen.add(body)
                markup = body.decode("utf-8", "replace")
                text = trafilatura.extract(markup) or ""
                if len(text.split()) >= 50:
                    pages.append(
                        {"url": record.rec_headers.get_header("WARC-Target-URI"), "html": markup, "text": text}
                    )
    for page, (language, _) in zip(pages, detect([p["text"] for p in pages])):
        page["language"] = language
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(pages))
    return pages


def paragraph_pools(pages: list[dict]) -> dict[str, list[str]]:
    """<p> contents (real markup, >= 60 characters of text) of all pages, by the page's language."""
    pools: dict[str, list[str]] = {}
    for page in pages:
        for _, inner, _ in PARAGRAPH.findall(page["html"]):
            if len(re.sub(r"<[^>]+>", "", inner).strip()) >= 60:
                pools.setdefault(page["language"], []).append(inner)
    return pools


def new_page(page: dict, pool: list[str], rng: random.Random) -> str:
    """The page's markup with every paragraph replaced by a random one of its language."""
    return PARAGRAPH.sub(lambda m: m.group(1) + rng.choice(pool) + m.group(3), page["html"])


def near_copy(markup: str, pool: list[str], rng: random.Random) -> str:
    """One paragraph swapped, a banner added after <body>: the same article in other chrome."""
    matches = list(PARAGRAPH.finditer(markup))
    if matches:
        m = rng.choice(matches)
        markup = markup[: m.start(2)] + rng.choice(pool) + markup[m.end(2) :]
    at = markup.lower().find("<body")
    at = markup.find(">", at) + 1 if at >= 0 else 0
    return markup[:at] + BANNER + markup[at:]


# ------------------------------------------------------------------ WARC writing


class WarcFile:
    """Records written by warcio, each its own gzip member (as Common Crawl writes them)."""

    def __init__(self, path: Path):
        from warcio.warcwriter import WARCWriter

        self.fh, self.buffer = open(path, "wb"), io.BytesIO()
        self.writer = WARCWriter(self.buffer, gzip=False)
        self.write(
            self.writer.create_warcinfo_record(path.name, {"software": "crawl2gpt crawl_volume", "format": "WARC/1.1"})
        )

    def write(self, record) -> None:
        self.buffer.seek(0), self.buffer.truncate()
        self.writer.write_record(record)
        self.fh.write(gzip.compress(self.buffer.getvalue(), compresslevel=1))

    def fetch(self, url: str, status: str, content_type: str, body: bytes, extra_headers=()) -> None:
        from warcio.statusandheaders import StatusAndHeaders

        host = url.split("/")[2]
        path = "/" + url.split("/", 3)[3] if url.count("/") >= 3 else "/"
        request = StatusAndHeaders(
            f"GET {path} HTTP/1.1", [("Host", host), ("User-Agent", "CCBot/2.0")], is_http_request=True
        )
        self.write(self.writer.create_warc_record(url, "request", payload=io.BytesIO(b""), http_headers=request))
        headers = StatusAndHeaders(
            status,
            [("Content-Type", content_type), ("Content-Length", str(len(body))), *extra_headers],
            protocol="HTTP/1.1",
        )
        self.write(self.writer.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=headers))
        meta = f"fetchTimeMs: {len(body) % 900 + 50}\ncharset-detected: UTF-8\n".encode()
        self.write(
            self.writer.create_warc_record(
                url, "metadata", payload=io.BytesIO(meta), warc_content_type="application/warc-fields"
            )
        )

    def close(self) -> None:
        self.fh.close()


def build_warc(pages: list[dict], responses: int, path: Path, seed: int = 11) -> dict:
    """A WARC of `responses` HTML 200 responses plus the usual other records; returns what it holds."""
    if path.is_file() and path.with_suffix(".json").is_file():
        return json.loads(path.with_suffix(".json").read_text())
    rng = random.Random(seed)
    pools = paragraph_pools(pages)
    usable = [p for p in pages if len(pools.get(p["language"], [])) >= 50]
    recent: deque[tuple[str, str]] = deque(maxlen=200)  # (markup, language) of recent new pages
    counts = {"html_200": 0, "exact_copies": 0, "near_copies": 0, "redirects": 0, "non_html": 0, "not_found": 0}
    tmp = path.with_name(path.name + ".tmp")
    warc = WarcFile(tmp)
    n = 0
    while counts["html_200"] < responses:
        n += 1
        url = f"https://site{n % 997}.example.org/{n}/article-{rng.randrange(10**9)}.html"
        roll = rng.random()
        if roll < 0.03:
            warc.fetch(url, "301 Moved Permanently", "text/html", b"<html>moved</html>", [("Location", url + "?r=1")])
            counts["redirects"] += 1
        elif roll < 0.05:
            warc.fetch(url.replace(".html", ".png"), "200 OK", "image/png", b"\x89PNG\r\n\x1a\n" + rng.randbytes(3000))
            counts["non_html"] += 1
        elif roll < 0.07:
            warc.fetch(url.replace(".html", ".pdf"), "200 OK", "application/pdf", b"%PDF-1.4\n" + rng.randbytes(6000))
            counts["non_html"] += 1
        elif roll < 0.08:
            warc.fetch(url, "404 Not Found", "text/html", b"<html><body><h1>Not found</h1></body></html>")
            counts["not_found"] += 1
        else:
            kind = rng.random()
            if recent and kind < 0.10:
                markup, _ = rng.choice(recent)
                counts["exact_copies"] += 1
            elif recent and kind < 0.30:
                markup, language = rng.choice(recent)
                markup = near_copy(markup, pools[language], rng)
                counts["near_copies"] += 1
            else:
                page = rng.choice(usable)
                markup = new_page(page, pools[page["language"]], rng)
                recent.append((markup, page["language"]))
            warc.fetch(url, "200 OK", "text/html; charset=utf-8", markup.encode("utf-8"))
            counts["html_200"] += 1
    warc.close()
    tmp.rename(path)
    counts["records"] = 1 + 3 * (sum(counts[k] for k in ("html_200", "redirects", "non_html", "not_found")))
    counts["bytes"] = path.stat().st_size
    path.with_suffix(".json").write_text(json.dumps(counts))
    return counts


# ------------------------------------------------------------------ one stage, measured


def run_stage_child(name: str, run_dir: Path, warc: Path) -> None:
    from crawl2gpt.config import RunConfig
    from crawl2gpt.stages import load_stage, stage_inputs, stage_options
    from pipeline.stage import run_stage

    cfg = RunConfig().with_overrides(OVERRIDES)
    started = time.time()
    stats = run_stage(
        load_stage(name),
        stage_inputs(name, run_dir, [str(warc)]),
        run_dir / name,
        cfg,
        force=True,
        **stage_options(name),
    )
    keep = {k: v for k, v in stats.extra.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}
    print(
        json.dumps(
            {
                "seconds": time.time() - started,
                "docs_in": stats.docs_in,
                "docs_out": stats.docs_out,
                "drops": stats.drops,
                "extra": keep,
            }
        )
    )


def measured(argv: list[str]) -> dict:
    """This script in a child process: its JSON line and the peak summed RSS of its process tree."""
    return run_measured("benchmarks.crawl_volume", argv)


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--stage":
        return run_stage_child(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", type=int, nargs="+", default=[5_000, 35_000])
    parser.add_argument("--warcs", type=Path, nargs="+", default=SAMPLE_WARCS)
    parser.add_argument("--cores", type=int, default=2, help="cores of this machine, for docs/s per core")
    args = parser.parse_args()

    pages = source_pages(args.warcs)
    sizes = []
    for responses in args.responses:
        warc = WORK / f"CC-VOLUME-{responses}.warc.gz"
        started = time.time()
        held = build_warc(pages, responses, warc)
        row = {"responses": responses, "warc": held, "build_s": round(time.time() - started, 1), "stages": {}}
        run_dir = WORK / f"run-{responses}"
        for name in STAGES:
            result = measured(["--stage", name, str(run_dir), str(warc)])
            per_s = result["docs_in"] / result["seconds"] if result["seconds"] else 0.0
            row["stages"][name] = {
                "seconds": round(result["seconds"], 1),
                "docs_in": result["docs_in"],
                "docs_out": result["docs_out"],
                "docs_per_s": round(per_s, 1),
                "docs_per_s_per_core": round(per_s / args.cores, 1),
                "peak_tree_mb": result["peak_tree_mb"],
                "drops": result["drops"],
                "extra": {
                    k: v
                    for k, v in result["extra"].items()
                    if k in ("backend", "clusters", "tokens", "shards", "records", "non_response_records")
                },
            }
            print(json.dumps({responses: {name: row["stages"][name]}}), file=sys.stderr)
        row["peak_tree_mb"] = max(s["peak_tree_mb"] for s in row["stages"].values())
        row["seconds"] = round(sum(s["seconds"] for s in row["stages"].values()), 1)
        sizes.append(row)
        shutil.rmtree(run_dir / "extract", ignore_errors=True)  # keep the disk for the next size
    summary = {"benchmark": "crawl_volume", "machine": "2-core CPU sandbox, 24 GiB, no GPU", "sizes": sizes}
    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        summary["peak_ratio_large_vs_small"] = round(large["peak_tree_mb"] / small["peak_tree_mb"], 3)
        summary["largest_memory_stage"] = max(large["stages"], key=lambda s: large["stages"][s]["peak_tree_mb"])
        summary["largest_time_stage"] = max(large["stages"], key=lambda s: large["stages"][s]["seconds"])
    print_result(summary)


if __name__ == "__main__":
    main()
