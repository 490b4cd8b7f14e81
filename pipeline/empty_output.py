"""Why a stage folder holds no documents, in one line a user can act on.

An empty output is an ordinary outcome (every page of a WARC filtered out, a file that is not a
WARC), and every data stage writes one like any other. Only a stage that cannot work on nothing
(training a tokenizer, writing token shards) fails, and it should name where the documents were
lost, not its own symptom: "filter kept 0 of 2 documents (top reasons: ...)", not "no text".

The cause is found by walking the manifests back through the stage folders they list as inputs
and taking the earliest stage that kept nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pipeline.errors import StageIncompleteError
from pipeline.stage import read_manifest

TOP_REASONS = 3
# What a user can do when this stage kept nothing.
HINTS = {
    "extract": "check that the inputs are WARC files holding HTML responses",
    "filter": "relax the rules that dropped them (--set filter.<family>.<setting>=...) or give more input",
    "dedup": "every document was a duplicate of another; give more input",
}


def top_reasons(drops: dict[str, int], n: int = TOP_REASONS) -> str:
    """'rule_a 5, rule_b 2' for the `n` largest drop counts."""
    largest = sorted(((k, v) for k, v in drops.items() if v), key=lambda kv: (-kv[1], kv[0]))[:n]
    return ", ".join(f"{k} {v}" for k, v in largest)


def describe_empty(stats: dict[str, Any]) -> str:
    """One stage's stats (docs_out == 0) as a sentence: what came in and why nothing came out."""
    stage, docs_in = stats.get("stage", "a stage"), stats.get("docs_in", 0)
    reasons = top_reasons(stats.get("drops") or {})
    if stage == "extract" and docs_in == 0:
        files = (stats.get("extra") or {}).get("files", 0)
        errors = stats.get("errors") or []
        head = f"extract found 0 documents in {files} input file{'s' * (files != 1)}"
        return head + (f" (first error: {errors[0]})" if errors else " (no response records)")
    if docs_in == 0:  # its input was empty and nothing upstream says why
        return f"{stage} received 0 documents"
    head = f"{stage} kept 0 of {docs_in} documents"
    return head + (f" (top reasons: {reasons})" if reasons else "")


def hint_for(stats: dict[str, Any]) -> str:
    if stats.get("stage") == "extract" or stats.get("docs_in", 0):
        return HINTS.get(stats.get("stage"), "give more input")
    return "give more input"


def _manifest(folder: Path) -> dict[str, Any] | None:
    try:
        return read_manifest(folder)
    except StageIncompleteError:
        return None


def empty_cause(folders: Iterable[str | Path]) -> tuple[str, str] | None:
    """(what happened, what to do) for the earliest stage upstream of (and including) `folders`
    whose output is empty; None when no stage on the way kept 0 documents."""
    cause, seen = None, set()
    todo = [Path(f) for f in folders]
    while todo:  # breadth-first towards the raw inputs: the last empty stage met is the earliest
        folder = todo.pop(0)
        if folder in seen or not folder.is_dir():
            continue
        seen.add(folder)
        manifest = _manifest(folder)
        if manifest is None:
            continue
        stats = manifest.get("stats") or {}
        if stats.get("docs_out", 1) == 0 and stats.get("stage") != "tokenizer":
            cause = describe_empty(stats), hint_for(stats)
        todo += [Path(i["input"]) for i in manifest.get("inputs", []) if i.get("kind") == "stage"]
    return cause
