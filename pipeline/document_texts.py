"""Documents' text from the files a user points at: what `crawl2gpt quality train` learns from and
what `crawl2gpt ablate --eval` measures on.

A path is one of
  - a Parquet file (its `text` column, one document per row: a stage part, a rejects part);
  - a JSONL file (one JSON object per line with a "text" field; blank lines skipped);
  - any other file: UTF-8 text, the whole file one document;
  - a folder: every file of those kinds directly in it, in name order (a filter stage folder gives
    its kept parts; its `rejects/` sub-folder is a path of its own), hidden files and the stage
    manifest left out.
Empty documents (only whitespace) are skipped: they teach a classifier nothing and hold no bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow.parquet as pq

from pipeline.errors import InputError

JSONL_SUFFIXES = (".jsonl", ".json")
SKIPPED = ("_stage.json",)  # a stage folder's manifest describes the data, it is not a document


def document_files(path: str | Path) -> list[Path]:
    """The files a path stands for (module docstring); InputError when there are none."""
    path = Path(path).expanduser()
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise InputError(f"{path} does not exist; give a text, JSONL or Parquet file, or a folder of them")
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".") and p.name not in SKIPPED)
    if not files:
        raise InputError(f"{path} holds no document files; give a text, JSONL or Parquet file, or a folder of them")
    return files


def iter_texts(paths: Sequence[str | Path]) -> Iterator[str]:
    """Every non-empty document text of `paths`, in order."""
    for spec in paths:
        for path in document_files(spec):
            yield from (text for text in _file_texts(path) if text and text.strip())


def read_texts(paths: Sequence[str | Path]) -> list[str]:
    return list(iter_texts(paths))


def _file_texts(path: Path) -> Iterator[str]:
    if path.suffix == ".parquet":
        yield from _parquet_texts(path)
    elif path.suffix in JSONL_SUFFIXES:
        yield from _jsonl_texts(path)
    else:
        try:
            yield path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise InputError(f"{path} is not UTF-8 text ({err}); give text, JSONL or Parquet documents") from None


def _parquet_texts(path: Path) -> Iterator[str]:
    try:
        parquet = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises ArrowInvalid and OSError for a damaged or foreign file
        raise InputError(
            f"{path} cannot be read as Parquet ({err}); give a stage's part or another Parquet file"
        ) from None
    if "text" not in parquet.schema_arrow.names:
        raise InputError(
            f"{path} has no `text` column (columns: {', '.join(parquet.schema_arrow.names)}); "
            "give Parquet documents with a text column"
        )
    for batch in parquet.iter_batches(columns=["text"], batch_size=1024):
        yield from (t for t in batch.column(0).to_pylist() if t)


def _jsonl_texts(path: Path) -> Iterator[str]:
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise InputError(f"{path}:{number} is not JSON ({err}); give one JSON object per line") from None
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                raise InputError(f'{path}:{number} has no "text" string; give objects like {{"text": "..."}}')
            yield row["text"]
