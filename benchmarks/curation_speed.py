"""Curation speed on one core: crawl2gpt extract + filter beside trafilatura alone and datatrove's chain.

Same WARCs, one process each, side by side in one run:
  ours            extract + filter stages, default config (English kept, trafilatura, the language
                  and quality pre-screens on)
  ours_no_quality the same without the quality pre-screen (the default before issue 26)
  ours_full       neither pre-screen (every page through trafilatura)
  ours_en_de      English and German kept, both pre-screens on;  ours_en_de_full: neither
  ours_ten        ten languages kept (TEN), both pre-screens on;  ours_ten_full: neither
  ours_all        every language kept (no language pre-screen; the quality pre-screen on)
  ours_fast       default config with extract.fast=true (no readability/jusText fallback): the cost of F1
  engine_resiliparse, engine_fast, engine_fast_ten   extract.engine=resiliparse / fast (English kept;
                  fast also with TEN kept): resiliparse's main content, and it with the learned line filter
  trafilatura     warcio reading + trafilatura.extract(html, url=url) with its defaults, on the pages ours
                  extracts: every HTML 200 response (HTML by the HTTP Content-Type, else Common Crawl's
                  WARC-Identified-Payload-Type, as ours and datatrove decide)
  trafilatura_ct  the same on the responses whose HTTP Content-Type names html, any status (this
                  benchmark's selection before 2026-11-30: it left out the 79 shared pages whose
                  records kept no Content-Type, and extracted 18 redirects and 404s)
  datatrove       WarcReader -> Trafilatura -> LanguageFilter(en) -> GopherRepetition -> GopherQuality
                  -> C4Quality -> FineWebQuality (datatrove 0.10.1 defaults, in .bench/datatrove)

Cost is CPU seconds (user + system, the process and the children it waited for, e.g. datatrove's
extraction sandbox) of the run over all WARCs (for ours, of the two stages: not of reading their
outputs back to count the kept documents), after a warm-up run over a slice of the first WARC
in the same process (imports, models), so each side's one-off start-up does not enter; the sides
take turns `--repeat` times and the fastest run of each counts, so a busy machine hurts all alike.
Documents/s per core = WARC response records / CPU second.
Kept-document agreement: the documents the filter keeps on the fast path (pre-screens) against
the full path, for English, English + German and TEN; and the quality pre-screen alone
(`en_quality`: ours against ours_no_quality).

Two language mixes: the WARCs as they are (the shared sample is mostly German), and Common
Crawl's (CC_ENGLISH = 45% English): the WARCs rewritten with each English page's record repeated
(or dropped) until English pages are that share of the pages that have a language.

    python -m benchmarks.curation_speed [WARC ...] [--no-datatrove] [--mixes shared cc] [--repeat 2] [--sides ...]

Prints one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

from benchmarks.datatrove_env import ensure_datatrove, lid_assets
from benchmarks.harness import add_warcs_argument, existing_files, module_command, print_result, run_json, timed

CC_ENGLISH = 0.45  # share of English documents in Common Crawl (CC-MAIN language statistics: ~43-46%)
WARMUP_RECORDS = 60
# The ten languages with the most pages in Common Crawl (CC-MAIN language statistics, 2024).
TEN = "filter.language.languages=[en, ru, de, zh, ja, es, fr, it, pt, nl]"
NO_PRESCREENS = ["extract.language_prescreen=false", "extract.quality_prescreen=false"]
OURS = {
    "ours": [],
    "ours_no_quality": ["extract.quality_prescreen=false"],
    "ours_full": NO_PRESCREENS,
    "ours_en_de": ["filter.language.languages=[en, de]"],
    "ours_en_de_full": ["filter.language.languages=[en, de]", *NO_PRESCREENS],
    "ours_ten": [TEN],
    "ours_ten_full": [TEN, *NO_PRESCREENS],
    "ours_all": ["filter.language.languages=[]"],
    "ours_fast": ["extract.fast=true"],
    "engine_resiliparse": ["extract.engine=resiliparse"],
    "engine_fast": ["extract.engine=fast"],
    "engine_fast_ten": ["extract.engine=fast", TEN],
}
AGREEMENT = {
    "en": ("ours", "ours_full"),
    "en_quality": ("ours", "ours_no_quality"),
    "en_de": ("ours_en_de", "ours_en_de_full"),
    "ten": ("ours_ten", "ours_ten_full"),
}

DATATROVE_RUNNER = r"""
import json, resource, sys, tempfile, time
from pathlib import Path
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import WarcReader
from datatrove.pipeline.extractors import Trafilatura
from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
                                        GopherRepetitionFilter, LanguageFilter)

def cpu():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime

def run(folder):
    kept = []
    def count(data, rank=0, world_size=1):
        for doc in data:
            kept.append(doc.id)
            yield doc
    with tempfile.TemporaryDirectory() as logs:
        LocalPipelineExecutor(pipeline=[
            WarcReader(folder, glob_pattern="*.warc.gz"), Trafilatura(), LanguageFilter(languages=["en"]),
            GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(), FineWebQualityFilter(), count,
        ], tasks=1, workers=1, logging_dir=logs).run()
    return kept

run(sys.argv[1])  # warm-up: imports, fastText, spaCy
started, wall = cpu(), time.perf_counter()
kept = run(sys.argv[2])
print(json.dumps({"cpu_s": cpu() - started, "wall_s": time.perf_counter() - wall, "kept": len(kept)}))
"""


# --------------------------------------------------------------------------- the sides (each in its own process)


def run_ours(warcs: list[str], overrides: list[str], workdir: Path) -> dict:
    """extract + filter stages, one worker, forced; kept documents and every document's language."""
    import pyarrow.parquet as pq

    from crawl2gpt.config import RunConfig
    from pipeline.extract.stage import EXTRACT
    from pipeline.filter.stage import FILTER
    from pipeline.outcomes import outcome_files
    from pipeline.stage import run_stage

    cfg = RunConfig(workers=1).with_overrides(overrides)
    with timed(children=True) as stages:  # the two stages alone, not the counting below
        extract = run_stage(EXTRACT, warcs, workdir / "extract", cfg, force=True)
        filtered = run_stage(FILTER, [str(workdir / "extract")], workdir / "filter", cfg, force=True)
    kept, languages = Counter(), {}
    for path, dropped in outcome_files(workdir / "filter", "filter"):
        for row in pq.read_table(path, columns=["doc_id", "source", "offset", "language"]).to_pylist():
            languages[f"{Path(row['source']).name}@{row['offset']}"] = row["language"]
            if not dropped:
                kept[row["doc_id"]] += 1
    return {
        "pages": extract.docs_in,
        "extracted": extract.docs_out,
        "kept": filtered.docs_out,
        "prescreened": extract.drops.get("language.prescreen", 0),
        "quality_prescreened": extract.drops.get("quality.prescreen", 0),
        "engine": cfg.extract.engine,
        "quality_prescreen": cfg.extract.quality_prescreen,
        "stage_s": round(extract.seconds + filtered.seconds, 2),
        "stages_cpu_s": stages.cpu_s,
        "kept_ids": dict(kept),
        "languages": languages,
    }


def run_trafilatura(warcs: list[str], same_pages: bool = True) -> dict:
    """trafilatura.extract on the HTML responses. same_pages: the pages our stages extract, every
    complete HTML 200 response, HTML by the HTTP Content-Type or, where the record has none (79 of the
    shared WARCs' pages keep only Date and Content-Length), by Common Crawl's
    WARC-Identified-Payload-Type, as ours and datatrove's WarcReader decide. Else the earlier
    selection: responses whose HTTP Content-Type names html, any status."""
    import trafilatura
    from warcio.archiveiterator import ArchiveIterator

    pages = extracted = 0
    for warc in warcs:
        with open(warc, "rb") as fh:
            for record in ArchiveIterator(fh):
                if record.rec_type != "response":
                    continue
                pages += 1
                http = record.http_headers
                content_type = (http.get_header("Content-Type") if http else None) or ""
                if same_pages:
                    content_type = content_type or record.rec_headers.get_header("WARC-Identified-Payload-Type") or ""
                    if not http or http.get_statuscode() != "200" or record.rec_headers.get_header("WARC-Truncated"):
                        continue  # ours skips these before extraction (extract.keep_truncated=false)
                if "html" not in content_type:
                    continue
                url = record.rec_headers.get_header("WARC-Target-URI")
                extracted += bool(trafilatura.extract(record.content_stream().read(), url=url))
    return {"pages": pages, "extracted": extracted}


def side_main(name: str, warmup: str, warcs: list[str]) -> None:
    """Run one side twice in this process (warm-up slice, then the WARCs) and print its figures."""
    with tempfile.TemporaryDirectory() as tmp:

        def once(inputs: list[str], sub: str) -> dict:
            if name.startswith("trafilatura"):
                return run_trafilatura(inputs, same_pages=name == "trafilatura")
            return run_ours(inputs, OURS[name], Path(tmp) / sub)

        once([warmup], "warmup")
        if not name.startswith("trafilatura"):
            # lingua loads its all-language models at the first page fastText is lost on (0.4 CPU s
            # for a long text, 7.5 for a short one): a one-off start-up like fastText's, not per-page work
            from pipeline.filter import language

            language.lingua_detector(None).compute_language_confidence_values("Ki te taha")
        with timed(children=True) as clock:
            result = once(warcs, "run")
        # ours: the extract and filter stages' own CPU time (reading their outputs back to count
        # agreement is the benchmark's work); trafilatura: the whole loop, which is all its work
        cpu = result.pop("stages_cpu_s", clock.cpu_s)
        result.update(cpu_s=round(cpu, 2), wall_s=round(clock.wall_s, 2))
    print_result(result)


def run_side(name: str, warmup: Path, warcs: list[Path]) -> dict:
    return run_json(module_command("benchmarks.curation_speed", ["--side", name, "--warmup", warmup, *warcs]))


def run_datatrove(warmup: Path, warcs: list[Path]) -> dict:
    python = ensure_datatrove()
    with tempfile.TemporaryDirectory() as tmp:
        folders = []
        for name, files in (("warmup", [warmup]), ("run", warcs)):
            folder = Path(tmp) / name
            folder.mkdir()
            for i, warc in enumerate(files):
                (folder / f"{i:05d}-{Path(warc).name}").symlink_to(Path(warc).resolve())
            folders.append(str(folder))
        env = {**os.environ, "HF_ASSETS_CACHE": str(lid_assets())}
        result = run_json([str(python), "-c", DATATROVE_RUNNER, *folders], cwd=Path(tmp), env=env)
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}


# --------------------------------------------------------------------------- inputs


def members(path: Path) -> list[tuple[int, int, str | None, str]]:
    """(start, end, WARC-Type, key) of every record (= gzip member) of a WARC file."""
    from pipeline.extract.warc import iter_warc_records

    data = path.read_bytes()
    records = [(r.offset, r.rec_type) for r in iter_warc_records(io.BytesIO(data), str(path), {}, [])]
    ends = [start for start, _ in records[1:]] + [len(data)]
    return [(start, end, kind, f"{path.name}@{start}") for (start, kind), end in zip(records, ends)]


def warmup_slice(warc: Path, folder: Path) -> Path:
    out = folder / f"warmup-{warc.name}"
    data = warc.read_bytes()
    out.write_bytes(data[: members(warc)[min(WARMUP_RECORDS, len(members(warc)) - 1)][0]])
    return out


def resample(warcs: list[Path], languages: dict[str, str], english: float, folder: Path) -> tuple[list[Path], dict]:
    """The WARCs with English pages' records repeated (or dropped) so English is `english` of the
    pages with a language; copies are chosen by a hash of the record, so the mix never changes."""
    labelled = [k for k in languages]
    n_en = sum(1 for k in labelled if languages[k] == "en")
    n_other = len(labelled) - n_en
    target = round(english / (1 - english) * n_other)
    order = sorted((k for k in labelled if languages[k] == "en"), key=lambda k: hashlib.sha1(k.encode()).hexdigest())
    copies = {k: target // n_en + (i < target % n_en) for i, k in enumerate(order)}
    out = []
    for warc in warcs:
        data = warc.read_bytes()
        path = folder / f"cc45-{warc.name}"
        with open(path, "wb") as fh:
            for start, end, _, key in members(warc):
                fh.write(data[start:end] * copies.get(key, 1))
        out.append(path)
    return out, {
        "english_pages": sum(copies.values()),
        "other_pages": n_other,
        "english_share": round(sum(copies.values()) / (sum(copies.values()) + n_other), 3),
    }


# --------------------------------------------------------------------------- one mix


def agreement(fast: dict, full: dict) -> dict:
    fast_kept, full_kept = Counter(fast["kept_ids"]), Counter(full["kept_ids"])
    return {
        "full_kept": sum(full_kept.values()),
        "fast_kept": sum(fast_kept.values()),
        "lost": sum((full_kept - fast_kept).values()),
        "gained": sum((fast_kept - full_kept).values()),
    }


def measure_mix(warcs: list[Path], warmup: Path, names: list[str], repeat: int) -> dict:
    """Every side `repeat` times, taking turns (a noisy neighbour hurts all alike); the fastest run of each."""
    sides: dict[str, dict] = {}
    for _ in range(repeat):
        for name in names:
            run = run_datatrove(warmup, warcs) if name == "datatrove" else run_side(name, warmup, warcs)
            print(name, {k: v for k, v in run.items() if k not in ("kept_ids", "languages")}, file=sys.stderr)
            if name not in sides or run["cpu_s"] < sides[name]["cpu_s"]:
                sides[name] = run
    pages = sides["ours"]["pages"]
    languages = sides.get("ours_full", sides["ours"])["languages"]  # the full path labels every page
    result = {
        "pages": pages,
        "english_share": round(sum(1 for v in languages.values() if v == "en") / max(len(languages), 1), 3),
        "sides": {
            n: {
                **{k: v for k, v in s.items() if k not in ("kept_ids", "languages")},
                "docs_per_s_per_core": round(pages / s["cpu_s"], 2),
            }
            for n, s in sides.items()
        },
        "agreement": {
            name: agreement(sides[fast], sides[full])
            for name, (fast, full) in AGREEMENT.items()
            if fast in sides and full in sides
        },
    }
    traf = sides["trafilatura"]["cpu_s"]
    result["trafilatura_over_ours"] = {n: round(traf / sides[n]["cpu_s"], 3) for n in OURS if n in sides}
    if "trafilatura_ct" in sides:  # the earlier page selection, for comparison with earlier rounds
        result["trafilatura_ct_over_ours"] = {
            n: round(sides["trafilatura_ct"]["cpu_s"] / sides[n]["cpu_s"], 3) for n in OURS if n in sides
        }
    if "ours_all" in sides:
        result["ours_all_over_trafilatura"] = round(sides["ours_all"]["cpu_s"] / traf, 3)
    if "datatrove" in sides:
        result["datatrove_over_ours"] = round(sides["datatrove"]["cpu_s"] / sides["ours"]["cpu_s"], 3)
    return result, languages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_warcs_argument(parser)
    parser.add_argument("--no-datatrove", action="store_true")
    parser.add_argument("--mixes", nargs="+", default=["shared", "cc"], choices=["shared", "cc"])
    parser.add_argument("--repeat", type=int, default=2, help="runs of each side; the fastest counts")
    parser.add_argument(
        "--sides",
        nargs="+",
        choices=[*OURS, "trafilatura", "trafilatura_ct", "datatrove"],
        help="only these sides (ours and trafilatura always run, and ours_full for the CC mix): "
        "a quick look while tuning",
    )
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--warmup", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        side_main(args.side, args.warmup, [str(w) for w in args.warcs])
        return
    warcs = existing_files(args.warcs)
    result = {
        "benchmark": "curation_speed",
        "files": [w.name for w in warcs],
        "machine": "2-core CPU sandbox, no GPU",
        "timing": "CPU seconds (user+system, incl. waited-for children) after a warm-up run, one process per side",
    }
    names = [*OURS, "trafilatura", "trafilatura_ct", *([] if args.no_datatrove else ["datatrove"])]
    if args.sides:  # the Common Crawl mix is resampled by the full path's languages
        needed = {"ours", "trafilatura", *args.sides, *(["ours_full"] if "cc" in args.mixes else [])}
        names = [n for n in names if n in needed]
    with tempfile.TemporaryDirectory() as tmp:
        warmup = warmup_slice(warcs[0], Path(tmp))
        shared, languages = measure_mix(warcs, warmup, names, args.repeat)
        if "shared" in args.mixes:
            result["shared_mix"] = shared
        if "cc" in args.mixes:
            cc_warcs, mix = resample(warcs, languages, CC_ENGLISH, Path(tmp))
            result["cc_mix"] = {**measure_mix(cc_warcs, warmup, names, args.repeat)[0], "resampled": mix}
    print_result(result)


if __name__ == "__main__":
    main()
