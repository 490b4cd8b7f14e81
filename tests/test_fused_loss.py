"""The fused un-embedding + cross-entropy (model/fused_loss.py) against F.linear + F.cross_entropy.

Without a GPU the Triton kernel runs in Triton's interpreter (TRITON_INTERPRET=1, set in
conftest.py), so CI checks the kernel's arithmetic; the `gpu` tests check it compiled, under
autocast and torch.compile, inside the GPT.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

fused_loss = pytest.importorskip("model.fused_loss")
if fused_loss.triton is None:
    pytest.skip("Triton is not installed (pip install triton, or a CUDA build of torch)", allow_module_level=True)

from model.fused_loss import BLOCK, FusedLinearCrossEntropy, linear_cross_entropy, softmax_cross_entropy_grad_  # noqa: E402
from model.gpt import GPT, GPTConfig  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def reference(logits, targets, ignore_index=-1):
    ref = logits.detach().float().clone().requires_grad_()
    loss = F.cross_entropy(ref, targets, ignore_index=ignore_index)
    loss.backward()
    return loss.detach(), ref.grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_row_kernel_matches_cross_entropy(dtype):
    """Loss and softmax - one_hot over a vocabulary that spans several blocks and ends mid-block."""
    gen = torch.Generator().manual_seed(0)
    n_rows, vocab = 6, BLOCK + 2 * BLOCK // 3
    logits = (torch.randn(n_rows, vocab, generator=gen) * 4).to(dtype).to(DEVICE)
    targets = torch.randint(0, vocab, (n_rows,), generator=gen).to(DEVICE)
    targets[1] = vocab - 1  # the last column, in the partial block
    targets[3] = -1  # ignored row
    ref_loss, ref_grad = reference(logits, targets)
    n_valid = (targets != -1).sum()
    work = logits.clone()
    rows = softmax_cross_entropy_grad_(work, targets, -1)  # work := softmax - one_hot, per row
    assert torch.allclose(rows.sum() / n_valid, ref_loss, rtol=1e-5, atol=1e-5)
    assert rows[3].item() == 0.0 and torch.count_nonzero(work[3]) == 0  # ignored: no loss, no gradient
    tol = {torch.float32: 1e-5, torch.bfloat16: 4e-3, torch.float16: 5e-4}[dtype]
    assert (work.float() / n_valid - ref_grad).abs().max().item() <= tol * ref_grad.abs().max().item()


@pytest.mark.parametrize("dtype,loss_scale", [(torch.float32, 0.25), (torch.float16, 65536.0)])
def test_function_matches_plain_loss_and_gradients(dtype, loss_scale):
    """x and weight gradients equal the plain path's, for a loss scaled down (accumulation) or up
    (fp16 with GradScaler's initial scale, where a pre-divided stored gradient would underflow)."""
    gen = torch.Generator().manual_seed(1)
    batch, time, channels, vocab = 4, 64, 16, 300
    x = torch.randn(batch, time, channels, generator=gen).to(DEVICE).to(dtype)
    weight = (torch.randn(vocab, channels, generator=gen) * 0.3).to(DEVICE).to(dtype)
    targets = torch.randint(0, vocab, (batch, time), generator=gen).to(DEVICE)
    targets[0, 2] = -1
    grads = {}
    for name in ("plain", "fused"):
        xi, wi = x.clone().requires_grad_(), weight.clone().requires_grad_()
        if name == "fused":
            loss = FusedLinearCrossEntropy.apply(xi, wi, targets, -1)
        else:
            loss = linear_cross_entropy(xi, wi, targets, fused=False)
        (loss * loss_scale).backward()
        grads[name] = (loss.detach().float(), xi.grad.float() / loss_scale, wi.grad.float() / loss_scale)
    tol = 1e-5 if dtype == torch.float32 else 2e-3
    for plain, fused in zip(grads["plain"], grads["fused"]):
        assert (plain - fused).abs().max() <= tol * plain.abs().max()


def test_frozen_weight_gets_no_gradient():
    """LoRA freezes the un-embedding: only x gets a gradient, equal to the plain path's."""
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(8, 16, generator=gen).to(DEVICE)
    weight = torch.randn(300, 16, generator=gen).to(DEVICE)  # requires_grad=False
    targets = torch.randint(0, 300, (8,), generator=gen).to(DEVICE)
    xf, xp = x.clone().requires_grad_(), x.clone().requires_grad_()
    FusedLinearCrossEntropy.apply(xf, weight, targets, -1).backward()
    linear_cross_entropy(xp, weight, targets, fused=False).backward()
    assert weight.grad is None
    assert torch.allclose(xf.grad, xp.grad, rtol=1e-5, atol=1e-6)


def test_plain_path_off_the_gpu_or_without_gradients():
    """Evaluation (no_grad) and CPU tensors take F.cross_entropy: no kernel, logits kept."""
    x, weight = torch.randn(3, 8), torch.randn(20, 8)
    targets = torch.tensor([1, 2, 3])
    with torch.no_grad():
        assert not fused_loss.fused_available(x.to(DEVICE))
    expected = F.cross_entropy(x @ weight.t(), targets)
    assert torch.allclose(linear_cross_entropy(x, weight, targets), expected)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("compiled", [False, True])
def test_gpt_fused_loss_under_autocast_matches_plain(compiled):
    """GPT-2-shaped model on the GPU, BF16 autocast: fused and plain loss and gradients agree."""
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=50304, block_size=128, n_layer=2, n_head=4, n_embd=128)
    idx = torch.randint(0, 50257, (4, 128), device="cuda")
    targets = torch.randint(0, 50257, (4, 128), device="cuda")
    results = {}
    for fused in (False, True):
        torch.manual_seed(0)
        model = GPT(GPTConfig(**{**cfg.to_dict(), "fused_loss": fused})).cuda()
        run = torch.compile(model) if compiled else model
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits, loss = run(idx, targets)
        assert (logits is None) == fused
        loss.backward()
        results[fused] = (
            loss.detach().float(),
            model.lm_head.weight.grad.float(),
            model.transformer.h[0].attn.c_attn.weight.grad.float(),
        )
    (loss_p, head_p, attn_p), (loss_f, head_f, attn_f) = results[False], results[True]
    assert abs(loss_p.item() - loss_f.item()) < 2e-3
    for plain, fused in ((head_p, head_f), (attn_p, attn_f)):
        assert torch.linalg.norm(plain - fused) / torch.linalg.norm(plain) < 2e-2


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_sft_loss_fused_matches_plain():
    """Fine-tuning's response-only loss (IGNORE on prompt tokens) takes the fused path on a GPU."""
    from model.finetune import lm_loss
    from model.sft_data import IGNORE, Batch

    torch.manual_seed(0)
    idx = torch.randint(0, 1000, (3, 64), device="cuda")
    targets = torch.randint(0, 1000, (3, 64), device="cuda")
    targets[:, :20] = IGNORE  # the prompt part of each row
    segments = torch.zeros_like(idx)
    positions = torch.arange(64, device="cuda").expand(3, 64)
    batch = Batch(idx, targets, segments, positions)
    results = {}
    for fused in (False, True):
        torch.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=1024, block_size=64, n_layer=2, n_head=2, n_embd=64, fused_loss=fused)).cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = lm_loss(model, batch)
        loss.backward()
        results[fused] = (loss.detach().float(), model.lm_head.weight.grad.float())
    assert abs(results[False][0].item() - results[True][0].item()) < 2e-3
    plain, fused_grad = results[False][1], results[True][1]
    assert torch.linalg.norm(plain - fused_grad) / torch.linalg.norm(plain) < 2e-2
