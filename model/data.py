"""Token windows from Parquet token shards: seeded order, disjoint per rank, resumable.

A shard's documents (each ending in <|endoftext|>) are one token stream; it is cut into
windows of block_size + 1 tokens (x = window[:-1], y = window[1:]). Windows are grouped in
chunks of batch_size; chunk k of the shuffled order goes to rank k % world_size. So rank r's
n-th batch is global chunk n * world_size + r, and one process with world_size x the gradient
accumulation sees exactly the chunks a DDP group sees (tests/test_ddp.py relies on this).

Memory: one shard's token column at a time (Arrow buffers, read memory-mapped); a batch is a
numpy gather from it. The position (epoch, shard, chunk) is a small JSON-serializable dict.

Every time a shard is loaded (once per epoch) its bytes are checked against the manifest's sha256
as they are read (pipeline/shard_format.py's `read_shard`): in a fresh run, after a resume and
after a restart alike, a damaged shard stops training with its name and the command that
rebuilds it, and no shard is hashed before it is needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from pipeline.errors import InputError
from pipeline.shard_format import load_manifest, read_shard, shard_path


def read_shards_manifest(shards_dir: str | Path) -> dict:
    """manifest.json of a shards folder (pipeline/tokens/shards.py owns the format)."""
    return load_manifest(shards_dir)


def shard_entries(shards_dir: str | Path, split: str) -> list[dict]:
    return [e for e in read_shards_manifest(shards_dir)["shards"] if e.get("split") == split]


def shard_paths(shards_dir: str | Path, split: str) -> list[Path]:
    return [shard_path(shards_dir, e) for e in shard_entries(shards_dir, split)]


def load_tokens(source: Path | pa.Buffer) -> np.ndarray:
    """All tokens of one shard as one flat array (zero-copy view of the Arrow list values).

    `source` is the shard's path (read memory-mapped, unchecked) or its bytes from `read_shard`.
    """
    if isinstance(source, pa.Buffer):
        table = pq.read_table(pa.BufferReader(source), columns=["tokens"])
    else:
        table = pq.read_table(source, columns=["tokens"], memory_map=True)
    column = table.column("tokens").combine_chunks()
    return column.flatten().to_numpy(zero_copy_only=False)


class TokenWindows:
    def __init__(
        self,
        shards_dir,
        split: str,
        block_size: int,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 1337,
        verify: bool = True,
    ):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world_size {world_size}")
        self.shards_dir = Path(shards_dir)
        self.split, self.block_size, self.batch_size = split, block_size, batch_size
        self.rank, self.world_size, self.seed, self.verify = rank, world_size, seed, verify
        self.entries = shard_entries(self.shards_dir, split)
        self.paths = [shard_path(self.shards_dir, e) for e in self.entries]
        if not self.paths:
            raise InputError(f"{self.shards_dir}/manifest.json lists no {split!r} shards")
        self.epoch, self.shard_pos, self.chunk_pos = 0, 0, 0
        self._loaded: tuple[tuple[int, int], np.ndarray, np.ndarray] | None = (
            None  # ((epoch, shard), tokens, window order)
        )

    # -- order ------------------------------------------------------------------------------

    def _shard_order(self, epoch: int) -> list[int]:
        return list(np.random.default_rng([self.seed, epoch]).permutation(len(self.paths)))

    def _windows(self, epoch: int, shard: int) -> tuple[np.ndarray, np.ndarray]:
        """Tokens of a shard and this rank's window starts, chunk by chunk: (n_chunks, batch)."""
        if self._loaded is None or self._loaded[0] != (epoch, shard):
            # verify: the bytes parsed are the bytes hashed, at every load (a shard damaged mid-run is caught too)
            tokens = load_tokens(read_shard(self.shards_dir, self.entries[shard]) if self.verify else self.paths[shard])
            n_windows = max(0, (len(tokens) - 1) // self.block_size)
            order = np.random.default_rng([self.seed, epoch, shard]).permutation(n_windows) * self.block_size
            group = self.batch_size * self.world_size  # every rank gets the same number of chunks
            chunks = order[: n_windows // group * group].reshape(-1, self.batch_size)
            self._loaded = ((epoch, shard), tokens, chunks[self.rank :: self.world_size])
        return self._loaded[1], self._loaded[2]

    def open_current_shard(self) -> None:
        """Load (and so check) the shard the next batch comes from, without taking a batch: a
        trainer calls it before step 1, so a damaged shard fails then, not at the first
        evaluation or after a resume's first steps."""
        self._windows(self.epoch, self._shard_order(self.epoch)[self.shard_pos])

    # -- batches ----------------------------------------------------------------------------

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) LongTensors (batch_size, block_size); y is x shifted by one token."""
        for _ in range(len(self.paths) + 1):
            shard = self._shard_order(self.epoch)[self.shard_pos]
            tokens, chunks = self._windows(self.epoch, shard)
            if self.chunk_pos < len(chunks):
                starts = chunks[self.chunk_pos]
                self.chunk_pos += 1
                windows = torch.from_numpy(tokens[starts[:, None] + np.arange(self.block_size + 1)].astype(np.int64))
                return windows[:, :-1], windows[:, 1:]
            self.chunk_pos, self.shard_pos = 0, self.shard_pos + 1
            if self.shard_pos == len(self.paths):
                self.shard_pos, self.epoch = 0, self.epoch + 1
        need = self.batch_size * self.world_size * (self.block_size + 1)
        raise InputError(
            f"no {self.split!r} shard in {self.shards_dir} holds one batch for all ranks ({need} tokens): "
            "lower batch_size or block_size, or make larger shards"
        )

    def __iter__(self):
        while True:
            yield self.next_batch()

    # -- position ---------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "shard_pos": self.shard_pos,
            "chunk_pos": self.chunk_pos,
            "seed": self.seed,
            "split": self.split,
            "block_size": self.block_size,
            "batch_size": self.batch_size,
            "rank": self.rank,
            "world_size": self.world_size,
            "shards": [p.name for p in self.paths],
        }

    def load_state_dict(self, state: dict) -> None:
        mine = self.state_dict()
        for key in ("seed", "split", "block_size", "batch_size", "world_size", "shards"):
            if state.get(key) != mine[key]:
                raise ValueError(f"loader state was saved with {key}={state.get(key)!r}, this loader has {mine[key]!r}")
        self.epoch, self.shard_pos, self.chunk_pos = (
            int(state["epoch"]),
            int(state["shard_pos"]),
            int(state["chunk_pos"]),
        )
