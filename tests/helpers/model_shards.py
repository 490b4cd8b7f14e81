"""A shards folder in the format of pipeline/tokens/shards.py from real web text: the bundled sample
WARC, extracted by trafilatura, tokenized by a small SentencePiece BPE trained on it; and the tiny
train settings the multi-process tests share."""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.tokens.tokenizer import EOT, EOT_ID, PAD, PAD_ID

ROOT = Path(__file__).parents[2]
SAMPLE_WARC = ROOT / "data/sample/CC-SAMPLE-A-00002.warc.gz"


@functools.cache
def sample_texts() -> tuple[str, ...]:
    """Every main text of the sample's HTML responses; extracted once per test process (several
    modules build shards folders from it, and trafilatura takes seconds)."""
    import trafilatura
    from warcio.archiveiterator import ArchiveIterator

    texts = []
    with open(SAMPLE_WARC, "rb") as fh:
        for record in ArchiveIterator(fh):
            if record.rec_type == "response" and "html" in (record.http_headers.get_header("Content-Type") or ""):
                text = trafilatura.extract(record.content_stream().read())
                if text:
                    texts.append(text)
    return tuple(texts)


def _write_shard(folder: Path, name: str, docs: list[tuple[str, list[int], str]], dtype) -> dict:
    table = pa.table(
        {
            "doc_id": [d for d, _, _ in docs],
            "tokens": pa.array([t for _, t, _ in docs], type=pa.list_(dtype)),
            "n_tokens": pa.array([len(t) for _, t, _ in docs], type=pa.int32()),
            "n_bytes": pa.array([len(text.encode()) for _, _, text in docs], type=pa.int64()),
        }
    )
    pq.write_table(table, folder / name)
    digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    return {
        "path": name,
        "rows": len(docs),
        "tokens": sum(len(t) for _, t, _ in docs),
        "bytes": sum(len(text.encode()) for _, _, text in docs),
        "sha256": digest,
    }


def make_shards(folder: Path, vocab_size: int = 512, train_shards: int = 2) -> Path:
    """A shards folder (manifest.json, tokenizer.model, train-*.parquet, val-00000.parquet); cached."""
    if (folder / "manifest.json").is_file():
        return folder
    import sentencepiece as spm

    folder.mkdir(parents=True, exist_ok=True)
    texts = sample_texts()
    spm.SentencePieceTrainer.train(  # the special ids our tokenizer stage gives, which every reader checks
        sentence_iterator=iter(texts),
        model_prefix=str(folder / "tokenizer"),
        vocab_size=vocab_size,
        model_type="bpe",
        pad_id=PAD_ID,
        pad_piece=PAD,
        unk_id=1,
        eos_id=EOT_ID,
        eos_piece=EOT,
        bos_id=-1,
        byte_fallback=True,
        minloglevel=2,
        num_threads=2,
    )
    sp = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    eot_id = sp.piece_to_id(EOT)
    docs = [(f"doc-{i:04d}", sp.encode(t) + [eot_id], t) for i, t in enumerate(texts)]
    val, train = docs[:8], docs[8:]
    per = -(-len(train) // train_shards)
    entries = [
        dict(_write_shard(folder, f"train-{i:05d}.parquet", train[i * per : (i + 1) * per], pa.uint16()), split="train")
        for i in range(train_shards)
    ]
    entries.append(dict(_write_shard(folder, "val-00000.parquet", val, pa.uint16()), split="val"))
    tok_sha = hashlib.sha256((folder / "tokenizer.model").read_bytes()).hexdigest()
    totals = {
        split: {key: sum(e[key] for e in entries if e["split"] == split) for key in ("rows", "tokens", "bytes")}
        for split in ("train", "val")
    }
    manifest = {
        "format": "crawl2gpt-shards/1",
        "vocab_size": vocab_size,
        "dtype": "uint16",
        "eot_id": eot_id,
        "pad_id": PAD_ID,
        "tokenizer": {"path": "tokenizer.model", "sha256": tok_sha},
        "shards": entries,
        "totals": totals,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return folder


# The smallest GPT the training tests train in-process: seconds on a CPU. Each test adds what it measures.
TINY_TRAIN = dict(
    n_layer=2,
    n_head=2,
    n_embd=32,
    block_size=32,
    batch_size=4,
    eval_batches=2,
    warmup_steps=2,
    learning_rate=3e-3,
    sample_tokens=8,
    device="cpu",
)

# A 2-layer GPT that trains in seconds on CPU (DDP, FSDP and torchrun tests). AdamW: these tests
# compare how runs are distributed, FSDP2 needs it, and their tolerances were set with it.
SETTINGS = [
    "train.optimizer=adamw",
    "train.n_layer=2",
    "train.n_head=2",
    "train.n_embd=32",
    "train.block_size=32",
    "train.batch_size=4",
    "train.max_steps=6",
    "train.eval_interval=3",
    "train.eval_batches=2",
    "train.checkpoint_interval=3",
    "train.warmup_steps=2",
    "train.learning_rate=3e-3",
    "train.sample_tokens=8",
    "train.device=cpu",
]
