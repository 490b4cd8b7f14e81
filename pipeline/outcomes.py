"""Where a finished document stage keeps each document's outcome: kept parts and rejects/.

The filter and dedup stages write the documents they keep as top-level parts and the ones they
drop, with the reason, under rejects/ (pipeline/filter/stage.py, pipeline/dedup/stage.py). The
report and `crawl2gpt report --compare` read both, through the files the manifest lists.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import InputError
from pipeline.stage import read_manifest, stage_parts

REJECTS = "rejects"


def outcome_files(folder: str | Path, stage: str) -> list[tuple[Path, bool]]:
    """(parquet file, holds dropped documents) of a finished `stage` folder: kept parts, then rejects."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest.get("stage") != stage:
        raise InputError(f"{folder} holds the {manifest.get('stage')!r} stage, not {stage!r}")
    root = folder.resolve()
    rejects = sorted(
        (root / rel).resolve()
        for rel in manifest.get("files", {})
        if rel.startswith(f"{REJECTS}/") and rel.endswith(".parquet")
    )
    outside = [p for p in rejects if p.parent != root / REJECTS]
    if outside:
        raise InputError(f"{folder}'s manifest lists {outside[0]}, which is outside {REJECTS}/; refusing it")
    return [(p, False) for p in stage_parts(folder)] + [(p, True) for p in rejects]
