"""Real inputs for the fine-tuning tests: the bundled sample WARC through the extract and filter
stages, a tokenizer trained on it by pipeline/tokens/tokenizer.py, small GPT checkpoints in
model/checkpoint.py's format."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import torch

from crawl2gpt.config import RunConfig
from model.checkpoint import save_checkpoint
from model.gpt import GPT, GPTConfig

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_WARC = ROOT / "data" / "sample" / "CC-SAMPLE-A-00002.warc.gz"
SHARED_DATA = ROOT / "../shared/data"


_BUILT: dict[str, Path] = {}


def sample_run() -> dict[str, Path]:
    """The bundled sample through the real extract and filter stages, a tokenizer trained on the
    extracted text, and a small GPT checkpoint; built once per test session."""
    if _BUILT:
        return _BUILT
    from crawl2gpt.stages import load_stage
    from pipeline.stage import run_stage, stage_parts

    root = Path(tempfile.mkdtemp(prefix="crawl2gpt-finetune-"))
    atexit.register(shutil.rmtree, root, True)
    # Every extracted page, whatever its language (the pre-screen would skip the German ones that
    # the default English-only filter drops): the tests derive pairs and labels from them.
    cfg = RunConfig().with_overrides(["workers=1", "extract.language_prescreen=false"])
    run_stage(load_stage("extract"), [str(SAMPLE_WARC)], root / "extract", cfg)
    run_stage(load_stage("filter"), [str(root / "extract")], root / "filter", cfg)
    tok = train_tokenizer(stage_parts(root / "extract"), root / "tokenizer")
    _BUILT.update(
        root=root,
        extract=root / "extract",
        filter=root / "filter",
        tokenizer=tok,
        base=make_checkpoint(root / "base", tok),
    )
    return _BUILT


def train_tokenizer(parts: list[Path], out: Path, vocab_size: int = 1024) -> Path:
    from pipeline.tokens import tokenizer

    cfg = RunConfig().with_overrides(
        [f"tokenizer.vocab_size={vocab_size}", "tokenizer.threads=1", "tokenizer.character_coverage=0.99"]
    )
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.train(parts, out, cfg)
    return out / "tokenizer.model"


def make_checkpoint(
    out: Path, tokenizer_model: Path, seed: int = 0, pretrain_text: str | None = None, pretrain_steps: int = 0, **config
) -> Path:
    """A small GPT checkpoint with its tokenizer; optionally pretrained briefly on real text."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(tokenizer_model))
    args = dict(vocab_size=sp.get_piece_size(), block_size=256, n_layer=2, n_head=2, n_embd=64, dropout=0.0)
    args.update(config)
    torch.manual_seed(seed)
    model = GPT(GPTConfig(**args))
    if pretrain_text and pretrain_steps:
        pretrain(model, sp.encode(pretrain_text), pretrain_steps, seed)
    path = save_checkpoint(
        out / "checkpoints",
        pretrain_steps,
        model,
        None,
        {"model_config": model.config.to_dict(), "arch": "gpt", "eot_id": sp.eos_id()},
    )
    shutil.copyfile(tokenizer_model, path / "tokenizer.model")
    return path


def pretrain(model: GPT, ids: list[int], steps: int, seed: int, batch: int = 16) -> list[float]:
    """Plain next-token training on random windows of one token stream (the train stage needs shards)."""
    data = torch.tensor(ids)
    T = model.config.block_size
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(steps):
        starts = torch.randint(0, len(data) - T - 1, (batch,), generator=gen)
        x = torch.stack([data[s : s + T] for s in starts])
        y = torch.stack([data[s + 1 : s + T + 1] for s in starts])
        _, loss = model(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss))
    return losses


def make_gpt2_folder(out: Path, texts: list[str], vocab_size: int = 600) -> Path:
    """A Hugging Face GPT-2 folder (config.json, model.safetensors, vocab.json, merges.txt) with a
    byte-level BPE trained on real text: GPT-2's own weights cannot be downloaded in tests."""
    import transformers
    from tokenizers.implementations import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=vocab_size, special_tokens=["<|endoftext|>"], show_progress=False)
    out.mkdir(parents=True, exist_ok=True)
    bpe.save_model(str(out))
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=bpe.get_vocab_size(),
        n_positions=256,
        n_embd=32,
        n_layer=2,
        n_head=2,
        eos_token_id=bpe.token_to_id("<|endoftext|>"),
    )
    transformers.GPT2LMHeadModel(config).save_pretrained(out, safe_serialization=True)
    return out
