"""SFT: JSONL formats and bad-input rules, response-only loss, packing without cross-example
attention, pairs derived from real documents, and short end-to-end runs (full and LoRA)."""

from __future__ import annotations

import json
from collections import Counter
from contextlib import nullcontext
from pathlib import Path

import pytest
import torch

from crawl2gpt.config import RunConfig
from helpers.finetune import sample_run
from model.finetune import lm_loss, load_base, run_sft
from model.gpt import GPT, GPTConfig
from model.sft_data import (
    IGNORE,
    collate,
    encode,
    encode_prompt,
    make_rows,
    parse_example,
    read_jsonl,
    render,
    to_example,
)
from model.sft_pairs import CONTINUE_INSTRUCTION, TITLE_INSTRUCTION, derive_pairs
from model.tokenizer import SentencePieceTokenizer
from model.training import cosine_lr
from pipeline.documents import iter_batches
from pipeline.errors import CheckpointError, InputError
from pipeline.stage import stage_parts

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def run() -> dict:
    return sample_run()


@pytest.fixture(scope="module")
def pairs(run, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pairs") / "pairs.jsonl"
    derive_pairs([run["extract"]], path)
    return path


@pytest.fixture(scope="module")
def tok(run) -> SentencePieceTokenizer:
    return SentencePieceTokenizer(run["tokenizer"])


def real_pairs(path: Path, n: int) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()[:n]]


# --------------------------------------------------------------------------- pairs from documents


def test_derived_pairs_come_from_the_documents(run, pairs):
    docs = {d["doc_id"]: d for part in stage_parts(run["extract"]) for b in iter_batches(part) for d in b.to_pylist()}
    lines = [json.loads(line) for line in pairs.read_text().splitlines()]
    assert {p["recipe"] for p in lines} == {"title", "continue"}
    for p in lines:
        doc = docs[p["doc_id"]]
        assert p["url"] == doc["url"]
        if p["recipe"] == "title":
            assert p["instruction"] == TITLE_INSTRUCTION and p["output"] == doc["title"].strip()
            assert p["input"].split("\n")[0] in doc["text"]
        else:
            assert p["instruction"] == CONTINUE_INSTRUCTION
            assert doc["text"].index(p["input"].split("\n")[0]) < doc["text"].index(p["output"].split("\n")[0])


def test_derive_pairs_counts_every_document(run, tmp_path):
    counts = derive_pairs([run["extract"]], tmp_path / "p.jsonl", recipes=["title"])
    outcomes = sum(v for k, v in counts.items() if k.startswith("title:"))
    assert outcomes == counts["documents"] > 0
    assert counts["title:pairs"] == counts["pairs"] == len((tmp_path / "p.jsonl").read_text().splitlines())
    with pytest.raises(InputError, match="unknown pair recipes"):
        derive_pairs([run["extract"]], tmp_path / "x.jsonl", recipes=["summary"])


# --------------------------------------------------------------------------- formats and bad input


def test_formats_map_to_the_same_turns(pairs):
    p = real_pairs(pairs, 1)[0]
    alpaca, _ = parse_example(p)
    chat, _ = parse_example(
        {"messages": [{"role": "user", "content": p["instruction"]}, {"role": "assistant", "content": p["output"]}]}
    )
    prompt, _ = parse_example({"prompt": p["instruction"], "completion": p["output"]})
    assert alpaca == [("user", p["instruction"]), ("input", p["input"]), ("assistant", p["output"])]
    assert chat == prompt == [("user", p["instruction"]), ("assistant", p["output"])]
    assert render(alpaca).startswith("### Instruction:\n" + p["instruction"] + "\n\n### Input:\n")
    assert render(alpaca).endswith("### Response:\n" + p["output"] + "<|endoftext|>")


def test_bad_lines_are_counted_by_rule(pairs, tmp_path):
    good = real_pairs(pairs, 6)
    lines = [json.dumps(p) for p in good[:2]]
    lines += [
        json.dumps(good[2])[:-5],  # cut off: invalid_json
        json.dumps([good[3]["instruction"]]),  # not_an_object
        json.dumps({"instruction": good[3]["instruction"]}),  # missing_fields
        json.dumps(dict(good[4], output="  ")),  # empty_response
        json.dumps(
            {"messages": [{"role": "user", "content": good[5]["input"]}, {"role": "bot", "content": good[5]["output"]}]}
        ),
        json.dumps({"messages": [{"role": "user", "content": good[5]["input"]}]}),  # no response: empty_response
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n\n")
    examples, counts = read_jsonl(path)
    assert len(examples) == 2
    assert counts == Counter(
        lines=8, examples=2, invalid_json=1, not_an_object=1, missing_fields=1, empty_response=2, bad_role=1
    )
    with pytest.raises(InputError, match="not found"):
        read_jsonl(tmp_path / "absent.jsonl")


# --------------------------------------------------------------------------- masking


def test_loss_only_on_response_and_end_token(pairs, tok):
    p = real_pairs(pairs, 1)[0]
    turns, _ = parse_example(p)
    ids, trained = encode(turns, tok)
    response = [i for i, t in zip(ids, trained) if t]
    assert response[-1] == tok.eot_id and ids[-1] == tok.eot_id
    assert tok.decode(response[:-1]) == p["output"]
    assert tok.decode(ids[: trained.index(True)]) == tok.decode(encode_prompt(turns[:-1], tok))
    ex = to_example(turns, tok, 10_000, "drop", Counter())
    assert len(ex.x) == len(ex.y) == len(ids) - 1
    assert [y for y in ex.y if y != IGNORE] == response  # targets are the response tokens, nothing else
    assert ex.y[: trained.index(True) - 1] == [IGNORE] * (trained.index(True) - 1)


def test_overlong_rule_drops_or_truncates(pairs, tok):
    turns, _ = parse_example(real_pairs(pairs, 1)[0])
    ids, trained = encode(turns, tok)
    prompt_len = trained.index(True)
    counts = Counter()
    assert to_example(turns, tok, len(ids) - 2, "drop", counts) is None
    cut = to_example(turns, tok, prompt_len + 3, "truncate", counts)
    assert len(cut.x) == prompt_len + 3 and sum(y != IGNORE for y in cut.y) == 4
    assert to_example(turns, tok, prompt_len - 5, "truncate", counts) is None  # not one response token fits
    assert counts == Counter(too_long=2, truncated=1)


# --------------------------------------------------------------------------- packing


def examples_of(pairs: Path, tok, n: int, block: int):
    out = []
    for p in real_pairs(pairs, 40):
        ex = to_example(
            parse_example(dict(p, input=p["input"][:60], output=p["output"][:40]))[0], tok, block, "drop", Counter()
        )
        if ex:
            out.append(ex)
    return out[:n]


def test_packing_fills_rows_without_overflow(pairs, tok):
    examples = examples_of(pairs, tok, 12, 256)
    rows = make_rows(examples, 256, packing=True)
    assert len(rows) < len(examples)
    assert all(sum(len(e.x) for e in row) <= 256 for row in rows)
    assert sorted(id(e) for row in rows for e in row) == sorted(id(e) for e in examples)


def precision_for(residual: str):
    """The residual option acts under BF16 autocast only (model/gpt.py `_residual_dtype`): a bf16
    residual stream is tested under CPU bf16 autocast, the fp32 one in plain fp32. The bf16
    tolerance is well below what attention leaking across examples changes (about 0.08 here)."""
    if residual == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16), 1e-2
    return nullcontext(), 1e-4


@pytest.mark.parametrize("positions", ["learned", "rope"])
@pytest.mark.parametrize("attention", ["fused", "manual"])
@pytest.mark.parametrize("residual", ["fp32", "bf16"])
def test_packed_logits_equal_unpacked(pairs, tok, positions, attention, residual):
    """Several examples packed in one row (segment mask, positions restarting) give each example the
    logits GPT.forward gives it alone, for every attention and residual option."""
    torch.manual_seed(0)
    model = GPT(
        GPTConfig(
            vocab_size=tok.vocab_size,
            block_size=512,
            n_layer=2,
            n_head=2,
            n_embd=32,
            positions=positions,
            attention=attention,
            residual=residual,
        )
    ).eval()
    examples = examples_of(pairs, tok, 3, 512)
    assert len(make_rows(examples, 512, packing=True)) == 1
    packed = collate([examples], tok.pad_id)
    assert packed.segments.unique().numel() == 3 and (packed.positions == 0).sum() == 3  # three examples, each from 0
    autocast, tol = precision_for(residual)
    with torch.no_grad(), autocast:
        hidden = model.hidden_states(packed.idx, packed.positions, packed.segments)
        if residual == "bf16":
            assert hidden.dtype == torch.bfloat16  # the option is really in effect
        logits = model.lm_head(hidden)[0].float()
        at = 0
        for e in examples:
            alone, _ = model(torch.tensor([e.x]))  # GPT.forward: plain causal mask, positions from 0
            torch.testing.assert_close(logits[at : at + len(e.x)], alone[0].float(), atol=tol, rtol=tol)
            at += len(e.x)
        padded = collate([[e] for e in examples], tok.pad_id)
        torch.testing.assert_close(lm_loss(model, padded), lm_loss(model, packed), atol=tol / 10, rtol=tol / 10)


def test_packed_examples_do_not_see_each_other(pairs, tok):
    """Changing the first example of a packed row leaves the logits of the second unchanged."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=512, n_layer=2, n_head=2, n_embd=32)).eval()
    examples = examples_of(pairs, tok, 2, 512)
    packed = collate([examples], tok.pad_id)
    changed = packed.idx.clone()
    changed[0, : len(examples[0].x)] = (changed[0, : len(examples[0].x)] + 1) % tok.vocab_size
    with torch.no_grad():
        a = model.lm_head(model.hidden_states(packed.idx, packed.positions, packed.segments))
        b = model.lm_head(model.hidden_states(changed, packed.positions, packed.segments))
    first = len(examples[0].x)
    assert not torch.allclose(a[0, :first], b[0, :first])
    torch.testing.assert_close(a[0, first:], b[0, first:], atol=1e-6, rtol=0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("attention", ["fused", "manual"])
@pytest.mark.parametrize("residual", ["bf16", "fp32"])
@pytest.mark.parametrize("positions", ["learned", "rope"])
def test_finetune_loss_equals_pretraining_loss_on_the_gpu(attention, residual, positions):
    """On the device, under BF16 autocast, fine-tuning's loss on a fixed batch is pretraining's:
    one full example per row (segment mask and explicit positions) against GPT.forward, and the
    same tokens packed two examples per row against GPT.forward on each half alone. The model first
    memorises the batch, so its logits are sharp and a wrong mask or position would show."""
    from model.sft_data import Batch

    torch.manual_seed(0)
    B, T, V = 4, 256, 1024
    model = GPT(
        GPTConfig(
            vocab_size=V,
            block_size=T,
            n_layer=4,
            n_head=4,
            n_embd=128,
            attention=attention,
            residual=residual,
            positions=positions,
        )
    ).cuda()
    idx = torch.randint(0, V, (B, T), device="cuda")
    targets = torch.randint(0, V, (B, T), device="cuda")
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(30):  # pretraining steps on the batch (loss 6.9 -> about 1 on a CPU in fp32)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            _, loss = model(idx, targets)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    assert loss.item() < 3.0
    steps = torch.arange(T, device="cuda").expand(B, T)
    half = T // 2
    whole = Batch(idx, targets, torch.zeros_like(idx), steps)
    packed = Batch(idx, targets, (steps >= half).long(), steps % half)  # two examples per row
    leaky = Batch(idx, targets, torch.zeros_like(idx), steps % half)  # positions restart, mask forgotten
    with torch.autocast("cuda", dtype=torch.bfloat16):  # gradients on, as in training (fused loss path)
        pre = model(idx, targets)[1].float()
        ft = lm_loss(model, whole).float()
        pre_halves = (
            model(idx[:, :half], targets[:, :half])[1].float() + model(idx[:, half:], targets[:, half:])[1].float()
        ) / 2
        ft_packed = lm_loss(model, packed).float()
        ft_leaky = lm_loss(model, leaky).float()
    assert abs(ft.item() - pre.item()) <= 1e-3, (ft.item(), pre.item())
    assert abs(ft_packed.item() - pre_halves.item()) <= 1e-3, (ft_packed.item(), pre_halves.item())
    assert abs(ft_leaky.item() - pre_halves.item()) > 1e-2  # the comparison can fail: attention across examples shows
    (ft + ft_packed).backward()  # the masked path trains: gradients reach the first block
    assert model.transformer.h[0].attn.c_attn.weight.grad.abs().sum() > 0


# --------------------------------------------------------------------------- runs


def sft_config(*extra: str) -> RunConfig:
    return RunConfig().with_overrides(
        [
            "finetune.max_steps=8",
            "finetune.eval_interval=4",
            "finetune.batch_size=4",
            "finetune.learning_rate=2e-3",
            "finetune.lora.learning_rate=1e-2",
            "finetune.warmup_steps=2",
            "finetune.val_fraction=0.15",
            "finetune.eval_prompts=2",
            "finetune.max_new_tokens=8",
            "finetune.overlong=truncate",
            *extra,
        ]
    )


def test_sft_full_run_writes_its_outputs(run, pairs, tmp_path):
    summary = run_sft(str(run["base"]), str(pairs), str(tmp_path), sft_config("finetune.packing=true"))
    counts = summary["counts"]
    assert counts["train_examples"] > 0 and counts["val_examples"] > 0
    assert counts["train_examples"] + counts["val_examples"] + counts.get("too_long", 0) == counts["examples"]
    assert summary["val_loss"] < summary["base_val_loss"]  # tuning moves held-out loss down from the base
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 9)) and "val_loss" in rows[3] and "val_loss" in rows[7]
    # the shared schedule: warmup 2, cosine from finetune.learning_rate down to min_lr_ratio (0.1) of it
    assert [r["lr"] for r in rows] == [cosine_lr(s, 2e-3, 2e-3 * 0.1, 2, 8) for s in range(8)]
    answers = [json.loads(line) for line in (tmp_path / "answers.jsonl").read_text().splitlines()]
    assert len(answers) == 2 and all(
        {"prompt", "reference", "base_answer", "finetuned_answer"} <= a.keys() for a in answers
    )
    assert (tmp_path / "loss.png").stat().st_size > 0
    model, tok, info = load_base(summary["checkpoint"])  # the output is a checkpoint run_sft and generate.py read
    assert info["kind"] == "checkpoint" and summary["params"]["trainable"] == summary["params"]["total"]


def test_sft_lora_trains_only_adapters_and_saves_merged_weights(run, pairs, tmp_path):
    summary = run_sft(
        str(run["base"]), str(pairs), str(tmp_path), sft_config("finetune.method=lora", "finetune.lora.rank=4")
    )
    params = summary["params"]
    assert 0 < params["trainable"] < params["total"] / 4
    assert (tmp_path / "lora.safetensors").is_file()
    tuned, _, _ = load_base(summary["checkpoint"])
    base, _, _ = load_base(str(run["base"]))
    diff = {k for k, v in tuned.state_dict().items() if not torch.equal(v, base.state_dict()[k])}
    assert diff and all(k.split(".")[-2] in ("c_attn", "c_proj", "c_fc") for k in diff)  # only adapted layers changed
    assert summary["val_loss"] < summary["base_val_loss"]


def test_sft_without_usable_examples_is_a_clear_error(run, tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text(json.dumps({"instruction": "x", "output": ""}) + "\n")
    with pytest.raises(InputError, match="no usable training example"):
        run_sft(str(run["base"]), str(path), str(tmp_path / "out"), sft_config())


def test_sft_from_gpt2_weights_through_the_interop_path(run, pairs, tmp_path):
    from helpers.finetune import make_gpt2_folder

    texts = [
        t
        for part in stage_parts(run["extract"])
        for b in iter_batches(part, columns=["text"])
        for t in b.column("text").to_pylist()
    ]
    folder = make_gpt2_folder(tmp_path / "gpt2", texts)
    model, tok, info = load_base(str(folder))
    assert info["kind"] == "gpt2" and tok.decode([tok.eot_id]) == "<|endoftext|>"
    summary = run_sft(str(folder), str(pairs), str(tmp_path / "sft"), sft_config())
    assert summary["val_loss"] < summary["base_val_loss"]
    again, tok2, info2 = load_base(str(tmp_path / "sft" / "gpt2"))  # exported GPT-2 folder loads back
    assert info2["kind"] == "gpt2" and tok2.eot_id == tok.eot_id
    tuned, _, _ = load_base(summary["checkpoint"])
    for k, v in tuned.state_dict().items():
        torch.testing.assert_close(again.state_dict()[k], v)


def test_unknown_gpt2_name_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="neither a local GPT-2 folder nor in the Hugging Face cache"):
        load_base("gpt2-nonexistent-size")
