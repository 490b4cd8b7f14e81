"""The GPT's architecture: `GPTConfig`, the one list of its fields, apart from model/gpt.py so that
reading a config file does not import torch (about 8 s on a loaded 2-core machine; the CLI refuses a
bad setting in under 3 s). model/gpt.py builds the model from it; the train config (model/config.py)
generates its `train.*` architecture keys from these fields, with their bounds and descriptions;
a checkpoint stores it as `model_config`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Annotated, Literal

from annotated_types import Ge, Gt, Interval


@dataclass
class GPTConfig:
    """A GPT's shape and options. Bounds are the Annotated ones; vocab_size is the tokenizer's, never a setting."""

    vocab_size: int = 50304  # GPT-2's 50257 padded up to a multiple of 64 (faster matmuls)
    block_size: Annotated[int, Ge(2)] = 1024
    n_layer: Annotated[int, Ge(1)] = 12
    n_head: Annotated[int, Ge(1)] = 12
    n_embd: Annotated[int, Ge(1)] = 768
    dropout: Annotated[float, Interval(ge=0, lt=1)] = 0.0
    bias: bool = True
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    mlp: Literal["gelu", "swiglu"] = "gelu"
    positions: Literal["learned", "rope"] = "learned"
    attention: Literal["fused", "manual"] = "fused"
    rope_base: Annotated[float, Gt(0)] = field(
        default=10000.0,
        metadata={
            "description": "RoPE's frequency base theta (RoFormer section 3.2.2); "
            "Llama 3 uses 500000. Only read with positions=rope."
        },
    )
    residual: Literal["fp32", "bf16"] = field(
        default="bf16",
        metadata={
            "description": "Residual stream dtype under BF16 autocast: bf16 (Megatron-LM's "
            "default, fp32_residual_connection=False; llm.c) or fp32 (nanoGPT, transformers). "
            "bf16 moves half the bytes through every norm and add; "
            "weights stay fp32 and the loss matched fp32 within seed noise "
            "(docs/benchmarks-train.md). Ignored when autocast is off or not bf16 (CPU fp32, fp16 + GradScaler)."
        },
    )
    fused_loss: bool = field(
        default=True,
        metadata={
            "description": "On a GPU, fuse the un-embedding matmul and cross-entropy so the "
            "logits are read once and never kept (model/fused_loss.py); CPU and evaluation use F.cross_entropy."
        },
    )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> GPTConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
