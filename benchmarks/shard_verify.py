"""What checking a token shard costs: loading each shard with its sha256 check vs without.

The training loader (model/data.py) checks every shard against manifest.json's sha256 each time
it loads it (pipeline/shard_format.py `read_shard`: one hash over the memory-mapped bytes it
then parses). The peer is the same load unchecked (`load_tokens(path)`, memory-mapped), on the
same files in the same run, alternating, best of --repeats; the page cache is warm for both.

Input: a shards folder (`--shards runs/x/shards`), or by default the one benchmarks/loader_throughput.py
builds from the real web pages in ../shared/data/warc (reused if it is there).

    python -m benchmarks.shard_verify [--shards DIR] [--repeats 5]
Last line: one JSON object (seconds per GB of shard file checked and unchecked, the ratio, and
the check's cost per billion tokens: what a training run reading N tokens/s pays).
"""

from __future__ import annotations

import argparse
import hashlib

import pyarrow as pa

from benchmarks.harness import best_seconds, print_result
from benchmarks.loader_throughput import add_shard_arguments, shards_from
from model.data import load_tokens
from pipeline.shard_format import load_manifest, read_shard, shard_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_shard_arguments(parser)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    shards = shards_from(args)
    entries = load_manifest(shards)["shards"]
    paths = [shard_path(shards, e) for e in entries]
    file_bytes = sum(p.stat().st_size for p in paths)
    tokens = sum(e["tokens"] for e in entries)

    def unchecked():
        for path in paths:
            load_tokens(path)

    def checked():
        for entry in entries:
            load_tokens(read_shard(shards, entry))

    def hash_only():
        for path in paths:
            hashlib.sha256(pa.memory_map(str(path)).read_buffer()).hexdigest()

    unchecked()  # warm the page cache for both
    plain, verified, sha = (
        best_seconds(unchecked, args.repeats),
        best_seconds(checked, args.repeats),
        best_seconds(hash_only, args.repeats),
    )
    gb = file_bytes / 1e9
    print(f"{len(paths)} shards, {gb:.3f} GB, {tokens / 1e6:.1f} M tokens")
    print(
        f"load unchecked {plain / gb:6.2f} s/GB\n"
        f"load checked   {verified / gb:6.2f} s/GB\n"
        f"sha256 alone   {sha / gb:6.2f} s/GB"
    )
    print_result(
        {
            "benchmark": "shard_verify",
            "shards": str(shards),
            "n_shards": len(paths),
            "file_gb": gb,
            "tokens": tokens,
            "unchecked_s_per_gb": plain / gb,
            "checked_s_per_gb": verified / gb,
            "sha256_s_per_gb": sha / gb,
            "ratio_checked_vs_unchecked": verified / plain,
            "check_s_per_billion_tokens": sha / tokens * 1e9,
            "machine": "2-core CPU sandbox (shared), 24 GiB, no GPU",
        }
    )


if __name__ == "__main__":
    main()
