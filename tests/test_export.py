"""`crawl2gpt export`: the Hugging Face folder, loaded offline by transformers' Auto classes, computes
what our model computes and tokenizes as our SentencePiece model does.

Real components throughout: the bundled sample's text through the tokenizer and shards stages, a
GPT-2-shaped and a Llama-shaped GPT trained briefly on those shards, exported by the CLI.
"""

from __future__ import annotations

import json

import pytest
import sentencepiece as spm
import torch
from safetensors.torch import load_file, save_file

from crawl2gpt.config import RunConfig
from flows.cli import main
from helpers.corpus import build_run, extract_warc
from model.config import TrainConfig
from model.export import check_with_transformers, export_checkpoint, export_llama, target_architecture, with_zero_biases
from model.generate import load_for_generation, sample
from model.gpt import GPT, GPTConfig
from model.gpt2_interop import export_gpt2
from model.hf_tokenizer import (
    AWKWARD_TEXTS,
    BYTE,
    CONTROL,
    NORMAL,
    SPACE,
    UNKNOWN,
    build_tokenizer,
    check_same_ids,
    read_model,
    write_hf_tokenizer,
)
from model.tokenizer import SentencePieceTokenizer
from model.train import train
from pipeline.errors import ExportError
from pipeline.stage import process_map

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("one_torch_thread", "offline")

CFG = RunConfig().with_overrides(
    ["tokenizer.vocab_size=600", "tokenizer.character_coverage=0.98", "tokenizer.threads=2", "shards.val_fraction=0.2"]
)
SHAPES = {"gpt2": {}, "llama": {"positions": "rope", "norm": "rmsnorm", "mlp": "swiglu"}}
BLOCK = 64
NEW_TOKENS = 24


@pytest.fixture(scope="module")
def offline():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        yield


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run folder with the real tokenizer and shards stages' outputs on the sample WARC's text."""
    return build_run(tmp_path_factory.mktemp("run"), CFG, process_map(1))


def train_briefly(run, out, steps: int = 30, **shape):
    cfg = TrainConfig(
        n_layer=2,
        n_head=2,
        n_embd=32,
        block_size=BLOCK,
        batch_size=8,
        max_steps=steps,
        eval_interval=steps,
        checkpoint_interval=steps,
        eval_batches=1,
        warmup_steps=3,
        learning_rate=3e-3,
        min_lr=3e-4,
        device="cpu",
        sample_tokens=0,
        **shape,
    )
    train(run / "shards", out, cfg, progress=False)
    return out


# each shape twice: after one step (near-random weights, a different next token at almost every
# position) and after 30 steps (norm gains and biases moved away from ones and zeros)
EXPORTS = [(shape, steps) for shape in sorted(SHAPES) for steps in (1, 30)]


@pytest.fixture(scope="module", params=EXPORTS, ids=[f"{shape}-{steps}steps" for shape, steps in EXPORTS])
def exported(request, run, tmp_path_factory, offline):
    """(shape, steps, train folder, exported folder), exported through the CLI."""
    shape, steps = request.param
    root = tmp_path_factory.mktemp(f"export-{shape}-{steps}")
    trained = train_briefly(run, root / "train", steps=steps, **SHAPES[shape])
    assert main(["export", "--ckpt", str(trained), "--output", str(root / "hf")]) == 0
    return shape, steps, trained, root / "hf"


def prompts() -> list[str]:
    """Openings of real documents, 1 to 6 words, and the empty prompt."""
    texts = [row["text"] for row in extract_warc()]
    return [" ".join(text.split()[: 1 + i % 6]) for i, text in enumerate(texts[:10])] + [""]


def test_greedy_generation_through_transformers_equals_ours(exported):
    shape, _, trained, folder = exported
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    theirs = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    ours, sp, eot = load_for_generation(trained)
    assert type(theirs).__name__ == {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM"}[shape]
    for prompt in prompts():
        ids = tokenizer(prompt)["input_ids"]
        assert ids == sp.encode(prompt)
        mine = sample(ours, ids, NEW_TOKENS, temperature=0, eot_id=eot)
        start = torch.tensor([ids or [eot]])  # an empty prompt starts from <|endoftext|> in both (bos_token_id)
        out = theirs.generate(start, max_new_tokens=NEW_TOKENS, do_sample=False)[0, start.size(1) :].tolist()
        assert mine == (out[: out.index(eot)] if eot in out else out), prompt
        assert tokenizer.decode(mine) == sp.decode(mine)


def test_next_token_choice_agrees_at_every_position_of_real_text(exported):
    """Teacher-forced: for each position of real text, transformers' logits and ours, and their argmax."""
    _, steps, trained, folder = exported
    theirs = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    ours, sp, _ = load_for_generation(trained)
    rows = torch.tensor(
        [sp.encode(row["text"])[:BLOCK] for row in extract_warc()[:8] if len(sp.encode(row["text"])) >= BLOCK]
    )
    assert len(rows) >= 4
    with torch.no_grad():
        want, _ = ours.eval()(rows)
        got = theirs(rows).logits
    assert (got - want).abs().max().item() < 1e-4
    assert torch.equal(got.argmax(-1), want.argmax(-1))
    if steps == 1:  # near-random weights: the argmax check compares many different choices
        assert want.argmax(-1).unique().numel() > 50


def test_folder_holds_what_transformers_and_serving_tools_read(exported):
    shape, _, _, folder = exported
    names = {p.name for p in folder.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "README.md",
    } <= names
    assert not list(folder.parent.glob(f".{folder.name}.tmp-*"))  # written beside, renamed into place
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == shape and config["vocab_size"] == 600
    assert (config["eos_token_id"], config["pad_token_id"]) == (2, 0)
    assert json.loads((folder / "generation_config.json").read_text())["eos_token_id"] == 2
    assert all(p.stat().st_mode & 0o044 for p in folder.iterdir())  # readable by a server running as another user


def test_tokenizer_gives_sentencepiece_ids_on_varied_text(run, tmp_path):
    write_hf_tokenizer(
        SentencePieceTokenizer(run / "tokenizer/tokenizer.model"), tmp_path, BLOCK
    )  # what export writes beside the weights
    folder = tmp_path
    sp = spm.SentencePieceProcessor(model_file=str(run / "tokenizer/tokenizer.model"))
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    assert (tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id) == (
        0,
        1,
        2,
        None,
    )
    texts = (
        [row["text"] for row in extract_warc()]
        + list(AWKWARD_TEXTS)
        + [
            "Preis: 1.299,00 € (inkl. 19 % MwSt.) – Tel. 030 1234567",
            "tab\there  two  spaces   three\n\n\nnewlines",
            "Ελληνικά, русский, עברית, العربية, हिन्दी",
            "  leading and trailing  ",
            "<|endoftext|>",
        ]
    )
    for text in texts:
        ids = tokenizer(text)["input_ids"]
        assert ids == sp.encode(text), text
        assert tokenizer.decode(ids) == sp.decode(ids) == text.replace(SPACE, " "), text  # identity: byte-exact, but
        # a literal "▁" in text is SentencePiece's own space symbol and comes back as a space in both
    assert 2 not in tokenizer("a <|endoftext|> b")["input_ids"]  # written in text it stays text, as in training
    split_digits = tokenizer.convert_ids_to_tokens(tokenizer("in 2024")["input_ids"])
    assert split_digits[-4:] == ["2", "0", "2", "4"]


def test_model_file_reader_agrees_with_sentencepiece(run):
    path = run / "tokenizer/tokenizer.model"
    sp = spm.SentencePieceProcessor(model_file=str(path))
    model = read_model(path)
    assert len(model.pieces) == sp.GetPieceSize()
    for i, (piece, score, kind) in enumerate(model.pieces):
        assert (piece, score) == (sp.IdToPiece(i), sp.GetScore(i))
        expected = CONTROL if sp.IsControl(i) else UNKNOWN if sp.IsUnknown(i) else BYTE if sp.IsByte(i) else NORMAL
        assert kind == expected
    assert (model.normalizer, model.byte_fallback, model.add_dummy_prefix, model.remove_extra_whitespaces) == (
        "identity",
        True,
        True,
        False,
    )


def _train_sentencepiece(path, docs: int = 200, **options):
    lines = [line for row in extract_warc()[:docs] for line in row["text"].split("\n") if line.strip()]
    settings = dict(
        model_type="bpe",
        vocab_size=400,
        character_coverage=0.98,
        pad_id=0,
        pad_piece="<|pad|>",
        unk_id=1,
        eos_id=2,
        eos_piece="<|endoftext|>",
        bos_id=-1,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        byte_fallback=True,
        minloglevel=2,
        num_threads=1,
    )
    with open(path, "wb") as fh:
        spm.SentencePieceTrainer.Train(sentence_iterator=iter(lines), model_writer=fh, **{**settings, **options})
    return path


def test_tokenizer_without_byte_fallback_converts_unknowns_exactly(tmp_path):
    """Unknown characters: one <unk> per run of them, decoded as SentencePiece's ' ⁇ '."""
    path = _train_sentencepiece(tmp_path / "t.model", byte_fallback=False)
    sp = spm.SentencePieceProcessor(model_file=str(path))
    texts = [row["text"] for row in extract_warc()[:30]] + list(AWKWARD_TEXTS)
    assert check_same_ids(sp, build_tokenizer(path), texts, str(path)) == len(texts)
    assert sp.unk_id() in sp.encode("中文 🙂")


@pytest.mark.parametrize(
    "options, named",
    [
        (dict(normalization_rule_name="nmt_nfkc"), "normalization rule 'nmt_nfkc'"),
        (dict(remove_extra_whitespaces=True), "remove_extra_whitespaces=true"),
        (dict(user_defined_symbols=["<|user|>"]), "user-defined symbols"),
        (dict(model_type="unigram"), "model_type=unigram"),
    ],
)
def test_tokenizer_options_without_an_exact_equivalent_are_refused(tmp_path, options, named):
    path = _train_sentencepiece(tmp_path / "t.model", docs=20, **options)
    with pytest.raises(ExportError, match=named):
        build_tokenizer(path)


@pytest.mark.parametrize(
    "shape, named",
    [
        (dict(positions="rope"), "train.norm=layernorm and train.mlp=gelu with train.positions=rope"),
        (dict(positions="rope", norm="rmsnorm"), "train.mlp=gelu with train.positions=rope"),
        (dict(norm="rmsnorm"), "train.norm=rmsnorm with train.positions=learned"),
        (dict(mlp="swiglu"), "train.mlp=swiglu with train.positions=learned"),
    ],
)
def test_shapes_without_a_transformers_architecture_are_refused(shape, named):
    with pytest.raises(ExportError, match=named):
        target_architecture(GPTConfig(**shape))
    with pytest.raises(ExportError, match="train.arch=lstm"):
        target_architecture(GPTConfig(), arch="lstm")


def test_cli_refuses_an_unsupported_checkpoint_and_writes_nothing(run, tmp_path, capsys):
    trained = train_briefly(run, tmp_path / "train", steps=2, positions="rope", norm="layernorm", mlp="swiglu")
    assert main(["export", "--ckpt", str(trained), "--output", str(tmp_path / "hf")]) == 2
    assert "train.norm=layernorm with train.positions=rope has no transformers equivalent" in capsys.readouterr().err
    assert not (tmp_path / "hf").exists() and not list(tmp_path.glob(".hf.tmp-*"))


def test_existing_output_is_replaced_only_with_force(run, tmp_path):
    trained = train_briefly(run, tmp_path / "train", steps=1)
    out = tmp_path / "hf"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="--force"):
        export_checkpoint(trained, out)
    assert (out / "keep.txt").is_file()
    summary = export_checkpoint(trained, out, force=True)
    assert (
        not (out / "keep.txt").exists() and (out / "model.safetensors").is_file() and summary["max_logit_diff"] < 1e-5
    )


@pytest.mark.parametrize(
    "shape",
    [
        dict(bias=False),  # GPT-2 with zero biases
        dict(positions="rope", norm="rmsnorm", mlp="swiglu", bias=False, n_head=4, rope_base=500000.0),
        dict(
            positions="rope", norm="rmsnorm", mlp="swiglu", bias=True, n_embd=40, n_head=5
        ),  # odd head count, hidden 128
    ],
)
def test_other_shapes_export_with_equal_logits(tmp_path, shape):
    """Random weights (a wrong row order or a missing bias shows at once), through from_pretrained."""
    torch.manual_seed(0)
    config = GPTConfig(**{"vocab_size": 97, "block_size": 32, "n_layer": 2, "n_head": 2, "n_embd": 32, **shape})
    model = GPT(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias") or "ln" in name:  # trained-looking norms and biases, not ones and zeros
                p.add_(torch.randn_like(p) * 0.1)
    if target_architecture(config) == "gpt2":
        export_gpt2(with_zero_biases(model), tmp_path)
    else:
        export_llama(model, tmp_path)
    theirs = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    idx = torch.randint(0, 97, (2, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert (theirs(idx).logits - model(idx)[0]).abs().max().item() < 1e-5


@pytest.mark.parametrize("mistake", ["gate and up swapped", "rotary pairs left interleaved"])
def test_the_export_check_catches_a_wrong_mapping(tmp_path, mistake):
    """check_with_transformers, which every export runs, refuses a folder that computes something else."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=97, block_size=32, n_layer=2, n_head=2, n_embd=32, **SHAPES["llama"])).eval()
    export_llama(model, tmp_path)
    weights = load_file(str(tmp_path / "model.safetensors"))
    for i in range(2):
        layer = f"model.layers.{i}."
        if mistake == "gate and up swapped":
            gate, up = weights[layer + "mlp.gate_proj.weight"], weights[layer + "mlp.up_proj.weight"]
            weights[layer + "mlp.gate_proj.weight"], weights[layer + "mlp.up_proj.weight"] = up, gate
        else:
            q, k, _ = model.transformer.h[i].attn.c_attn.weight.detach().split(32)
            weights[layer + "self_attn.q_proj.weight"], weights[layer + "self_attn.k_proj.weight"] = (
                q.clone(),
                k.clone(),
            )
    save_file(weights, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ExportError, match="logits"):
        check_with_transformers(model, tmp_path)
