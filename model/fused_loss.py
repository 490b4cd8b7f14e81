"""The language-model loss: un-embedding matmul + cross-entropy, with a fused GPU path.

Plain path (CPU, evaluation, no Triton): logits = x W^T, then F.cross_entropy.

Fused path (CUDA training): the logits are (B·T) x 50304, the largest tensor in a GPT-2 step
(6.6 GB in bf16 at 64 x 1024 tokens). The plain path passes over them three times after the
matmul writes them: a log-sum-exp per row for the loss, then in backward a read to form
softmax - one-hot and a write of that gradient. Profiling GPT-2 124M on an H100 put that loss at
8% of the step, the forward reduction running at half the memory bandwidth. Here one Triton
program per row computes the log-sum-exp and, while the row is still in L2, the gradient,
written over the logits; backward is then two matmuls scaled by the incoming scalar. The idea
is Liger-Kernel's fused linear cross-entropy (Hsu et al. 2024); this is our own short kernel.
Loss and gradients equal the plain path's (tests/test_fused_loss.py, on a GPU).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

try:  # Triton ships with CUDA builds of PyTorch; CPU builds have none
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the torch build
    triton = None

BLOCK = 16384  # vocabulary entries a program reads at once (50304 = 3.1 blocks); fastest of 5 on an H100
NUM_WARPS = 16


def linear_cross_entropy(
    x: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, ignore_index: int = -1, fused: bool = True
) -> torch.Tensor:
    """Mean cross-entropy of the logits x @ weight^T against targets; ignore_index targets skipped.

    x (..., C), weight (V, C), targets (...). The fused path runs when asked for, on CUDA,
    with Triton, and only while gradients are being taken (evaluation needs no gradient pass).
    """
    if fused and fused_available(x):
        return FusedLinearCrossEntropy.apply(x, weight, targets, ignore_index)
    return logits_cross_entropy(F.linear(x, weight), targets, ignore_index)


def logits_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -1, reduction: str = "mean"
) -> torch.Tensor:
    """The plain loss: cross-entropy of (..., V) logits in fp32 (nanoGPT's upcast) against targets (...)."""
    return F.cross_entropy(
        logits.float().view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=ignore_index, reduction=reduction
    )


def fused_available(x: torch.Tensor) -> bool:
    return triton is not None and x.is_cuda and torch.is_grad_enabled()


class FusedLinearCrossEntropy(torch.autograd.Function):
    """Forward computes the loss and d(loss)/d(logits) at once; backward only applies the matmuls."""

    @staticmethod
    def forward(ctx, x, weight, targets, ignore_index):
        # under autocast the matmul runs in the autocast dtype, as F.linear would
        dtype = torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else x.dtype
        x2 = x.reshape(-1, x.size(-1)).to(dtype)
        w = weight.to(dtype)
        logits = x2 @ w.t()  # (N, V)
        targets = targets.reshape(-1)
        row_losses = softmax_cross_entropy_grad_(logits, targets, ignore_index)  # logits := softmax - one_hot
        n_valid = (targets != ignore_index).sum().clamp(min=1)
        ctx.save_for_backward(x2, w, logits, n_valid)
        ctx.x_shape, ctx.x_dtype, ctx.w_dtype = x.shape, x.dtype, weight.dtype
        return row_losses.sum() / n_valid

    @staticmethod
    def backward(ctx, grad_loss):
        x2, w, dlogits, n_valid = ctx.saved_tensors
        # d(mean loss)/d(logits) = (softmax - one_hot) / n_valid: the 1/n_valid and the incoming
        # gradient are applied to the two small products, never to the logits. Unscaled, the stored
        # values lie in [-1, 1]: divided by n_valid first, fp16 runs would lose the small ones.
        scale = grad_loss.float() / n_valid
        dx = dw = None
        if ctx.needs_input_grad[0]:
            dx = ((dlogits @ w).float() * scale).view(ctx.x_shape).to(ctx.x_dtype)
        if ctx.needs_input_grad[1]:  # a frozen un-embedding (LoRA) skips this matmul
            dw = ((dlogits.t() @ x2).float() * scale).to(ctx.w_dtype)
        return dx, dw, None, None


def softmax_cross_entropy_grad_(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """Per-row cross-entropy of logits (N, V); overwrites logits with softmax - one_hot.

    Rows whose target is ignore_index get loss 0 and gradient 0.
    """
    assert logits.is_contiguous() and logits.dim() == 2
    n_rows, n_cols = logits.shape
    row_losses = torch.empty(n_rows, device=logits.device, dtype=torch.float32)
    _cross_entropy_rows[(n_rows,)](
        logits, logits.stride(0), targets, row_losses, n_cols, ignore_index, BLOCK=BLOCK, num_warps=NUM_WARPS
    )
    return row_losses


if triton is not None:

    @triton.jit
    def _cross_entropy_rows(logits_ptr, row_stride, targets_ptr, losses_ptr, n_cols, ignore_index, BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        row_ptr = logits_ptr + row * row_stride
        target = tl.load(targets_ptr + row)
        if target == ignore_index:
            for start in range(0, n_cols, BLOCK):
                cols = start + tl.arange(0, BLOCK)
                tl.store(
                    row_ptr + cols, tl.zeros([BLOCK], dtype=tl.float32).to(row_ptr.dtype.element_ty), mask=cols < n_cols
                )
            tl.store(losses_ptr + row, 0.0)
        else:
            # pass 1: running max and sum of exp (one rescale per block, not per element)
            running_max = float("-inf")
            running_sum = 0.0
            for start in range(0, n_cols, BLOCK):
                cols = start + tl.arange(0, BLOCK)
                x = tl.load(row_ptr + cols, mask=cols < n_cols, other=float("-inf")).to(tl.float32)
                new_max = tl.maximum(running_max, tl.max(x, axis=0))
                running_sum = running_sum * tl.exp(running_max - new_max) + tl.sum(tl.exp(x - new_max), axis=0)
                running_max = new_max
            lse = running_max + tl.log(running_sum)
            target_logit = tl.load(row_ptr + target).to(tl.float32)
            tl.store(losses_ptr + row, lse - target_logit)
            # pass 2: the gradient of this row's loss, softmax - one_hot, over the same row
            for start in range(0, n_cols, BLOCK):
                cols = start + tl.arange(0, BLOCK)
                mask = cols < n_cols
                x = tl.load(row_ptr + cols, mask=mask, other=0.0).to(tl.float32)
                grad = tl.exp(x - lse)
                grad = tl.where(cols == target, grad - 1.0, grad)
                tl.store(row_ptr + cols, grad.to(row_ptr.dtype.element_ty), mask=mask)
