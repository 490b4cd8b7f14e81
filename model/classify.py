"""Classification fine-tuning: the LM head replaced by a linear head over pooled hidden states.

`run_classify(base, data, out_dir, cfg)` is the entry the CLI and the `finetune-classify` flow call.
Labelled data (a TSV, a JSONL or a filter stage folder) is read by model/classify_data.py; texts
longer than classify.max_tokens are cut (counted 'truncated'). Held-out metrics and the confusion
plot: model/classify_metrics.py.

Pooling (classify.pooling): `last` takes the hidden state of the last real token, the only one
that attended to the whole text in a causal model (GPT-1's classifier, Radford et al. 2018,
section 3.3; padding is on the right and never attended to); `mean` averages the real tokens.
classify.train_blocks picks what trains: -1 every weight, k the top k blocks + final norm + head,
0 the head alone (a linear probe); finetune.method=lora trains adapters + head instead.

Outputs in out_dir: metrics.jsonl, loss.png, confusion.png, eval.json (accuracy, macro F1,
per-class precision/recall/F1, confusion matrix on the held-out split), classifier.safetensors +
classifier.json + tokenizer.model (load_classifier / predict read them back).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from torch.nn import functional as F

from model.classify_data import read_labelled, select
from model.classify_metrics import classification_report, plot_confusion
from model.config import FinetuneConfig, ModelRun
from model.finetune import fit, load_base
from model.gpt import GPT
from model.lora import apply_lora, count_params, remove_lora
from model.tokenizer import Tokenizer, load_tokenizer
from model.training import build_model, peak_memory_mb, pick_device, plot_losses
from pipeline.atomic import atomic_write_file, atomic_write_text
from pipeline.errors import InputError
from pipeline.hashing import stable_fraction

log = logging.getLogger("crawl2gpt.classify")


# --------------------------------------------------------------------------- the model


class GPTClassifier(nn.Module):
    """A GPT body, pooled hidden states, a linear head (n_embd -> classes)."""

    def __init__(self, gpt: GPT, n_classes: int, pooling: str = "last"):
        super().__init__()
        if pooling not in ("last", "mean"):
            raise ValueError(f"pooling must be 'last' or 'mean', got {pooling!r}")
        self.gpt, self.pooling = gpt, pooling
        self.head = nn.Linear(gpt.config.n_embd, n_classes)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def forward(self, idx: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """idx (B, T) right-padded ids, lengths (B,) real tokens per row -> logits (B, classes)."""
        B, T = idx.shape
        # padding is on the right, so causal attention alone keeps it out of every text token's state:
        # the plain forward, no segment mask needed
        h = self.gpt.hidden_states(idx)  # (B, T, C)
        if self.pooling == "last":
            pooled = h[torch.arange(B, device=idx.device), lengths - 1]  # (B, C)
        else:
            real = (
                (torch.arange(T, device=idx.device)[None, :] < lengths[:, None]).unsqueeze(-1).to(h.dtype)
            )  # (B, T, 1)
            pooled = (h * real).sum(1) / lengths[:, None].to(h.dtype)
        return self.head(pooled)


def choose_trainable(clf: GPTClassifier, ft: FinetuneConfig) -> dict[str, int]:
    """Freeze what classify.train_blocks (or LoRA) leaves out; the head always trains."""
    cc = ft.classify
    if ft.method == "lora":
        apply_lora(clf.gpt, ft.lora.target_modules, ft.lora.rank, ft.lora.alpha, ft.lora.dropout)
    elif cc.train_blocks != -1:
        clf.gpt.requires_grad_(False)
        blocks = clf.gpt.transformer.h
        if cc.train_blocks > len(blocks):
            raise InputError(f"finetune.classify.train_blocks={cc.train_blocks} but the model has {len(blocks)} blocks")
        if cc.train_blocks:
            for block in blocks[len(blocks) - cc.train_blocks :]:
                block.requires_grad_(True)
            clf.gpt.transformer.ln_f.requires_grad_(True)
    else:
        clf.gpt.requires_grad_(True)
    clf.head.requires_grad_(True)
    return count_params(clf)


@dataclass
class ClassBatch:
    idx: torch.Tensor  # (B, T)
    lengths: torch.Tensor  # (B,)
    labels: torch.Tensor  # (B,)

    def to(self, device) -> ClassBatch:
        return ClassBatch(self.idx.to(device), self.lengths.to(device), self.labels.to(device))


def collate(ids: Sequence[list[int]], labels: Sequence[int], pad_id: int) -> ClassBatch:
    width = max(len(x) for x in ids)
    idx = torch.full((len(ids), width), pad_id, dtype=torch.long)
    for i, x in enumerate(ids):
        idx[i, : len(x)] = torch.tensor(x)
    return ClassBatch(idx, torch.tensor([len(x) for x in ids]), torch.tensor(list(labels)))


def encode_texts(texts: list[str], tok: Tokenizer, max_tokens: int, counts: Counter) -> list[list[int]]:
    out = []
    for text in texts:
        ids = tok.encode(text)
        if len(ids) > max_tokens:
            counts["truncated"] += 1
            ids = ids[:max_tokens]
        out.append(ids or [tok.eot_id])
    return out


def train_batches(ids: list[list[int]], labels: list[int], batch_size: int, pad_id: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(ids), generator=gen).tolist()
        for i in range(0, len(order) - batch_size + 1 if len(order) >= batch_size else 1, batch_size):
            pick = order[i : i + batch_size]
            yield collate([ids[j] for j in pick], [labels[j] for j in pick], pad_id)


# --------------------------------------------------------------------------- prediction


@torch.no_grad()
def predict_ids(
    clf: GPTClassifier, ids: list[list[int]], pad_id: int, device: str, batch_size: int = 64
) -> torch.Tensor:
    """Logits (N, classes) for token id lists, in batches sorted by length (less padding)."""
    clf.eval()
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = torch.empty(len(ids), clf.head.out_features)
    for i in range(0, len(order), batch_size):
        pick = order[i : i + batch_size]
        batch = collate([ids[j] for j in pick], [0] * len(pick), pad_id).to(device)
        out[pick] = clf(batch.idx, batch.lengths).float().cpu()
    return out


# --------------------------------------------------------------------------- the run


def run_classify(base: str, data: str, out_dir: str, cfg: ModelRun, label_column: str = "keep_drop") -> dict[str, Any]:
    """Fine-tune `base` as a classifier on `data`; held-out metrics and plots in out_dir; returns the summary."""
    ft, cc, out = cfg.finetune, cfg.finetune.classify, Path(out_dir)
    device = pick_device(ft.device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    torch.manual_seed(ft.seed)
    texts, labels, counts = read_labelled(data, label_column)
    texts, labels = select(texts, labels, cc, counts)
    names = sorted(set(labels))
    if len(names) < 2:
        raise InputError(f"{data}: classification needs at least 2 labels, found {names} (counts: {dict(counts)})")
    gpt, tok, info = load_base(base, "cpu")
    max_tokens = min(cc.max_tokens, gpt.config.block_size)
    ids = encode_texts(texts, tok, max_tokens, counts)
    y = [names.index(label) for label in labels]
    # held out by a hash of the text: the same split whatever the file order, duplicates on one side
    held = [stable_fraction(t) < cc.val_fraction for t in texts]
    train = [(i, c) for i, c, h in zip(ids, y, held) if not h]
    val = [(i, c) for i, c, h in zip(ids, y, held) if h]
    if not train or not val:
        raise InputError(
            f"{data}: {len(train)} training and {len(val)} held-out examples; "
            "need both (lower/raise classify.val_fraction)"
        )
    counts.update(examples=len(texts), train_examples=len(train), val_examples=len(val))
    clf = GPTClassifier(gpt, len(names), cc.pooling)
    params = choose_trainable(clf, ft)
    log.info(
        "classifier: %d of %d parameters trainable (%.3f%%)",
        params["trainable"],
        params["total"],
        params["trainable_pct"],
    )
    clf.to(device)
    out.mkdir(parents=True, exist_ok=True)
    val_ids, val_y = [i for i, _ in val], [c for _, c in val]

    def evaluate() -> dict[str, float]:
        logits = predict_ids(clf, val_ids, tok.pad_id, device)
        gold = torch.tensor(val_y)
        return {
            "val_loss": float(F.cross_entropy(logits, gold)),
            "val_accuracy": float((logits.argmax(-1) == gold).float().mean()),
        }

    def loss_fn(batch: ClassBatch) -> torch.Tensor:
        return F.cross_entropy(clf(batch.idx, batch.lengths).float(), batch.labels)

    lr = ft.lora.learning_rate if ft.method == "lora" else cc.learning_rate
    batches = train_batches([i for i, _ in train], [c for _, c in train], cc.batch_size, tok.pad_id, ft.seed)
    run = fit(clf, loss_fn, batches, steps=cc.max_steps, lr=lr, ft=ft, device=device, evaluate=evaluate, out_dir=out)
    pred = predict_ids(clf, val_ids, tok.pad_id, device).argmax(-1).tolist()
    report = classification_report(val_y, pred, names)
    majority = Counter(c for _, c in train).most_common(1)[0][0]
    report["majority_baseline_accuracy"] = sum(c == majority for c in val_y) / len(val_y)
    memory = peak_memory_mb(device)
    atomic_write_text(out / "eval.json", json.dumps(report, indent=1))
    confusion = plot_confusion(report, out / "confusion.png")
    loss_plot = plot_losses(out, f"classifier ({ft.method}, {cc.pooling} pooling)")
    save_classifier(clf, names, info, tok, out, ft)
    summary = {
        "base": info["base"],
        "data": str(data),
        "method": ft.method,
        "pooling": cc.pooling,
        "train_blocks": cc.train_blocks,
        "device": device,
        "labels": names,
        "counts": dict(counts),
        "params": params,
        "learning_rate": lr,
        "steps": run["steps"],
        "seconds": run["seconds"],
        "final_train_loss": run["last"].get("loss"),
        "accuracy": report["accuracy"],
        "macro_f1": report["macro_f1"],
        "majority_baseline_accuracy": report["majority_baseline_accuracy"],
        **memory,
        "confusion_plot": str(confusion),
        "loss_plot": str(loss_plot),
        "eval": str(out / "eval.json"),
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    return summary


def save_classifier(
    clf: GPTClassifier, names: list[str], info: dict, tok: Tokenizer, out: Path, ft: FinetuneConfig
) -> None:
    from safetensors.torch import save_model

    if ft.method == "lora":
        remove_lora(clf.gpt)
    atomic_write_file(out / "classifier.safetensors", lambda tmp: save_model(clf.cpu(), str(tmp)))
    meta = {
        "labels": names,
        "pooling": clf.pooling,
        "model_config": clf.gpt.config.to_dict(),
        "base": info["base"],
        "max_tokens": ft.classify.max_tokens,
    }
    atomic_write_text(out / "classifier.json", json.dumps(meta, indent=1))
    tok.save(out)


def load_classifier(out_dir: str | Path) -> tuple[GPTClassifier, Tokenizer, dict[str, Any]]:
    """A classifier saved by run_classify, with its tokenizer and metadata."""
    from safetensors.torch import load_model

    out = Path(out_dir)
    meta = json.loads((out / "classifier.json").read_text())
    clf = GPTClassifier(build_model(meta["model_config"]), len(meta["labels"]), meta["pooling"])
    load_model(clf, str(out / "classifier.safetensors"))
    return clf.eval(), load_tokenizer(out), meta


def predict(out_dir: str | Path, texts: list[str], device: str = "cpu") -> list[str]:
    clf, tok, meta = load_classifier(out_dir)
    ids = encode_texts(texts, tok, meta["max_tokens"], Counter())
    return [meta["labels"][i] for i in predict_ids(clf.to(device), ids, tok.pad_id, device).argmax(-1).tolist()]
