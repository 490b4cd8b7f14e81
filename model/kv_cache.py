"""A static, preallocated key/value cache for batched generation (gpt-fast's design, PyTorch 2023).

Today's cache (`GPT.new_caches`) concatenates each new key onto the old ones, so every token
allocates and the shapes change step by step: nothing can be captured once and replayed. This one
holds, per layer, key and value buffers of a fixed length S for the whole batch; a forward writes
its tokens' keys into their slots (`index_copy_` at slot indices that live on the device) and
attends over all S slots through a mask. Shapes never change, so a decode step is one CUDA graph.

Rows of a batch are left-padded to one length, so every row's next token goes to the same slot.
Row b's first `pad[b]` slots hold padding: no query sees them (a padding query sees only itself,
so no softmax row is empty), and positions count from the row's first real token, so a padded row
computes what it would alone.

Shapes: B batch, T tokens this forward, S cache slots, nh heads, hs head size.
"""

from __future__ import annotations

import torch


class StaticKVCache:
    """Per layer, keys and values of B rows in S slots; `pad` (B,) the left padding of each row."""

    def __init__(self, n_layer: int, batch: int, n_head: int, length: int, head_size: int, dtype, device):
        shape = (batch, n_head, length, head_size)
        # zeros, not empty: masked slots are multiplied by 0 in attention, and 0 * NaN would be NaN
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layer)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layer)]
        self.pad = torch.zeros(batch, dtype=torch.long, device=device)
        self.length = length

    @classmethod
    def for_model(cls, model: torch.nn.Module, batch: int, length: int) -> StaticKVCache:
        """A cache for a GPT, in the dtype and on the device of its weights."""
        cfg = model.config
        if length > cfg.block_size:
            raise ValueError(f"a cache of {length} slots is longer than block_size {cfg.block_size}")
        weight = model.lm_head.weight
        return cls(cfg.n_layer, batch, cfg.n_head, length, cfg.n_embd // cfg.n_head, weight.dtype, weight.device)

    def step(self, start, T: int) -> tuple[list[LayerSlots], torch.Tensor, torch.Tensor]:
        """For a forward of T tokens per row from slot `start` (an int or a 0-dim device tensor):
        each layer's writer, the tokens' positions (B, T) and the attention mask (B, 1, T, S)."""
        device = self.pad.device
        slots = start + torch.arange(T, device=device)  # (T,)
        positions = (slots[None, :] - self.pad[:, None]).clamp(min=0)  # (B, T): 0 at a row's first real token
        keys = torch.arange(self.length, device=device)[None, None, :]  # (1, 1, S)
        queries = slots[None, :, None]  # (1, T, 1)
        real = keys >= self.pad[:, None, None]  # (B, 1, S): slots after the row's padding
        mask = ((keys <= queries) & real) | (keys == queries)  # (B, T, S); a padding query sees itself
        return [LayerSlots(k, v, slots) for k, v in zip(self.k, self.v)], positions, mask[:, None]


class LayerSlots:
    """One layer's buffers and the slots this forward writes: `update` stores the new keys and
    values and returns the whole buffers, which the attention reads under the cache's mask."""

    def __init__(self, k: torch.Tensor, v: torch.Tensor, slots: torch.Tensor):
        self.k, self.v, self.slots = k, v, slots

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """k, v (B, nh, T, hs) -> all slots' keys and values (B, nh, S, hs)."""
        self.k.index_copy_(2, self.slots, k)
        self.v.index_copy_(2, self.slots, v)
        return self.k, self.v
