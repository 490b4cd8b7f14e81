"""Picking the next token from logits: temperature, top-k, nucleus, and a draw that needs no host.

`filter_logits` turns logits into the distribution to sample from. `draw` takes one token per row
by the exponential trick: with q_i ~ Exp(1), argmax_i p_i / q_i is token i with probability p_i
(it is how `torch.multinomial` draws a single sample), so a row is drawn from noise filled in
ahead, on the device, inside a captured CUDA graph and without a host sync.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def filter_logits(logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None) -> torch.Tensor:
    """logits (B, V) -> probabilities after temperature, top-k, then nucleus (Holtzman et al. 2020)."""
    logits = logits.float() / temperature
    if top_k:
        kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = F.softmax(logits, dim=-1)
    if top_p is not None and top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        # drop a token when the tokens ranked above it already cover top_p; the first always stays
        drop = sorted_probs.cumsum(-1) - sorted_probs >= top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
        probs = probs / probs.sum(-1, keepdim=True)
    return probs


def draw(probs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """probs (B, V), noise (B, V) of Exp(1) draws -> (B,) one token per row."""
    return (probs / noise).argmax(-1)
