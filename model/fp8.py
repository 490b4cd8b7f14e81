"""FP8 training of the transformer blocks' linear layers (train.fp8), through torchao.

Hopper's tensor cores multiply FP8 (e4m3) matrices at twice the BF16 rate. torchao's float8
training (`torchao.float8.convert_to_float8_training`) swaps each chosen nn.Linear for a
Float8Linear: before every matmul the input, the weight and, in backward, the output gradient
are scaled by their absolute maximum (one scale per tensor, "tensorwise") and cast to FP8;
the weights themselves and the optimizer stay in fp32, so checkpoints are unchanged.
Parameter names stay the same, so a checkpoint trained with FP8 loads into a plain GPT.

Left in BF16: the embedding (not a matmul), the lm_head (tied to the embedding and consumed
by the fused loss, model/fused_loss.py, whose logits are the most precision-sensitive output),
and any layer whose dimensions are not multiples of 16 (the FP8 matmul's requirement).

torchao is optional: `pip install torchao` (0.18 pairs with PyTorch 2.11). It is imported only
when train.fp8 is on, and a missing one is a ConfigError that says so before any step runs.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.errors import ConfigError

SKIPPED = ("lm_head",)  # tied to the embedding; the fused loss reads its weight directly


def float8_module():
    """torchao.float8, or a ConfigError naming the fix."""
    try:
        import torchao.float8 as float8
    except ImportError as err:
        raise ConfigError(
            f"train.fp8=true needs torchao (import failed: {err}); install it with `pip install torchao` "
            "(0.18 or later for PyTorch 2.11) or set train.fp8=false"
        ) from None
    return float8


def check_device(device: str) -> None:
    """FP8 matmuls need compute capability 8.9 (Ada) or 9.0 (Hopper); refuse older GPUs before step 1.
    On CPU the FP8 casts run through PyTorch's reference kernels: correct, slow, for tests."""
    float8_module()
    if device.startswith("cuda"):
        major, minor = torch.cuda.get_device_capability(torch.device(device))
        if (major, minor) < (8, 9):
            raise ConfigError(
                f"train.fp8=true needs a GPU with FP8 tensor cores (compute capability 8.9 or 9.0, e.g. H100/H200); "
                f"{torch.cuda.get_device_name(torch.device(device))} is {major}.{minor}: set train.fp8=false"
            )


def eligible(module: nn.Module, name: str) -> bool:
    """Convert this layer? Linear layers of the blocks whose both dimensions are multiples of 16."""
    if not isinstance(module, nn.Linear) or name.split(".")[-1] in SKIPPED:
        return False
    return module.in_features % 16 == 0 and module.out_features % 16 == 0


def convert(model: nn.Module) -> list[str]:
    """Swap the eligible linear layers of `model` for torchao's Float8Linear, in place, before
    torch.compile and before DDP/FSDP wrapping; returns the converted layers' names."""
    float8 = float8_module()
    chosen = [name for name, module in model.named_modules() if eligible(module, name)]
    float8.convert_to_float8_training(model, module_filter_fn=eligible)
    return chosen
