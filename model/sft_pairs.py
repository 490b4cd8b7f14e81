"""Instruction pairs derived from the curated corpus, for SFT without outside data.

Two recipes turn a real document into an Alpaca-format pair (docs/finetuning.md):
  title     the article's opening is the input, its <title> (trafilatura metadata) the answer
  continue  the opening paragraph(s) are the input, the paragraph(s) after them the answer
A document a recipe cannot use is counted under the reason (no_title, text_too_short, ...).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from pipeline.atomic import atomic_write_text
from pipeline.documents import iter_batches
from pipeline.errors import InputError
from pipeline.stage import MANIFEST, stage_parts

TITLE_INSTRUCTION = "Write a title for this article."
CONTINUE_INSTRUCTION = "Continue the text."
RECIPES = ("title", "continue")


def paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n|\n", text) if p.strip()]


def opening(paras: list[str], max_chars: int) -> str:
    """Whole paragraphs from the start up to max_chars (at least the first, cut at a word)."""
    out = []
    for p in paras:
        if out and sum(len(q) + 1 for q in out) + len(p) > max_chars:
            break
        out.append(p)
    text = "\n".join(out)
    return text if len(text) <= max_chars else text[:max_chars].rsplit(" ", 1)[0]


def title_pair(title: str | None, text: str, max_input_chars: int = 1500) -> tuple[dict | None, str | None]:
    """Recipe 'title': the article's opening is the input, its <title> (trafilatura metadata) the answer."""
    title = (title or "").strip()
    if not title:
        return None, "no_title"
    if not 8 <= len(title) <= 200:  # shorter are site names ("Home"), longer are not titles
        return None, "title_length"
    paras = paragraphs(text)
    if paras and paras[0].strip().lower() == title.lower():
        paras = paras[1:]  # the extractor kept the headline: the answer would be visible
    body = opening(paras, max_input_chars)
    if len(body) < 200:
        return None, "text_too_short"
    return {"instruction": TITLE_INSTRUCTION, "input": body, "output": title}, None


def continue_pair(text: str, max_input_chars: int = 800, max_output_chars: int = 600) -> tuple[dict | None, str | None]:
    """Recipe 'continue': the opening paragraph(s) are the input, the paragraph(s) after them the answer."""
    paras = [p for p in paragraphs(text) if len(p.split()) >= 5]  # menu lines and captions are not paragraphs
    if len(paras) < 2:
        return None, "too_few_paragraphs"
    head = opening(paras[:-1], max_input_chars)
    used = head.count("\n") + 1
    tail = opening(paras[used:], max_output_chars)
    if len(head) < 100 or len(tail) < 100:
        return None, "paragraphs_too_short"
    return {"instruction": CONTINUE_INSTRUCTION, "input": head, "output": tail}, None


def document_parts(source: str | Path) -> list[Path]:
    """Parquet parts of a finished stage folder (extract/filter/dedup), a folder of parts, or one file."""
    source = Path(source)
    if source.is_file():
        return [source]
    if (source / MANIFEST).is_file():
        return stage_parts(source)
    parts = sorted(source.glob("*.parquet"))
    if not parts:
        raise InputError(f"{source} holds no document Parquet parts; give a finished extract, filter or dedup folder")
    return parts


def derive_pairs(
    sources: Iterable[str | Path],
    out_jsonl: str | Path,
    recipes: Sequence[str] = RECIPES,
    max_pairs: int = 0,
    max_input_chars: int = 1500,
) -> Counter:
    """Write Alpaca-format pairs derived from real documents to out_jsonl; returns counts per outcome.

    Each line also carries `recipe`, `doc_id` and `url`, so every pair can be traced to its page.
    max_input_chars bounds the article opening given as input (small-context models need less).
    """
    unknown = set(recipes) - set(RECIPES)
    if unknown:
        raise InputError(f"unknown pair recipes {sorted(unknown)}; recipes are {RECIPES}")
    counts, lines = Counter(), []
    for part in (p for s in sources for p in document_parts(s)):
        for batch in iter_batches(part, columns=["doc_id", "url", "title", "text"]):
            for doc in batch.to_pylist():
                counts["documents"] += 1
                for recipe in recipes:
                    text = doc["text"] or ""
                    pair, reason = (
                        title_pair(doc["title"], text, max_input_chars)
                        if recipe == "title"
                        else continue_pair(text, min(800, max_input_chars))
                    )
                    counts[f"{recipe}:{reason or 'pairs'}"] += 1
                    if pair:
                        traced = dict(pair, recipe=recipe, doc_id=doc["doc_id"], url=doc["url"])
                        lines.append(json.dumps(traced, ensure_ascii=False))
    if max_pairs:
        lines = lines[:max_pairs]
    counts["pairs"] = len(lines)
    atomic_write_text(Path(out_jsonl), "".join(line + "\n" for line in lines))
    return counts
