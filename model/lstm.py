"""The baseline: an LSTM language model, as in PyTorch's word_language_model example.

embedding -> LSTM -> dropout -> linear, weights tied like the GPT (Inan et al. 2017). It has
the GPT's interface (forward(idx, targets) -> logits, loss) so the same loop trains it on the
same shards, and the README can set the two loss curves side by side.
"""

from __future__ import annotations

import torch.nn as nn

from model.fused_loss import logits_cross_entropy
from model.gpt import GPTConfig, param_groups  # noqa: F401  (param_groups: same optimizer groups)


class LSTMLM(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.encoder = nn.Embedding(config.vocab_size, config.n_embd)
        self.rnn = nn.LSTM(
            config.n_embd,
            config.n_embd,
            num_layers=config.n_layer,
            batch_first=True,
            dropout=config.dropout if config.n_layer > 1 else 0.0,
        )
        self.drop = nn.Dropout(config.dropout)
        self.decoder = nn.Linear(config.n_embd, config.vocab_size)
        self.decoder.weight = self.encoder.weight
        # the example's init: uniform(-0.1, 0.1) for the embedding and decoder
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)

    def num_params(self, non_embedding: bool = True) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx, targets=None, caches=None, start: int = 0):
        """idx (B, T) -> logits (B, T, vocab); `caches` holds the (h, c) state during generation."""
        state = caches[0] if caches is not None else None
        out, new_state = self.rnn(self.drop(self.encoder(idx)), state)  # (B, T, C)
        if caches is not None:
            caches[0] = new_state
        logits = self.decoder(self.drop(out))
        if targets is None:
            return logits, None
        return logits, logits_cross_entropy(logits, targets)

    def new_caches(self) -> list:
        return [None]

    def flops_per_token(self) -> float:
        # 4 gates x (input + recurrent) matmuls per layer, 6 FLOPs per weight for forward + backward
        return 6 * self.num_params()
