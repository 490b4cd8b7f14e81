"""GPT-2 interoperability: transformers' GPT2LMHeadModel and ours give the same logits."""

from __future__ import annotations

import pytest
import torch

from model.gpt import GPT, GPTConfig
from model.gpt2_interop import export_gpt2, load_gpt2, to_gpt2_state_dict
from pipeline.errors import CheckpointError

transformers = pytest.importorskip("transformers")


def hf_model(seed: int = 0):
    torch.manual_seed(seed)
    config = transformers.GPT2Config(
        vocab_size=101, n_positions=64, n_embd=48, n_layer=3, n_head=4, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0
    )
    return transformers.GPT2LMHeadModel(config).eval()


def test_random_transformers_gpt2_and_ours_agree_within_1e5():
    theirs = hf_model()
    ours = load_gpt2(theirs).eval()
    idx = torch.randint(0, 101, (2, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = theirs(idx).logits
        got, _ = ours(idx)
    assert (got - expected).abs().max().item() < 1e-5


def test_export_round_trips_through_transformers_from_pretrained(tmp_path):
    torch.manual_seed(3)
    ours = GPT(GPTConfig(vocab_size=97, block_size=32, n_layer=2, n_head=2, n_embd=32)).eval()
    export_gpt2(ours, tmp_path / "gpt2")
    theirs = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "gpt2").eval()
    back = load_gpt2(tmp_path / "gpt2").eval()
    idx = torch.randint(0, 97, (3, 32), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref, _ = ours(idx)
        assert (theirs(idx).logits - ref).abs().max().item() < 1e-5
        assert torch.equal(back(idx)[0], ref)


def test_non_gpt2_architectures_refuse_export():
    model = GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=1, n_head=2, n_embd=16, positions="rope"))
    with pytest.raises(CheckpointError, match="positions=rope"):
        to_gpt2_state_dict(model)
