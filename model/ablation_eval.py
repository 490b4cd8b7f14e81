"""Bits per byte of a model over every token of a text: what an ablation measures each model on.

The trainer's validation figure is a mean over a few windows (model/train.py `evaluate`); an
ablation compares models whose differences can be smaller than that sampling noise, so here every
token counts once:

  - the documents become one stream, each preceded by <|endoftext|> (so every document token,
    the first included, is predicted from a document boundary, as in training) and the stream cut
    into windows of block_size + 1 tokens that overlap by one: each token after the first is a
    target exactly once, with the context its window gives it;
  - the loss is summed over all targets (the closing <|endoftext|> of each document included:
    model/bits_per_byte.py says why) and divided by ln 2 times the documents' UTF-8 bytes.

Two texts are measured this way: the common evaluation text (`--eval`, tokenized by each run's own
tokenizer: the same bytes for every run) and a run's own validation split (its shards' tokens, its
manifest's bytes).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from model.bits_per_byte import bits_per_byte
from model.data import load_tokens, shard_entries
from pipeline.shard_format import read_shard


@dataclass(frozen=True)
class TokenText:
    """A text as one token stream (document boundaries included) and its UTF-8 bytes."""

    tokens: np.ndarray  # int64, starts with <|endoftext|>
    n_bytes: int

    @property
    def targets(self) -> int:
        return max(0, len(self.tokens) - 1)


def encode_texts(texts: Sequence[str], tokenizer, eot_id: int) -> TokenText:
    """`texts` by a run's tokenizer, each document followed by <|endoftext|> (as the shards stage
    writes them), the stream opened by one."""
    ids = [eot_id]
    for text in texts:
        ids += tokenizer.encode(text) + [eot_id]
    return TokenText(np.asarray(ids, dtype=np.int64), sum(len(t.encode("utf-8")) for t in texts))


def split_text(shards_dir: str | Path, manifest: dict, split: str = "val") -> TokenText | None:
    """A shards folder's split as one stream (each shard checked against its sha256 as it is read);
    None when the split is empty or its bytes were not counted (shards written before they were)."""
    entries = shard_entries(shards_dir, split)
    n_bytes = manifest.get("totals", {}).get(split, {}).get("bytes")
    if not entries or not n_bytes:
        return None
    streams = [load_tokens(read_shard(shards_dir, entry)).astype(np.int64) for entry in entries]
    return TokenText(np.concatenate([np.asarray([manifest["eot_id"]], np.int64), *streams]), int(n_bytes))


@torch.no_grad()
def loss_sum(model: torch.nn.Module, text: TokenText, block_size: int, batch_size: int, device: str) -> float:
    """Cross-entropy summed over every target token of `text` (nats), in windows of `block_size`."""
    tokens = torch.from_numpy(text.tokens)
    starts = list(range(0, text.targets, block_size))
    full = [s for s in starts if s + block_size + 1 <= len(tokens)]
    tail = starts[len(full) :]  # the last, shorter window (the full ones are a prefix of starts)
    was_training = model.training
    model.eval()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") else nullcontext()
    total = torch.zeros((), dtype=torch.float64, device=device)
    try:
        for i in range(0, len(full), batch_size):
            windows = torch.stack([tokens[s : s + block_size + 1] for s in full[i : i + batch_size]]).to(device)
            total += _window_loss(model, windows, autocast)
        for s in tail:
            total += _window_loss(model, tokens[s:].unsqueeze(0).to(device), autocast)
    finally:
        model.train(was_training)
    return float(total)


def _window_loss(model: torch.nn.Module, windows: torch.Tensor, autocast) -> torch.Tensor:
    with autocast:
        logits, _ = model(windows[:, :-1])
    return F.cross_entropy(logits.float().flatten(0, 1), windows[:, 1:].flatten(), reduction="sum").double()


def text_bpb(model: torch.nn.Module, text: TokenText, block_size: int, batch_size: int, device: str) -> float:
    """Bits per byte of `model` on `text`."""
    return bits_per_byte(loss_sum(model, text, block_size, batch_size, device), text.n_bytes)
