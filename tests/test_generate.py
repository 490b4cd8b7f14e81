"""Generation: sampling filters, KV-cache decoding = full recomputation, stop at <|endoftext|>, CLI entry;
the static-cache decoder (model/decode.py) = the plain path, greedy and sampled, alone and in padded batches."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers.model_shards import TINY_TRAIN, make_shards
from model.config import TrainConfig
from model.generate import filter_logits, generate_text, main, sample, sample_batch
from model.gpt import GPT, GPTConfig
from model.train import train
from pipeline.errors import CheckpointError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_top_k_and_top_p_keep_the_right_tokens():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert (filter_logits(logits, 1.0, 2, None)[0] > 0).tolist() == [True, True, False, False]
    nucleus = filter_logits(logits, 1.0, None, 0.75)[0]  # 0.5 + 0.3 covers 0.75
    assert (nucleus > 0).tolist() == [True, True, False, False]
    assert nucleus.sum().item() == pytest.approx(1.0)
    assert torch.allclose(filter_logits(logits, 1.0, None, None)[0], torch.tensor([0.5, 0.3, 0.15, 0.05]))
    assert filter_logits(logits, 0.1, None, None)[0, 0] > 0.99  # low temperature sharpens


def test_top_p_samples_only_inside_the_nucleus():
    """Draws with top_p=0.5 are the most likely tokens whose probabilities first reach 0.5, all of
    them and no other; without top-p the same draws also land outside."""
    torch.manual_seed(3)
    model = GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=1, n_head=2, n_embd=16)).eval()
    prompt = [1, 2, 3]
    with torch.no_grad():
        probs = torch.softmax(model(torch.tensor([prompt]))[0][0, -1].float(), -1)
    ranked = probs.argsort(descending=True).tolist()
    nucleus = set(ranked[: int((probs[ranked].cumsum(0) < 0.5).sum()) + 1])
    generator = torch.Generator().manual_seed(0)
    drawn = {sample(model, prompt, 1, top_p=0.5, generator=generator)[0] for _ in range(300)}
    unfiltered = {sample(model, prompt, 1, top_p=None, generator=generator)[0] for _ in range(300)}
    assert 1 < len(nucleus) < 50 and drawn == nucleus
    assert unfiltered - nucleus


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
    cfg = TrainConfig(
        **{**TINY_TRAIN, "eval_batches": 1, "warmup_steps": 1, "sample_tokens": 4},
        max_steps=4,
        eval_interval=4,
        checkpoint_interval=4,
    )
    train(shards, out, cfg, progress=False)
    a = generate_text(out, "The", max_new_tokens=12, seed=7)
    b = generate_text(out / "checkpoints", "The", max_new_tokens=12, seed=7)
    assert isinstance(a, str) and a == b and len(a) > 0
    # A nucleus this small holds only the most likely token: sampling becomes greedy decoding,
    # which the same seed without top-p does not give.
    greedy = generate_text(out, "The", max_new_tokens=12, temperature=0)
    assert generate_text(out, "The", max_new_tokens=12, top_p=1e-6, seed=8) == greedy
    assert generate_text(out, "The", max_new_tokens=12, top_p=None, seed=8) != greedy
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
    for key in ("max_new_tokens", "temperature", "top_k", "top_p", "seed", "device"):
        assert cli[key] == module[key] == params[key].default, key
    assert (cli["temperature"], cli["top_k"], cli["top_p"]) == (0.8, 50, 0.95)  # what the README's sample was made with


def varied_model(**arch) -> GPT:
    """A small random GPT with large weights, so greedy decoding wanders over the vocabulary instead
    of repeating one token (GPT-2's small init gives near-uniform logits and one token forever)."""
    torch.manual_seed(4)
    model = GPT(GPTConfig(vocab_size=97, block_size=64, n_layer=2, n_head=2, n_embd=32, **arch)).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.5)
    return model


ARCHS = [{}, dict(positions="rope", norm="rmsnorm", mlp="swiglu", bias=False), dict(attention="manual")]


@pytest.mark.parametrize("arch", ARCHS, ids=["gpt2", "rope-rms-swiglu", "manual-attention"])
def test_static_cache_greedy_equals_the_plain_path(arch):
    model = varied_model(**arch)
    prompt = [5, 17, 42, 8]
    plain = sample(model, prompt, 40, temperature=0, static=False)
    assert len(set(plain)) > 8  # the check has teeth: the tokens vary
    assert sample(model, prompt, 40, temperature=0, static=True) == plain


@pytest.mark.parametrize("top_k, top_p", [(None, None), (20, None), (20, 0.9)])
def test_static_cache_sampling_equals_the_plain_path_for_a_seed(top_k, top_p):
    """On the CPU the static path draws its noise from the caller's generator exactly as
    torch.multinomial does, so a seed gives the same tokens."""
    model = varied_model()
    runs = []
    for static in (False, True):
        generator = torch.Generator().manual_seed(11)
        runs.append(sample(model, [3, 1, 4], 40, 0.9, top_k, top_p, generator=generator, static=static))
    assert runs[0] == runs[1] and len(set(runs[0])) > 10


@pytest.mark.parametrize("arch", ARCHS, ids=["gpt2", "rope-rms-swiglu", "manual-attention"])
def test_padded_batch_equals_each_prompt_alone(arch):
    """Left padding: rows of different lengths in one batch decode what each decodes alone."""
    model = varied_model(**arch)
    prompts = [[1, 2, 3, 4, 5, 6, 7, 8, 9], [9], [60, 7, 6], [], [33] * 5]
    alone = [sample(model, p, 25, temperature=0, static=False) for p in prompts]
    assert sample_batch(model, prompts, 25, temperature=0, static=True) == alone
    assert len({tuple(row) for row in alone}) == len(prompts)


def test_batch_rows_stop_at_their_own_end_of_text():
    model = varied_model()
    prompts = [[5, 17, 42, 8], [2, 2], [70, 71, 72]]
    free = [sample(model, p, 30, temperature=0, static=False) for p in prompts]
    eot = free[0][6]  # a token the first row produces: it ends there, the others where they meet it
    expected = [sample(model, p, 30, temperature=0, eot_id=eot, static=False) for p in prompts]
    assert len(expected[0]) == free[0].index(eot) < 30
    assert sample_batch(model, prompts, 30, temperature=0, eot_id=eot, static=True) == expected


def test_static_path_falls_back_past_block_size():
    """Prompt + new tokens beyond block_size: the plain path's rebuild rule, whichever was asked."""
    model = varied_model()
    prompt = list(range(1, 40))
    plain = sample(model, prompt, 40, temperature=0, static=False)
    assert sample(model, prompt, 40, temperature=0, static=True) == plain


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_compiled_graph_decoder_equals_the_plain_path_on_cuda():
    """The GPU path (torch.compile + CUDA graph replays) in fp32: the plain path's greedy tokens,
    alone and in a padded batch, and the same sampled tokens for a seed on every call."""
    model = varied_model().cuda()
    prompts = [[1, 2, 3, 4, 5, 6, 7, 8, 9], [9], [60, 7, 6]]
    alone = [sample(model, p, 30, temperature=0, static=False) for p in prompts]
    assert sample_batch(model, prompts, 30, temperature=0) == alone  # static, compiled, graphed by default
    assert sample_batch(model, prompts, 30, temperature=0, compile=False) == alone  # graph only
    seeded = [sample(model, [3, 1], 30, 0.9, 20, 0.9, generator=torch.Generator().manual_seed(5)) for _ in range(2)]
    assert seeded[0] == seeded[1] and len(set(seeded[0])) > 5
