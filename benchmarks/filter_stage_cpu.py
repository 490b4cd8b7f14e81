"""CPU cost of the filter stage, this tree beside the code of an earlier revision, on the same
extracted documents; and proof that both write the same thing.

The WARCs are extracted once (this tree's extract stage, default config). Then one process per
side (this tree; `git archive REV` unpacked in a temp folder) loads what the extract stage would
already have loaded (fastText, a zstd Parquet writer), runs the filter stage once (the first run
of a process: lingua loads the models it needs then) and `--repeat` more times (warm), all timed
in CPU seconds of the process (one core), and times gopher_repetition.signals and evaluate() per document
(the rule called first on a text pays the word split, as in the stage). The sides take turns.
Every Parquet table both sides wrote (kept, rejects, by_language) must be equal, value for value.

    python -m benchmarks.filter_stage_cpu [WARC ...] [--rev d7541d4] [--repeat 3] [--set KEY=VALUE ...]

Prints one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.harness import ROOT, add_warcs_argument, module_command, print_result, run_json, timed

BASELINE = "d7541d4"  # the filter stage before the issue-17 speed work


def measure(code: Path, extracted: Path, out: Path, overrides: list[str], repeat: int) -> dict:
    """Runs in a child process whose working directory, the first place it imports from, is `code`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from crawl2gpt.config import RunConfig
    from pipeline.filter import gopher_repetition, language
    from pipeline.filter.stage import FILTER, evaluate
    from pipeline.stage import run_stage

    cfg = RunConfig(workers=1).with_overrides(overrides)
    language.fasttext_model()
    pq.write_table(pa.table({"warm": [1]}), out / "warm.parquet", compression="zstd")

    def stage() -> float:
        with timed() as clock:
            run_stage(FILTER, [str(extracted)], out / "filter", cfg, force=True)
        return clock.cpu_s

    first = stage()
    warm = min(stage() for _ in range(repeat))
    texts = [
        t or ""
        for p in sorted(extracted.glob("part-*.parquet"))
        for t in pq.read_table(p, columns=["text"]).column("text").to_pylist()
    ]
    langs = language.detect(texts, cfg.filter.language)

    def ms_per_doc(rule) -> float:
        best = float("inf")
        for _ in range(repeat):
            with timed() as clock:
                for text, lang in zip(texts, langs):
                    rule(text, lang)
            best = min(best, clock.cpu_s)
        return round(1000 * best / max(len(texts), 1), 3)

    result = {
        "documents": len(texts),
        "first_run_cpu_s": round(first, 3),
        "warm_cpu_s": round(warm, 3),
        "gopher_repetition_ms_per_doc": ms_per_doc(
            lambda t, _: gopher_repetition.signals(t, cfg.filter.gopher_repetition)
        ),
        "evaluate_ms_per_doc": ms_per_doc(lambda t, lang: evaluate(t, lang, cfg.filter)),
    }
    return result  # the parent reads the stage's Parquet outputs from `out` itself


def output_tables(folder: Path) -> dict[str, list[dict]]:
    """Every Parquet file the filter stage wrote, as rows (compared exactly between the two sides)."""
    import pyarrow.parquet as pq

    return {str(p.relative_to(folder)): pq.read_table(p).to_pylist() for p in sorted(folder.rglob("*.parquet"))}


def run_side(code: Path, extracted: Path, overrides: list[str], repeat: int) -> tuple[dict, dict]:
    """One side in a child process started in `code`: its pipeline/, crawl2gpt/ and model/ come
    first on the path (the working directory), this benchmark from ROOT (PYTHONPATH)."""
    with tempfile.TemporaryDirectory() as tmp:
        command = module_command("benchmarks.filter_stage_cpu", ["--child", code, extracted, tmp, repeat, *overrides])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        return run_json(command, cwd=code, env=env), output_tables(Path(tmp) / "filter")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_warcs_argument(parser)
    parser.add_argument("--rev", default=BASELINE, help="the earlier revision to compare with")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        help="config override, e.g. filter.language.languages=[]",
    )
    args = parser.parse_args()
    from crawl2gpt.config import RunConfig
    from pipeline.extract.stage import EXTRACT
    from pipeline.stage import run_stage

    with tempfile.TemporaryDirectory() as tmp:
        extracted, baseline = Path(tmp) / "extract", Path(tmp) / "baseline"
        run_stage(
            EXTRACT,
            [str(w.resolve()) for w in args.warcs],
            extracted,
            RunConfig(workers=1).with_overrides(args.overrides),
        )
        baseline.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", args.rev, "pipeline", "crawl2gpt", "model"],
            capture_output=True,
            check=True,
        )
        subprocess.run(["tar", "-x", "-C", str(baseline)], input=archive.stdout, check=True)
        sides = {"before": baseline, "after": ROOT}
        results: dict[str, list[dict]] = {name: [] for name in sides}
        tables = {}
        for _ in range(2):  # take turns, so a busy moment hurts both
            for name, code in sides.items():
                result, tables[name] = run_side(code, extracted, args.overrides, args.repeat)
                results[name].append(result)
    best = {name: {k: min(r[k] for r in runs) for k in runs[0]} for name, runs in results.items()}
    same = tables["before"].keys() == tables["after"].keys() and all(
        tables["before"][k] == tables["after"][k] for k in tables["before"]
    )
    before, after = best["before"], best["after"]
    print_result(
        {
            "timing": "CPU seconds of one process (one core), fastest of 2 turns",
            "baseline_rev": args.rev,
            "overrides": args.overrides,
            "before": before,
            "after": after,
            "speedup_first_run": round(before["first_run_cpu_s"] / after["first_run_cpu_s"], 2),
            "speedup_warm": round(before["warm_cpu_s"] / after["warm_cpu_s"], 2),
            "speedup_gopher_repetition": round(
                before["gopher_repetition_ms_per_doc"] / after["gopher_repetition_ms_per_doc"], 2
            ),
            "outputs_identical": same,
            "tables": len(tables["after"]),
            "rows": sum(len(rows) for rows in tables["after"].values()),
        }
    )
    if not same:
        raise SystemExit("the filter stage's outputs differ from the baseline's")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        code, extracted, out, repeat, *overrides = sys.argv[2:]
        print_result(measure(Path(code), Path(extracted), Path(out), overrides, int(repeat)))
    else:
        main()
