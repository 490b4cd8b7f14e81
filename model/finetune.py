"""Fine-tuning a pretrained GPT: the shared loop, masked packed attention, and instruction tuning (SFT).

`run_sft(base, data_jsonl, out_dir, cfg)` is the entry the CLI and the `finetune-sft` flow call:
  base       a checkpoint of ours (step folder, checkpoints/ folder or train run folder),
             or "gpt2" / "gpt2-medium" / ... / a local Hugging Face GPT-2 folder, loaded through
             model/gpt2_interop.py into our GPT class
  data_jsonl instruction data (model/sft_data.py lists the formats and the bad-input rules), or a
             finished extract/filter/dedup folder: pairs are derived from it into out_dir/pairs.jsonl
  out_dir    gets metrics.jsonl, loss.png, answers.jsonl (held-out prompts answered before and
             after tuning), checkpoints/step-N (merged weights + tokenizer: model/generate.py
             reads it), lora.safetensors (adapters alone, LoRA runs), summary.json

Packed rows need attention that stops at example boundaries and positions that restart per
example: GPT.hidden_states takes both (segment ids and positions), the same forward pretraining
runs, so fine-tuning trains the model pretraining made (bf16 residual stream, attention option
and all). tests/test_finetune.py checks packed = unpacked for every attention and residual option.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from model.config import FinetuneConfig, ModelRun, ModelSections
from model.fused_loss import linear_cross_entropy, logits_cross_entropy
from model.gpt import GPT
from model.lora import apply_lora, count_params, lora_state_dict, remove_lora
from model.sft_data import (
    IGNORE,
    Batch,
    encode_prompt,
    iter_batches,
    make_rows,
    prompt_turns,
    read_jsonl,
    split_of,
    to_example,
)
from model.sft_pairs import derive_pairs
from model.tokenizer import GPT2Tokenizer, Tokenizer, load_tokenizer
from model.training import (
    MetricsLog,
    cosine_lr,
    make_optimizer,
    peak_memory_mb,
    pick_device,
    plot_losses,
    precision_setup,
)
from pipeline.atomic import atomic_write_file, atomic_write_text
from pipeline.errors import CheckpointError, InputError

log = logging.getLogger("crawl2gpt.finetune")


# --------------------------------------------------------------------------- the base model


def is_gpt2_spec(base: str) -> bool:
    """A Hugging Face GPT-2 folder (config.json) or a hub name such as gpt2 / gpt2-medium."""
    path = Path(base)
    return (path / "config.json").is_file() or (not path.exists() and base.split("/")[-1].startswith("gpt2"))


def load_base(base: str, device: str = "cpu") -> tuple[GPT, Tokenizer, dict[str, Any]]:
    """(model, tokenizer, facts about the base) from one of our checkpoints or GPT-2 weights."""
    if is_gpt2_spec(base):
        return _load_gpt2(base, device)
    from model.training import load_model

    model, state, ckpt = load_model(base, device)
    if state.get("arch", "gpt") != "gpt":
        raise CheckpointError(f"{ckpt} holds a {state.get('arch')!r} model; fine-tuning needs a GPT checkpoint")
    tok = load_tokenizer(ckpt, state.get("tokenizer_sha256"))
    info = {"base": str(ckpt), "kind": "checkpoint", "model_config": state["model_config"], "tokenizer_dir": str(ckpt)}
    return model, tok, info


def _load_gpt2(base: str, device: str) -> tuple[GPT, Tokenizer, dict[str, Any]]:
    """GPT-2 weights through model/gpt2_interop.py; a hub name is looked up in the local Hugging Face cache only."""
    from model.gpt2_interop import load_gpt2

    folder = Path(base)
    if not folder.is_dir():
        from huggingface_hub import snapshot_download

        try:
            folder = Path(snapshot_download(base, local_files_only=True))
        except Exception as err:  # huggingface_hub raises several types for "not cached"
            raise CheckpointError(
                f"{base!r} is neither a local GPT-2 folder nor in the Hugging Face cache ({type(err).__name__}); "
                f"fetch it once with `huggingface-cli download {base}` or pass its folder"
            ) from None
    model = load_gpt2(folder)
    info = {"base": str(folder), "kind": "gpt2", "model_config": model.config.to_dict(), "tokenizer_dir": str(folder)}
    return model.to(device), GPT2Tokenizer(folder), info


# --------------------------------------------------------------------------- the loss


def lm_loss(model: GPT, batch: Batch, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy on the response tokens only (targets IGNORE elsewhere).

    The training loss (mean, lm_head a plain Linear, not adapted) takes the fused un-embedding +
    cross-entropy on a GPU, as pretraining does (model/fused_loss.py).
    """
    hidden = model.hidden_states(batch.idx, batch.positions, batch.segments)  # (B, T, C), attention inside each example
    if reduction == "mean" and type(model.lm_head) is torch.nn.Linear:
        return linear_cross_entropy(hidden, model.lm_head.weight, batch.targets, IGNORE, fused=model.config.fused_loss)
    return logits_cross_entropy(model.lm_head(hidden), batch.targets, IGNORE, reduction)


# --------------------------------------------------------------------------- the shared loop


def fit(
    model: torch.nn.Module,
    loss_fn: Callable[[Any], torch.Tensor],
    batches: Iterator,
    *,
    steps: int,
    lr: float,
    ft: FinetuneConfig,
    device: str,
    evaluate: Callable[[], dict[str, float]],
    out_dir: Path,
) -> dict[str, Any]:
    """AdamW on the trainable parameters (ft's betas and weight decay, as pretraining reads its own);
    eval every finetune.eval_interval steps and at the end; rows to out_dir/metrics.jsonl."""
    opt = make_optimizer(model, ft, lr, device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    autocast, _, _ = precision_setup(ft.precision, device)  # bf16 or fp32 (no GradScaler needed)
    # a short run still decays: warmup ends at the latest one step before the end
    warmup = min(ft.warmup_steps, max(steps - 1, 0))
    metrics = MetricsLog(out_dir / "metrics.jsonl")
    metrics.clear()
    row: dict[str, Any] = {}
    started = time.perf_counter()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, lr, lr * ft.min_lr_ratio, warmup, steps)
        model.train()
        batch = next(batches).to(device)
        with autocast():
            loss = loss_fn(batch)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(trainable, ft.grad_clip) if ft.grad_clip > 0 else torch.zeros(())
        opt.step()
        opt.zero_grad(set_to_none=True)
        row = {
            "step": step + 1,
            "loss": float(loss.detach()),
            "lr": opt.param_groups[0]["lr"],
            "grad_norm": float(norm),
        }
        if (step + 1) % ft.eval_interval == 0 or step + 1 == steps:
            with autocast():
                row.update(evaluate())
        metrics.append(row)
    return {"steps": steps, "seconds": round(time.perf_counter() - started, 2), "last": row}


# --------------------------------------------------------------------------- SFT


@torch.no_grad()
def eval_loss(model: GPT, rows: list, pad_id: int, batch_size: int, device: str) -> float | None:
    """Mean cross-entropy per response token over the whole held-out split."""
    if not rows:
        return None
    model.eval()
    total, tokens = 0.0, 0
    for batch in iter_batches(rows, batch_size, None, pad_id, epochs=1):
        batch = batch.to(device)
        total += float(lm_loss(model, batch, reduction="sum"))
        tokens += int((batch.targets != IGNORE).sum())
    return total / max(tokens, 1)


def answer(model: GPT, tok: Tokenizer, turns, max_new_tokens: int) -> str:
    """Greedy answer to the prompt part of an example (stops at <|endoftext|>)."""
    from model.generate import sample

    block = model.config.block_size
    ids = (
        encode_prompt(turns, tok)[-(block - max_new_tokens) :] if max_new_tokens < block else encode_prompt(turns, tok)
    )
    return tok.decode(sample(model, ids, max_new_tokens, temperature=0.0, eot_id=tok.eot_id))


def answers_for(model: GPT, tok: Tokenizer, conversations: list, max_new_tokens: int) -> list[str]:
    return [answer(model, tok, prompt_turns(turns)[0], max_new_tokens) for turns in conversations]


def prepare_sft(conversations: list, tok: Tokenizer, block_size: int, ft: FinetuneConfig, counts: Counter):
    """(train examples, val examples, val conversations) after the split and the overlong rule."""
    train, val, val_turns = [], [], []
    for turns in conversations:
        split = split_of(turns, ft.val_fraction)
        example = to_example(turns, tok, block_size, ft.overlong, counts)
        if example is None:
            continue
        (val if split == "val" else train).append(example)
        if split == "val":
            val_turns.append(turns)
    counts["train_examples"], counts["val_examples"] = len(train), len(val)
    return train, val, val_turns


def setup_method(model: GPT, ft: FinetuneConfig) -> tuple[float, dict[str, int]]:
    """Apply LoRA or keep every weight trainable; returns (peak learning rate, parameter counts)."""
    if ft.method == "lora":
        apply_lora(model, ft.lora.target_modules, ft.lora.rank, ft.lora.alpha, ft.lora.dropout)
        lr = ft.lora.learning_rate
    else:
        for p in model.parameters():
            p.requires_grad_(True)
        lr = ft.learning_rate
    params = count_params(model)
    log.info(
        "%s fine-tuning: %d of %d parameters trainable (%.3f%%)",
        ft.method,
        params["trainable"],
        params["total"],
        params["trainable_pct"],
    )
    return lr, params


def save_finetuned(model: GPT, tok: Tokenizer, info: dict, out_dir: Path, step: int, ft: FinetuneConfig) -> Path:
    """Adapters alone (LoRA), then merged weights as a normal checkpoint that generate.py and run_sft read."""
    from safetensors.torch import save_file

    from model.checkpoint import save_checkpoint

    if ft.method == "lora":
        adapters = lora_state_dict(model)
        atomic_write_file(out_dir / "lora.safetensors", lambda tmp: save_file(adapters, str(tmp)))
        remove_lora(model)
    state = {
        "model_config": model.config.to_dict(),
        "arch": "gpt",
        "eot_id": tok.eot_id,
        "finetuned_from": info["base"],
        "finetune_config": ft.model_dump(mode="json"),
    }
    path = save_checkpoint(out_dir / "checkpoints", step, model, None, state, keep=1)
    tok.save(path)
    if info["kind"] == "gpt2":  # also as a GPT-2 folder that transformers (and run_sft) load
        from model.gpt2_interop import export_gpt2

        tok.save(export_gpt2(model, out_dir / "gpt2"))
    return path


def run_sft(base: str, data_jsonl: str, out_dir: str, cfg: ModelRun) -> dict[str, Any]:
    """Instruction-tune `base` on `data_jsonl` into `out_dir`; returns the run's summary (also summary.json)."""
    ft, out = cfg.finetune, Path(out_dir)
    device = pick_device(ft.device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    torch.manual_seed(ft.seed)
    model, tok, info = load_base(base, device)
    block = min(ft.block_size or model.config.block_size, model.config.block_size)
    derived = None
    if Path(data_jsonl).is_dir():  # a documents stage folder: derive pairs first (model/sft_pairs.py recipes)
        derived = dict(derive_pairs([data_jsonl], out / "pairs.jsonl"))
        data_jsonl = str(out / "pairs.jsonl")
    conversations, counts = read_jsonl(data_jsonl)
    train, val, val_turns = prepare_sft(conversations, tok, block, ft, counts)
    if not train:
        raise InputError(
            f"{data_jsonl}: no usable training example (counts: {dict(counts)}); see model/sft_data.py for the formats"
        )
    out.mkdir(parents=True, exist_ok=True)
    shown = val_turns[: ft.eval_prompts]
    before = answers_for(model, tok, shown, ft.max_new_tokens)
    lr, params = setup_method(model, ft)
    model.to(device)
    train_rows, val_rows = make_rows(train, block, ft.packing), make_rows(val, block, ft.packing)
    generator = torch.Generator().manual_seed(ft.seed)
    batches = iter_batches(train_rows, ft.batch_size, generator, tok.pad_id)
    evaluate = lambda: {"val_loss": eval_loss(model, val_rows, tok.pad_id, ft.batch_size, device)}  # noqa: E731
    base_val = evaluate()["val_loss"]
    loss_fn = lambda b: lm_loss(model, b)  # noqa: E731
    run = fit(model, loss_fn, batches, steps=ft.max_steps, lr=lr, ft=ft, device=device, evaluate=evaluate, out_dir=out)
    after = answers_for(model, tok, shown, ft.max_new_tokens)
    write_answers(out / "answers.jsonl", shown, before, after)
    memory = peak_memory_mb(device)
    ckpt = save_finetuned(model, tok, info, out, ft.max_steps, ft)
    plot = plot_losses(out, f"SFT ({ft.method}) from {Path(str(info['base'])).name}")
    summary = {
        "base": info["base"],
        "method": ft.method,
        "device": device,
        "packing": ft.packing,
        "block_size": block,
        "counts": dict(counts),
        "params": params,
        "learning_rate": lr,
        "steps": run["steps"],
        "seconds": run["seconds"],
        "train_rows": len(train_rows),
        "final_train_loss": run["last"].get("loss"),
        "base_val_loss": base_val,
        "val_loss": run["last"].get("val_loss"),
        **memory,
        "checkpoint": str(ckpt),
        "loss_plot": str(plot),
        "answers": str(out / "answers.jsonl"),
        "data": data_jsonl,
        "derived_pairs": derived,
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    return summary


def write_answers(path: Path, conversations: list, before: list[str], after: list[str]) -> None:
    lines = []
    for turns, b, a in zip(conversations, before, after):
        prompt, reference = prompt_turns(turns)
        row = {"prompt": prompt, "reference": reference, "base_answer": b, "finetuned_answer": a}
        lines.append(json.dumps(row, ensure_ascii=False) + "\n")
    atomic_write_text(path, "".join(lines))


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Instruction-tune a crawl2gpt checkpoint (or GPT-2) on JSONL data.")
    parser.add_argument("--base", required=True, help="checkpoint / train run folder, or gpt2, gpt2-medium, ...")
    parser.add_argument("--data", required=True, help="JSONL: Alpaca, chat messages or prompt/completion lines")
    parser.add_argument("--out", required=True)
    parser.add_argument("--config", default=None)
    parser.add_argument("overrides", nargs="*", help="finetune.field=value pairs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    print(json.dumps(run_sft(args.base, args.data, args.out, ModelSections.load(args.config, args.overrides))))


if __name__ == "__main__":
    main()
