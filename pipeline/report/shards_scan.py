"""What the token shards hold, from one streaming pass over them (checksums verified): per shard, per
split and in total the documents, tokens, byte-fallback share (text the vocabulary had to spell byte by
byte) and tokens per document; the language mix, top domains, mean quality signals and a few decoded
documents. pipeline/report/build.py puts it in the report.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.hashing import stable_fraction
from pipeline.shard_format import SPLITS, load_manifest, open_shard
from pipeline.tokens.tokenizer import MODEL, byte_id_range, load

LENGTH_EDGES = [2.0**k for k in range(0, 21)]  # 1 .. 1M tokens, doubling
TOP_DOMAINS, TOP_LANGUAGES, SAMPLES, SAMPLE_TOKENS = 20, 15, 3, 256


class Tally:
    """Running totals over record batches of one shard or of all of them."""

    def __init__(self, signals: Sequence[str]):
        self.docs = self.tokens = self.byte_tokens = 0
        self.lengths = np.zeros(len(LENGTH_EDGES) - 1, dtype=np.int64)
        self.languages: Counter = Counter()
        self.language_tokens: Counter = Counter()
        self.domains: Counter = Counter()
        self.domain_tokens: Counter = Counter()
        self.signal_sum = dict.fromkeys(signals, 0.0)
        self.signal_n = dict.fromkeys(signals, 0)

    def add(self, batch: pa.RecordBatch, byte_ids: tuple[int, int]) -> None:
        n_tokens = batch.column("n_tokens").to_numpy(zero_copy_only=False)
        self.docs += batch.num_rows
        self.tokens += int(n_tokens.sum())
        self.lengths += np.histogram(n_tokens, bins=LENGTH_EDGES)[0]
        if byte_ids[0] >= 0:
            ids = pc.list_flatten(batch.column("tokens")).to_numpy(zero_copy_only=False)
            self.byte_tokens += int(np.count_nonzero((ids >= byte_ids[0]) & (ids <= byte_ids[1])))
        for column, docs, tokens in (
            ("language", self.languages, self.language_tokens),
            ("domain", self.domains, self.domain_tokens),
        ):
            if column in batch.schema.names:
                grouped = pa.table({"k": batch.column(column).fill_null("unknown"), "n": n_tokens})
                for row in grouped.group_by("k").aggregate([("n", "sum"), ("n", "count")]).to_pylist():
                    docs[row["k"]] += row["n_count"]
                    tokens[row["k"]] += row["n_sum"]
        for name in self.signal_sum:
            values = batch.column(name)
            self.signal_sum[name] += float(pc.sum(values).as_py() or 0.0)
            self.signal_n[name] += len(values) - values.null_count

    def summary(self) -> dict[str, Any]:
        return {
            "documents": self.docs,
            "tokens": self.tokens,
            "tokens_per_doc": round(self.tokens / self.docs, 1) if self.docs else 0.0,
            "byte_fallback_tokens": self.byte_tokens,
            "byte_fallback_share": round(self.byte_tokens / self.tokens, 6) if self.tokens else 0.0,
        }


def _signal_columns(schema: pa.Schema) -> list[str]:
    return [f.name for f in schema if pa.types.is_floating(f.type)]


def scan(shards_dir: Path) -> dict[str, Any]:
    """Every figure of the report from one pass over the (checksum-verified) shards."""
    manifest = load_manifest(shards_dir)
    sp = load(shards_dir / MODEL)
    byte_ids = byte_id_range(sp)
    first = open_shard(shards_dir, manifest["shards"][0]).schema_arrow if manifest["shards"] else pa.schema([])
    signals = _signal_columns(first)
    total, by_split, per_shard, samples = Tally(signals), {s: Tally([]) for s in SPLITS}, [], []
    for entry in manifest["shards"]:
        shard, tally = open_shard(shards_dir, entry), Tally([])
        columns = [
            c
            for c in ("doc_id", "url", "tokens", "n_tokens", "language", "domain", *signals)
            if c in shard.schema_arrow.names
        ]
        for batch in shard.iter_batches(batch_size=1024, columns=columns):
            for t in (total, by_split[entry["split"]], tally):
                t.add(batch, byte_ids)
            _keep_samples(samples, batch)
        top = tally.languages.most_common(1)
        per_shard.append(
            {
                "shard": entry["path"],
                "split": entry["split"],
                **tally.summary(),
                "top_language": top[0][0] if top else None,
            }
        )
    return {
        "vocab_size": manifest["vocab_size"],
        "dtype": manifest["dtype"],
        "byte_fallback_ids": list(byte_ids),
        "total": {"shards": len(manifest["shards"]), **total.summary()},
        "splits": {s: {"shards": manifest["totals"][s]["shards"], **t.summary()} for s, t in by_split.items()},
        "shards": per_shard,
        "tokens_per_doc_histogram": {"edges": LENGTH_EDGES, "counts": total.lengths.tolist()},
        "languages": _mix(total.languages, total.language_tokens, total.docs, TOP_LANGUAGES),
        "top_domains": _mix(total.domains, total.domain_tokens, total.docs, TOP_DOMAINS),
        "distinct_domains": len(total.domains),
        "quality_signals": {k: round(total.signal_sum[k] / total.signal_n[k], 6) for k in signals if total.signal_n[k]},
        "samples": [_decode(sp, s) for s in sorted(samples, reverse=True)],
    }


def _keep_samples(heap: list, batch: pa.RecordBatch) -> None:
    """Keep the SAMPLES documents with the smallest doc-id hash: a fixed, unbiased pick."""
    urls = batch.column("url").to_pylist() if "url" in batch.schema.names else [None] * batch.num_rows
    for i, doc_id in enumerate(batch.column("doc_id").to_pylist()):
        key = -stable_fraction(doc_id)  # a min-heap of negated keys keeps the smallest hashes
        if len(heap) < SAMPLES or key > heap[0][0]:
            tokens = batch.column("tokens")[i].values[:SAMPLE_TOKENS].to_pylist()
            entry = (key, doc_id, urls[i], batch.column("n_tokens")[i].as_py(), tokens)
            (heapq.heappush if len(heap) < SAMPLES else heapq.heapreplace)(heap, entry)


def _decode(sp, sample: tuple) -> dict[str, Any]:
    _, doc_id, url, n_tokens, tokens = sample
    return {
        "doc_id": doc_id,
        "url": url,
        "n_tokens": n_tokens,
        "shown_tokens": len(tokens),
        "text": sp.DecodeIds(tokens),
    }


def _mix(docs: Counter, tokens: Counter, total_docs: int, top: int) -> list[dict[str, Any]]:
    return [
        {"name": k, "documents": n, "tokens": int(tokens[k]), "share": round(n / total_docs, 4) if total_docs else 0.0}
        for k, n in docs.most_common(top)
    ]
