"""A GPT language model written out in full, after nanoGPT's model.py (Karpathy, 2022).

Its settings are GPTConfig (model/gpt_config.py). One module per idea: norms, causal
self-attention (the plain path and the fused `scaled_dot_product_attention` path side by side),
the MLP, a pre-norm Block, the GPT.
Options beyond GPT-2: RMSNorm (Zhang & Sennrich 2019), SwiGLU (Shazeer 2020) and rotary
positions (Su et al. 2021, RoFormer). Defaults are GPT-2 small (Radford et al. 2019).
For GPU speed: a bf16 residual stream under autocast (Megatron-LM's default) and the fused
un-embedding + cross-entropy of model/fused_loss.py; both measured in docs/benchmarks-train.md.

One forward for every use: pretraining and generation call `forward`, classification reads
`hidden_states`, and fine-tuning gives `hidden_states` positions that restart per example and
segment ids, so packed rows get a block-diagonal causal mask (attention stays inside each
example) through the same modules, residual dtype and attention option. Without segments no
mask is built and the pretraining path is unchanged.

Shapes in comments: B batch, T time, C channels (n_embd), nh heads, hs head size.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch.nn import functional as F

from model.fused_loss import fused_available, linear_cross_entropy, logits_cross_entropy
from model.gpt_config import GPTConfig
from model.kv_cache import StaticKVCache


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (PyTorch's has none to switch off before 2.1)."""

    def __init__(self, ndim: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class RMSNorm(nn.Module):
    """Root-mean-square norm: rescale only, no centring (Zhang & Sennrich 2019)."""

    def __init__(self, ndim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(ndim))

    def forward(self, x):
        x32 = x.float()
        return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


def make_norm(config: GPTConfig) -> nn.Module:
    return RMSNorm(config.n_embd) if config.norm == "rmsnorm" else LayerNorm(config.n_embd, config.bias)


def rope_tables(head_size: int, length: int, base: float, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin of position * frequency, (length, hs/2) each (RoFormer eq. 34)."""
    inv_freq = 1.0 / (base ** (torch.arange(0, head_size, 2, device=device, dtype=torch.float32) / head_size))
    angles = torch.outer(torch.arange(length, device=device, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (x1, x2) of x (B, nh, T, hs) by their position's angle."""
    x1, x2 = x[..., 0::2].float(), x[..., 1::2].float()
    out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)  # (B, nh, T, hs/2, 2)
    return out.flatten(-2).type_as(x)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        assert config.n_embd % config.n_head == 0
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v for all heads at once
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head, self.n_embd, self.dropout = config.n_head, config.n_embd, config.dropout
        self.fused = config.attention == "fused"

    def forward(self, x, rope=None, cache=None, mask=None):
        """x (B, T, C); rope = (cos, sin) for these T positions; cache = [k, v] of earlier positions or None;
        mask (B, 1, T, T) bool, True where query i may see key j (packed sequences), or None: plain causal."""
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        if isinstance(cache, list):  # generation: keys and values of earlier tokens are kept, not recomputed
            if cache[0] is not None:
                k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)  # (B, nh, Tk, hs)
            cache[0], cache[1] = k, v
        elif cache is not None:  # a static cache's slots (model/kv_cache.py): all S slots, masked by `mask`
            k, v = cache.update(k, v)  # (B, nh, S, hs)
        Tk = k.size(2)
        dropout = self.dropout if self.training else 0.0
        if self.fused:
            # flash / memory-efficient kernels; is_causal aligns the mask top-left, so with a
            # cache (queries are the last T of Tk keys) the mask is given explicitly
            if mask is None and Tk != T:
                mask = torch.ones(T, Tk, dtype=torch.bool, device=x.device).tril(Tk - T)
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=mask is None and T > 1
            )
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))  # (B, nh, T, Tk)
            if mask is None:  # query i sees keys <= its position
                mask = torch.ones(T, Tk, dtype=torch.bool, device=x.device).tril(Tk - T)
            att = att.masked_fill(~mask, float("-inf"))
            att = F.softmax(att.float(), dim=-1).type_as(q)
            att = self.attn_dropout(att)
            y = att @ v  # (B, nh, T, Tk) x (B, nh, Tk, hs) -> (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # merge heads side by side
        return self.resid_dropout(self.c_proj(y))


def segment_mask(segments: torch.Tensor) -> torch.Tensor:
    """(B, T) segment ids -> (B, 1, T, T) bool: query i sees key j iff j <= i and both are in one segment.

    Packed rows (several examples, or a text and its padding, in one row) keep attention inside
    each example; the diagonal is always allowed, so no query is left with nothing to attend to.
    """
    T = segments.size(1)
    causal = torch.ones(T, T, dtype=torch.bool, device=segments.device).tril()
    return ((segments[:, :, None] == segments[:, None, :]) & causal)[:, None]


class MLP(nn.Module):
    """GPT-2's 4x GELU MLP (tanh-approximated GELU, as GPT-2 used), or SwiGLU at 8/3 x width."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.swiglu = config.mlp == "swiglu"
        # SwiGLU keeps the parameter count of a 4x MLP with a 2/3 * 4x hidden size (Shazeer 2020)
        hidden = 64 * math.ceil(8 * config.n_embd / 3 / 64) if self.swiglu else 4 * config.n_embd
        self.c_fc = nn.Linear(config.n_embd, 2 * hidden if self.swiglu else hidden, bias=config.bias)
        self.c_proj = nn.Linear(hidden, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        h = self.c_fc(x)
        if self.swiglu:
            gate, up = h.chunk(2, dim=-1)
            h = F.silu(gate) * up
        else:
            h = F.gelu(h, approximate="tanh")
        return self.dropout(self.c_proj(h))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = make_norm(config)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = make_norm(config)
        self.mlp = MLP(config)

    def forward(self, x, rope=None, cache=None, mask=None):
        x = x + self.attn(self.ln_1(x), rope, cache, mask)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                ln_f=make_norm(config),
            )
        )
        if config.positions == "learned":
            self.transformer.wpe = nn.Embedding(config.block_size, config.n_embd)
        else:
            cos, sin = rope_tables(config.n_embd // config.n_head, config.block_size, config.rope_base)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # weight tying (Press & Wolf 2017), as GPT-2 does: one matrix embeds and un-embeds
        self.transformer.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        # GPT-2 paper section 2.3: scale residual projections by 1/sqrt(number of residual layers)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding: bool = True) -> int:
        """Parameter count; position embeddings are not counted as compute (nanoGPT's convention)."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding and "wpe" in self.transformer:
            n -= self.transformer.wpe.weight.numel()
        return n

    def forward(self, idx, targets=None, caches=None, start: int = 0):
        """idx (B, T) token ids -> logits (B, T, vocab) and mean cross-entropy if targets given.

        `caches` (one [k, v] per layer) and `start` (position of idx[:, 0]) are for generation;
        with a StaticKVCache (model/kv_cache.py) `start` is the tokens' first cache slot.
        """
        x = self.hidden_states(idx, caches=caches, start=start)  # (B, T, C)
        if targets is None:
            return self.lm_head(x), None
        if self.config.fused_loss and fused_available(x):  # GPU training: no logits are returned
            return None, linear_cross_entropy(x, self.lm_head.weight, targets)
        logits = self.lm_head(x)
        return logits, logits_cross_entropy(logits, targets)

    def hidden_states(self, idx, positions=None, segments=None, caches=None, start: int = 0):
        """idx (B, T) token ids -> final-norm hidden states (B, T, C), what the un-embedding reads.

        Pretraining and generation leave positions and segments out: positions count from
        `start`, attention is plainly causal. Fine-tuning on packed rows gives both:
          positions (B, T)  each token's position within its example (restarting per example)
          segments (B, T)   example ids; a token attends only to earlier tokens of its own example
        A row holding one example and no padding gives exactly the plain forward's states.
        """
        B, T = idx.size()
        if segments is not None and caches is not None:
            raise ValueError("a segment mask and a KV cache cannot be combined (the cache is for generation)")
        mask = None  # plain causal
        if isinstance(caches, StaticKVCache):  # its slots (from `start`, maybe a device tensor), positions, mask
            caches, positions, mask = caches.step(start, T)  # per layer, (B, T), (B, 1, T, S)
        if positions is None and start + T > self.config.block_size:
            raise ValueError(f"sequence of {start + T} tokens is longer than block_size {self.config.block_size}")
        if positions is not None and T > self.config.block_size:
            raise ValueError(f"sequence of {T} tokens is longer than block_size {self.config.block_size}")
        x = self.transformer.wte(idx)  # (B, T, C)
        rope = None
        if "wpe" in self.transformer:
            where = torch.arange(start, start + T, device=idx.device) if positions is None else positions
            x = x + self.transformer.wpe(where)  # (T, C) broadcast over the batch, or (B, T, C)
        elif positions is None:
            rope = (self.rope_cos[start : start + T], self.rope_sin[start : start + T])  # (T, hs/2) each
        else:
            rope = (self.rope_cos[positions][:, None], self.rope_sin[positions][:, None])  # (B, 1, T, hs/2) each
        if segments is not None:
            mask = segment_mask(segments)  # (B, 1, T, T)
        x = self.transformer.drop(self._residual_dtype(x))
        for i, block in enumerate(self.transformer.h):
            x = block(x, rope, None if caches is None else caches[i], mask)
        return self.transformer.ln_f(x)

    def _residual_dtype(self, x: torch.Tensor) -> torch.Tensor:
        """The residual stream's dtype: fp32 (nanoGPT, transformers) or, with residual="bf16", bf16."""
        kind = x.device.type
        if (
            self.config.residual == "bf16"
            and torch.is_autocast_enabled(kind)
            and torch.get_autocast_dtype(kind) == torch.bfloat16
        ):
            return x.to(torch.bfloat16)
        return x

    def new_caches(self) -> list[list]:
        return [[None, None] for _ in self.transformer.h]

    def flops_per_token(self) -> float:
        """Training FLOPs per token: 6N for the matmuls plus 12 L T C for attention (PaLM appendix B)."""
        c = self.config
        return 6 * self.num_params() + 12 * c.n_layer * c.block_size * c.n_embd


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices (weights of linear layers, embeddings); never biases or norm gains."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
