"""Token loader throughput: model.data.TokenWindows vs nanoGPT's memmap get_batch, same tokens.

Input: a shards folder (the shards stage's output), or by default one built here from the
real web pages in ../shared/data/warc (trafilatura text, a SentencePiece BPE trained on it).
So that a measurement spans many batches and shard switches, the built folder repeats the
corpus's token stream up to --min-tokens over 4 train shards (repetition changes no cost).
The peer is nanoGPT's data loading (train.py get_batch): one flat uint16 .bin file of the
same tokens, np.memmap, random offsets, torch.stack of slices.

    python -m benchmarks.loader_throughput [--shards DIR] [--batch-size 16] [--block-size 1024] [--batches 400]
Last line: one JSON object (tokens/s of both, ratio ours / nanoGPT).
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from benchmarks.harness import BENCH_DIR, SHARED, print_result, timed
from model.data import TokenWindows, load_tokens, shard_paths


def web_texts(pattern: str) -> list[str]:
    import trafilatura
    from warcio.archiveiterator import ArchiveIterator

    texts = []
    for path in sorted(glob.glob(pattern)):
        with open(path, "rb") as fh:
            for record in ArchiveIterator(fh):
                if record.rec_type == "response" and "html" in (record.http_headers.get_header("Content-Type") or ""):
                    text = trafilatura.extract(record.content_stream().read())
                    if text:
                        texts.append(text)
    if not texts:
        raise SystemExit(f"no HTML pages found in {pattern}")
    return texts


def build_shards(folder: Path, warcs: str, min_tokens: int, n_shards: int = 4) -> Path:
    import sentencepiece as spm

    folder.mkdir(parents=True, exist_ok=True)
    texts = web_texts(warcs)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_prefix=str(folder / "tokenizer"),
        vocab_size=4096,
        model_type="bpe",
        user_defined_symbols=["<|endoftext|>"],
        byte_fallback=True,
        minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    eot = sp.piece_to_id("<|endoftext|>")
    docs = [sp.encode(t) + [eot] for t in texts]
    corpus = sum(map(len, docs))
    docs = docs * max(1, -(-min_tokens // corpus))
    per = -(-len(docs) // n_shards)
    entries = []
    for i in range(n_shards):
        part = docs[i * per : (i + 1) * per]
        name = f"train-{i:05d}.parquet"
        pq.write_table(
            pa.table(
                {
                    "doc_id": [f"d{i}-{j}" for j in range(len(part))],
                    "tokens": pa.array(part, type=pa.list_(pa.uint16())),
                    "n_tokens": pa.array([len(d) for d in part], type=pa.int32()),
                }
            ),
            folder / name,
        )
        entries.append(
            {
                "path": name,
                "split": "train",
                "rows": len(part),
                "tokens": sum(map(len, part)),
                "sha256": hashlib.sha256((folder / name).read_bytes()).hexdigest(),
            }
        )
    manifest = {
        "format": "crawl2gpt-shards/1",
        "vocab_size": 4096,
        "dtype": "uint16",
        "eot_id": eot,
        "pad_id": eot,
        "tokenizer": {"path": "tokenizer.model", "sha256": ""},
        "shards": entries,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def time_ours(shards: Path, batch: int, block: int, batches: int) -> float:
    loader = TokenWindows(shards, "train", block, batch, seed=0)
    loader.next_batch()  # first shard read and checksum outside the timing, as for the peer's file
    with timed() as clock:
        for _ in range(batches):
            x, y = loader.next_batch()
    return batch * block * batches / clock.wall_s


def time_nanogpt(bin_path: Path, batch: int, block: int, batches: int) -> float:
    rng = np.random.default_rng(0)
    with timed() as clock:
        for _ in range(batches):
            data = np.memmap(
                bin_path, dtype=np.uint16, mode="r"
            )  # nanoGPT re-opens it per batch (avoids a memory leak)
            ix = rng.integers(0, len(data) - block, batch)
            # x and y as nanoGPT builds them (the work is measured; the batch itself is not used)
            torch.stack([torch.from_numpy(data[i : i + block].astype(np.int64)) for i in ix])
            torch.stack([torch.from_numpy(data[i + 1 : i + 1 + block].astype(np.int64)) for i in ix])
    return batch * block * batches / clock.wall_s


def add_shard_arguments(parser: argparse.ArgumentParser) -> None:
    """--shards (an existing folder) or the WARCs to build one from (--warcs, --work, --min-tokens)."""
    parser.add_argument("--shards", type=Path, default=None)
    parser.add_argument("--warcs", default=str(SHARED / "warc" / "CC-SAMPLE-A-*.warc.gz"), help="a glob pattern")
    parser.add_argument("--work", type=Path, default=BENCH_DIR / "loader")
    parser.add_argument("--min-tokens", type=int, default=20_000_000)


def shards_from(args) -> Path:
    """The --shards folder, or one built once under --work from --warcs."""
    if args.shards is not None:
        return args.shards
    shards = args.work / "shards"
    if not (shards / "manifest.json").is_file():
        build_shards(shards, args.warcs, args.min_tokens)
    return shards


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_shard_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--block-size", type=int, default=1024)
    parser.add_argument("--batches", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    shards = shards_from(args)
    bin_path = args.work / "train.bin"  # the peer's input: the same tokens, flat
    bin_path.parent.mkdir(parents=True, exist_ok=True)
    tokens = np.concatenate([load_tokens(p) for p in shard_paths(shards, "train")]).astype(np.uint16)
    tokens.tofile(bin_path)
    ours = max(time_ours(shards, args.batch_size, args.block_size, args.batches) for _ in range(args.repeats))
    peer = max(time_nanogpt(bin_path, args.batch_size, args.block_size, args.batches) for _ in range(args.repeats))
    print(f"TokenWindows  {ours / 1e6:8.1f} M tokens/s\nnanoGPT memmap {peer / 1e6:7.1f} M tokens/s")
    print_result(
        {
            "benchmark": "loader_throughput",
            "shards": str(shards),
            "train_tokens": int(len(tokens)),
            "batch_size": args.batch_size,
            "block_size": args.block_size,
            "batches": args.batches,
            "ours_tokens_per_s": ours,
            "nanogpt_memmap_tokens_per_s": peer,
            "ratio": ours / peer,
            "machine": "2-core CPU sandbox, no GPU" if not torch.cuda.is_available() else torch.cuda.get_device_name(),
        }
    )


if __name__ == "__main__":
    main()
