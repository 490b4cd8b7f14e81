"""Stage `shards`: encode deduplicated documents into Parquet token shards plus a manifest.

One part per dedup parquet part, encoded in its own process (the SentencePiece model is
loaded once per process). A shard row is one document:

  doc_id string | tokens list<uint16|uint32> (ends with <|endoftext|> when append_eot) |
  n_tokens int32 | n_bytes int64 (the document text's UTF-8 bytes) | url, domain, language,
  language_score and the float quality signals the filter stage wrote (whichever exist upstream;
  the report reads them)

Documents go to `val` when their doc-id hash is below `val_fraction`, else to `train`, so the
split is stable across reruns and tokenizers. A part's output is cut into a new file past
`target_shard_tokens`; shards never span parts, so a failed part reruns alone. finish() numbers
the files `train-00000.parquet`, `val-00000.parquet`, ... and writes `manifest.json` with row,
token and text-byte counts and a sha256 per shard; readers refuse a shard whose bytes do not match.

The text bytes are counted here, from the text that was encoded, because nothing downstream can
recover them: SentencePiece normalizes (whitespace runs collapse), so decoding the tokens gives
other bytes. Training divides its validation loss by them (bits per byte: a loss that compares runs
with different tokenizers, model/ablation.py).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.atomic import atomic_write_text, fsync_dir
from pipeline.config import PipelineConfig
from pipeline.documents import iter_batches
from pipeline.empty_output import empty_cause
from pipeline.errors import InputError
from pipeline.hashing import stable_fractions
from pipeline.report.build import write_report
from pipeline.shard_format import FORMAT, MANIFEST_JSON, SPLITS, token_dtype
from pipeline.stage import (
    PartResult,
    Stage,
    StageStats,
    default_workers,
    merge_counts,
    read_manifest,
    sha256_file,
    stage_parts,
)
from pipeline.tokens.tokenizer import EOT_ID, MODEL, PAD_ID, load

META_COLUMNS = ("url", "domain", "language", "language_score")
ROW_GROUP_DOCS = 1024  # documents per Parquet row group: a loader's unit of streaming reads
_PROCESSORS: dict[str, Any] = {}  # one SentencePiece model per worker process


def _processor(model: str):
    if model not in _PROCESSORS:
        _PROCESSORS[model] = load(model)
    return _PROCESSORS[model]


# --------------------------------------------------------------------------- inputs


def split_inputs(inputs: Sequence[str]) -> tuple[list[Path], Path]:
    """(dedup folders, tokenizer folder), told apart by their manifests' `stage`."""
    by_stage: dict[str, list[Path]] = {}
    for spec in inputs:
        by_stage.setdefault(read_manifest(Path(spec)).get("stage"), []).append(Path(spec))
    dedup, tokenizer = by_stage.pop("dedup", []), by_stage.pop("tokenizer", [])
    if by_stage:
        raise InputError(f"the shards stage reads dedup and tokenizer folders, not {sorted(map(str, by_stage))}")
    if not dedup or len(tokenizer) != 1:
        raise InputError(
            f"the shards stage needs one or more finished dedup folders and exactly one tokenizer folder; "
            f"got dedup={[str(p) for p in dedup]} tokenizer={[str(p) for p in tokenizer]}"
        )
    return dedup, tokenizer[0]


def checked_inputs(inputs: Sequence[str]) -> tuple[list[Path], Path]:
    """(dedup folders, tokenizer.model), refusing other folders and a foreign or corrupt model
    before any encoding starts."""
    dedup, tokenizer = split_inputs(inputs)
    load(tokenizer / MODEL)
    return dedup, tokenizer / MODEL


def carried_columns(schema: pa.Schema) -> list[str]:
    """Upstream columns copied into shards: report metadata and float quality signals."""
    floats = [f.name for f in schema if pa.types.is_floating(f.type) and f.name not in META_COLUMNS]
    return [c for c in META_COLUMNS if c in schema.names] + floats


# --------------------------------------------------------------------------- encoding


def encode_batch(sp, texts: list[str], dtype: pa.DataType, append_eot: bool, threads: int) -> pa.ListArray:
    """Token lists as one Arrow list array, built from flat numpy buffers (no per-token objects)."""
    ids = sp.encode(texts, out_type=int, num_threads=threads)
    if append_eot:
        for row in ids:
            row.append(EOT_ID)
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    values = np.fromiter(itertools.chain.from_iterable(ids), dtype=dtype.to_pandas_dtype(), count=int(offsets[-1]))
    return pa.LargeListArray.from_arrays(offsets, values).cast(pa.list_(dtype))


class ShardWriter:
    """Writes one split of one part, starting a new file past `target_tokens`.

    Rows are buffered into row groups of ROW_GROUP_DOCS documents: the val split receives a few
    rows per batch, and one row group per write would make its files slow to scan.
    """

    def __init__(self, workdir: Path, split: str, part_index: int, schema: pa.Schema, target_tokens: int):
        self.workdir, self.split, self.part_index, self.schema = workdir, split, part_index, schema
        self.target_tokens, self.files, self._writer = target_tokens, [], None
        self._pending: list[pa.Table] = []
        self._pending_rows = self._rows = self._tokens = self._bytes = 0

    def write(self, table: pa.Table) -> None:
        """Append rows; a file closes at the first row that brings it to `target_tokens`."""
        while table.num_rows:
            room = self.target_tokens - self._tokens
            reached = np.cumsum(table.column("n_tokens").to_numpy()) >= room
            take = int(np.argmax(reached)) + 1 if reached.any() else table.num_rows
            self._append(table.slice(0, take))
            table = table.slice(take)

    def _append(self, table: pa.Table) -> None:
        self._pending.append(table)
        self._pending_rows += table.num_rows
        self._rows += table.num_rows
        self._tokens += int(pc.sum(table.column("n_tokens")).as_py())
        self._bytes += int(pc.sum(table.column("n_bytes")).as_py() or 0)
        if self._tokens >= self.target_tokens:
            self.close()
        elif self._pending_rows >= ROW_GROUP_DOCS:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        if self._writer is None:
            self._path = self.workdir / f".{self.split}-p{self.part_index:05d}-{len(self.files):03d}.parquet"
            self._writer = pq.ParquetWriter(self._path, self.schema, compression="zstd")
        self._writer.write_table(pa.concat_tables(self._pending))
        self._pending, self._pending_rows = [], 0

    def close(self) -> None:
        self._flush()
        if self._writer is None:
            return
        self._writer.close()
        with open(self._path, "rb+") as fh:
            os.fsync(fh.fileno())
        self.files.append(
            {
                "tmp": self._path.name,
                "split": self.split,
                "part": self.part_index,
                "seq": len(self.files),
                "rows": self._rows,
                "tokens": self._tokens,
                "bytes": self._bytes,
                "sha256": sha256_file(self._path),
            }
        )
        self._writer, self._rows, self._tokens, self._bytes = None, 0, 0, 0


def encode_part(part: dict[str, Any], workdir: Path, cfg: PipelineConfig) -> tuple[list[dict], dict[str, int]]:
    sp = _processor(part["model"])
    dtype = token_dtype(sp.GetPieceSize())
    source_schema = pq.read_schema(part["path"])
    extra = carried_columns(source_schema)
    schema = pa.schema(
        [("doc_id", pa.string()), ("tokens", pa.list_(dtype)), ("n_tokens", pa.int32()), ("n_bytes", pa.int64())]
        + [source_schema.field(c) for c in extra]
    )
    for stale in workdir.glob(f".*-p{part['index']:05d}-*.parquet"):  # left by a failed attempt of this part
        stale.unlink()
    writers = {s: ShardWriter(workdir, s, part["index"], schema, cfg.shards.target_shard_tokens) for s in SPLITS}
    counts = {"docs_in": 0, "docs_out": 0, "empty_text": 0, "tokens": 0, "bytes": 0}
    for batch in iter_batches(part["path"], columns=["doc_id", "text", *extra]):
        counts["docs_in"] += batch.num_rows
        has_text = pc.fill_null(pc.greater(pc.utf8_length(batch.column("text")), 0), False)
        kept = batch.filter(has_text)
        counts["empty_text"] += batch.num_rows - kept.num_rows
        batch = kept
        if batch.num_rows == 0:
            continue
        tokens = encode_batch(sp, batch.column("text").to_pylist(), dtype, cfg.shards.append_eot, part["threads"])
        n_tokens = pc.list_value_length(tokens).cast(pa.int32())
        n_bytes = pc.binary_length(batch.column("text")).cast(pa.int64())  # UTF-8 bytes of the encoded text
        table = pa.Table.from_arrays(
            [batch.column("doc_id"), tokens, n_tokens, n_bytes] + [batch.column(c) for c in extra], schema=schema
        )
        is_val = pa.array(stable_fractions(batch.column("doc_id").to_pylist()) < cfg.shards.val_fraction)
        writers["val"].write(table.filter(is_val))
        writers["train"].write(table.filter(pc.invert(is_val)))
        counts["docs_out"] += batch.num_rows
        counts["tokens"] += int(pc.sum(n_tokens).as_py())
        counts["bytes"] += int(pc.sum(n_bytes).as_py())
    for writer in writers.values():
        writer.close()
    return writers["train"].files + writers["val"].files, counts


# --------------------------------------------------------------------------- the stage


class ShardsStage(Stage):
    name = "shards"
    config_sections = ("shards",)
    report_files = ("report*",)  # report.json, report.html, report-*.png: for people, not for training

    def check_inputs(self, inputs: Sequence[str], cfg: PipelineConfig) -> None:
        """`crawl2gpt stage shards` checks its inputs before Prefect starts; the plan does again."""
        checked_inputs(inputs)

    def plan(self, inputs: Sequence[str], cfg: PipelineConfig) -> list[dict[str, Any]]:
        dedup, model = checked_inputs(inputs)
        paths = [p for folder in dedup for p in stage_parts(folder)]
        if not paths:
            raise InputError(f"dedup folders {[str(d) for d in dedup]} hold no parquet parts; rerun the dedup stage")
        # Parts run in parallel processes; split the cores between them rather than oversubscribe.
        threads = max(1, (os.cpu_count() or 1) // min(default_workers(cfg), len(paths)))
        return [
            {"index": i, "path": str(p), "model": str(model), "dedup": [str(d) for d in dedup], "threads": threads}
            for i, p in enumerate(paths)
        ]

    def run_part(self, part: dict[str, Any], workdir: Path, cfg: PipelineConfig) -> PartResult:
        started = time.time()
        files, counts = encode_part(part, Path(workdir), cfg)
        return PartResult(
            part=Path(part["path"]).name,
            outputs=[f["tmp"] for f in files],
            counts=counts,
            seconds=time.time() - started,
            meta={"files": files, "model": part["model"], "dedup": part["dedup"]},
        )

    def finish(self, workdir: Path, results: list[PartResult], cfg: PipelineConfig) -> StageStats:
        workdir = Path(workdir)
        counts = merge_counts(results)
        if counts.get("docs_out", 0) == 0:
            cause = empty_cause(results[0].meta["dedup"]) if results and not counts.get("docs_in") else None
            if cause:  # reached with tokenizer.reuse: no tokenizer training stopped the run earlier
                raise InputError(f"{cause[0]}: there is nothing to shard; {cause[1]}")
            raise InputError(
                f"no documents to shard: the {counts.get('docs_in', 0)} input documents hold no text. "
                "Check the filter and dedup stage reports (crawl2gpt report RUN_DIR)."
            )
        shutil.copyfile(results[0].meta["model"], workdir / MODEL)  # the shards folder is self-contained
        sp = load(workdir / MODEL)
        entries = number_shards(workdir, [f for r in results for f in r.meta["files"]])
        manifest = {
            "format": FORMAT,
            "vocab_size": sp.GetPieceSize(),
            "dtype": str(token_dtype(sp.GetPieceSize())),
            "eot_id": EOT_ID,
            "pad_id": PAD_ID,
            "append_eot": cfg.shards.append_eot,
            "tokenizer": {"path": MODEL, "sha256": sha256_file(workdir / MODEL)},
            "shards": entries,
            "totals": {s: split_totals(entries, s) for s in SPLITS},
            "config": {
                "shards": cfg.shards.model_dump(mode="json"),
                "tokenizer": cfg.tokenizer.model_dump(mode="json"),
            },
        }
        atomic_write_text(workdir / MANIFEST_JSON, json.dumps(manifest, indent=2))
        report = write_report(workdir, upstream=[Path(d) for d in results[0].meta["dedup"]])
        extra = {
            "shards": len(entries),
            "dtype": manifest["dtype"],
            "vocab_size": manifest["vocab_size"],
            **{f"{s}_{k}": v for s in SPLITS for k, v in manifest["totals"][s].items()},
            "byte_fallback_share": report["total"]["byte_fallback_share"],
            "encode_seconds": round(sum(r.seconds for r in results), 3),
        }
        return StageStats(
            stage=self.name,
            docs_in=counts.get("docs_in", 0),
            docs_out=counts.get("docs_out", 0),
            drops={"empty_text": counts.get("empty_text", 0)},
            extra=extra,
        )


def number_shards(workdir: Path, files: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rename the parts' files to `train-00000.parquet`, ... in (part, sequence) order."""
    entries = []
    for split in SPLITS:
        ordered = sorted((f for f in files if f["split"] == split), key=lambda f: (f["part"], f["seq"]))
        for i, f in enumerate(ordered):
            name = f"{split}-{i:05d}.parquet"
            os.replace(workdir / f["tmp"], workdir / name)
            entries.append(
                {
                    "path": name,
                    "split": split,
                    "rows": f["rows"],
                    "tokens": f["tokens"],
                    "bytes": f["bytes"],
                    "sha256": f["sha256"],
                }
            )
    fsync_dir(workdir)
    return entries


def split_totals(entries: list[dict[str, Any]], split: str) -> dict[str, int]:
    mine = [e for e in entries if e["split"] == split]
    return {
        "shards": len(mine),
        "rows": sum(e["rows"] for e in mine),
        "tokens": sum(e["tokens"] for e in mine),
        "bytes": sum(e["bytes"] for e in mine),
    }


SHARDS = ShardsStage()
