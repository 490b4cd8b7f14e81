"""Bits per byte: a language model's loss per byte of the text's UTF-8 encoding, not per token.

Cross-entropy in nats per token depends on the tokenizer: a tokenizer with longer tokens has fewer,
harder predictions, so two runs with their own tokenizers (a filtered and an unfiltered corpus
train different ones) cannot be compared by it. The bits needed to encode the text can:

    bits per byte = (loss summed over the predicted tokens) / (ln 2 * UTF-8 bytes of the text)
                  = mean loss per token / ln 2 * (tokens / bytes)

The tokens are those the text was encoded to, <|endoftext|> included (the model pays for saying
where a document ends, and a compressor would too); the bytes are the documents' text as it was
encoded, counted by the shards stage (`n_bytes`, manifest totals). The trainer's validation figure
takes its mean loss over the evaluation windows and the val split's tokens per byte; an ablation
(model/ablation_eval.py) sums the loss over every token of its texts.
"""

from __future__ import annotations

import math
from typing import Any

LN2 = math.log(2)


def bits_per_byte(loss_sum_nats: float, n_bytes: int) -> float:
    """Loss summed over tokens (nats) -> bits per byte of the text they encode."""
    if n_bytes <= 0:
        raise ValueError(f"bits per byte needs text: {n_bytes} bytes")
    return loss_sum_nats / (LN2 * n_bytes)


def tokens_per_byte(manifest: dict[str, Any], split: str) -> float | None:
    """A split's tokens per text byte from a shards manifest; None for shards written before the
    shards stage counted bytes (rerun it) or an empty split."""
    totals = manifest.get("totals", {}).get(split, {})
    if not totals.get("bytes"):
        return None
    return totals["tokens"] / totals["bytes"]


def from_mean_loss(mean_loss: float | None, per_byte: float | None) -> float | None:
    """Mean loss per token (nats) and the text's tokens per byte -> bits per byte (None when either is missing)."""
    if mean_loss is None or per_byte is None:
        return None
    return mean_loss * per_byte / LN2
