"""What the stages behind a shards folder removed: the counts and drop reasons of extract, filter and
dedup, read from their manifests (`_stage.json`), found through each stage's recorded inputs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.errors import StageIncompleteError
from pipeline.stage import MANIFEST, read_manifest

UPSTREAM = ("extract", "filter", "dedup")


def upstream_stats(start: Sequence[Path]) -> dict[str, dict[str, Any]]:
    """Counts and drop reasons of the extract/filter/dedup stages behind `start` (their manifests' inputs)."""
    found, queue, seen = {}, [Path(p) for p in start], set()
    while queue:
        folder = queue.pop(0)
        if folder.resolve() in seen:
            continue
        seen.add(folder.resolve())
        try:
            manifest = read_manifest(folder)
        except StageIncompleteError:
            continue
        if manifest.get("stage") in UPSTREAM and manifest["stage"] not in found:
            stats = manifest.get("stats", {})
            found[manifest["stage"]] = {
                "folder": str(folder),
                "docs_in": stats.get("docs_in", 0),
                "docs_out": stats.get("docs_out", 0),
                "drops": {k: v for k, v in sorted(stats.get("drops", {}).items(), key=lambda kv: -kv[1]) if v},
            }
            engine = (stats.get("extra") or {}).get("engine")
            if engine:  # extract's main-text engine (extract.engine)
                found[manifest["stage"]]["engine"] = engine
        queue += [Path(i["input"]) for i in manifest.get("inputs", []) if i.get("kind") == "stage"]
    return {s: found[s] for s in UPSTREAM if s in found}


def upstream_of(shards_dir: Path) -> list[Path]:
    """The shards stage's recorded inputs; else the run folder's sibling stage folders."""
    starts = []
    if (shards_dir / MANIFEST).is_file():
        starts = [Path(i["input"]) for i in read_manifest(shards_dir).get("inputs", []) if i.get("kind") == "stage"]
    return starts + [shards_dir.parent / s for s in reversed(UPSTREAM)]
