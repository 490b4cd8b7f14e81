"""Generation: sampling filters, KV-cache decoding = full recomputation, stop at <|endoftext|>, CLI entry."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model.generate import filter_logits, generate_text, main, sample
from model.gpt import GPT, GPTConfig
from model.train import train
from model.config import TrainConfig
from pipeline.errors import CheckpointError
from helpers.model_shards import make_shards


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_top_k_and_top_p_keep_the_right_tokens():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert (filter_logits(logits, 1.0, 2, None)[0] > 0).tolist() == [True, True, False, False]
    nucleus = filter_logits(logits, 1.0, None, 0.75)[0]  # 0.5 + 0.3 covers 0.75
    assert (nucleus > 0).tolist() == [True, True, False, False]
    assert nucleus.sum().item() == pytest.approx(1.0)
    assert torch.allclose(filter_logits(logits, 1.0, None, None)[0], torch.tensor([0.5, 0.3, 0.15, 0.05]))
    assert filter_logits(logits, 0.1, None, None)[0, 0] > 0.99  # low temperature sharpens


def test_cached_greedy_decoding_equals_recomputing_everything():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=97, block_size=24, n_layer=2, n_head=2, n_embd=32)).eval()
    prompt = [5, 17, 42]
    cached = sample(model, prompt, 30, temperature=0)  # runs past block_size: the cache is rebuilt
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(30):
            context = ids[-24:] if len(ids) <= 24 else ids[-12:]  # the same window rule as sample()
            ids.append(int(model(torch.tensor([context]))[0][0, -1].argmax()))
    assert cached[:21] == ids[3:24]  # identical while the whole context fits


def test_generation_stops_at_end_of_text():
    """A model taught '1 2 3 <eot>' continues '1' with '2 3' and stops."""
    torch.manual_seed(1)
    eot = 0
    model = GPT(GPTConfig(vocab_size=16, block_size=16, n_layer=1, n_head=2, n_embd=32))
    seq = torch.tensor([1, 2, 3, eot] * 4 + [1])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(80):
        _, loss = model(seq[:-1][None], seq[1:][None])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert sample(model, [eot, 1], 10, temperature=0, eot_id=eot) == [2, 3]
    assert len(sample(model, [eot, 1], 10, temperature=0, eot_id=None)) == 10


def test_generate_text_from_a_training_run(tmp_path_factory, capsys):
    shards = make_shards(tmp_path_factory.getbasetemp() / "model-shards")
    out = tmp_path_factory.mktemp("gen-run")
    cfg = TrainConfig(n_layer=2, n_head=2, n_embd=32, block_size=32, batch_size=4, max_steps=4, eval_interval=4,
                      checkpoint_interval=4, eval_batches=1, warmup_steps=1, device="cpu", sample_tokens=4)
    train(shards, out, cfg, progress=False)
    a = generate_text(out, "The", max_new_tokens=12, seed=7)
    b = generate_text(out / "checkpoints", "The", max_new_tokens=12, seed=7)
    c = generate_text(out, "The", max_new_tokens=12, top_p=0.9, seed=8)
    assert isinstance(a, str) and a == b and len(a) > 0 and isinstance(c, str)
    main(["--ckpt", str(out), "--prompt", "Die", "--max-new-tokens", "5"])
    assert capsys.readouterr().out.startswith("Die")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        generate_text(Path(out) / "nowhere", "x")


def test_lstm_state_cache_decoding_equals_recomputing():
    from model.lstm import LSTMLM

    torch.manual_seed(2)
    model = LSTMLM(GPTConfig(vocab_size=61, block_size=16, n_layer=2, n_embd=24)).eval()
    prompt = [3, 9, 27]
    cached = sample(model, prompt, 12, temperature=0)
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(12):
            ids.append(int(model(torch.tensor([ids]))[0][0, -1].argmax()))
    assert cached == ids[3:]


def test_one_set_of_generation_defaults():
    """`crawl2gpt generate`, `python -m model.generate` and generate_text sample alike by default."""
    import argparse
    import inspect

    from flows.cli import build_parser
    from model.generate_args import add_arguments

    cli = vars(build_parser().parse_args(["generate", "--ckpt", "x"]))
    own = argparse.ArgumentParser()
    add_arguments(own)
    module = vars(own.parse_args(["--ckpt", "x"]))
    params = inspect.signature(generate_text).parameters
    for key in ("max_new_tokens", "temperature", "top_k", "top_p", "seed"):
        assert cli[key] == module[key] == params[key].default, key
    assert (cli["temperature"], cli["top_k"], cli["top_p"]) == (0.8, 50, 0.95)  # what the README's sample was made with
