"""How well a classifier does on its held-out split: accuracy, per-class precision/recall/F1, macro F1,
the confusion matrix (classification_report) and its plot (plot_confusion)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pipeline.atomic import atomic_write_with


def classification_report(gold: list[int], pred: list[int], names: list[str]) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1, macro F1 and the confusion matrix (rows gold, columns predicted)."""
    k = len(names)
    cm = torch.bincount(torch.tensor(gold) * k + torch.tensor(pred), minlength=k * k).view(k, k)
    tp = cm.diag().double()
    precision = tp / cm.sum(0).clamp(min=1)
    recall = tp / cm.sum(1).clamp(min=1)
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall), torch.zeros_like(tp))
    present = cm.sum(1) > 0  # macro F1 over the classes that occur in the held-out split
    per_class = {
        n: {"precision": round(float(p), 4), "recall": round(float(r), 4), "f1": round(float(f), 4), "support": int(s)}
        for n, p, r, f, s in zip(names, precision, recall, f1, cm.sum(1))
    }
    return {
        "accuracy": float(tp.sum() / max(len(gold), 1)),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": per_class,
        "confusion": cm.tolist(),
        "labels": names,
        "n": len(gold),
    }


def plot_confusion(report: dict[str, Any], path: Path, title: str = "") -> Path:
    """Row-normalized confusion matrix (each gold class sums to 1), counts written in small matrices."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = torch.tensor(report["confusion"], dtype=torch.float64)
    norm = cm / cm.sum(1, keepdim=True).clamp(min=1)
    k = len(report["labels"])
    size = min(4 + 0.22 * k, 22)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(norm.numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), report["labels"], rotation=90, fontsize=8 if k > 20 else 10)
    ax.set_yticks(range(k), report["labels"], fontsize=8 if k > 20 else 10)
    if k <= 20:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black")
    ax.set(
        xlabel="predicted",
        ylabel="true",
        title=title or f"accuracy {report['accuracy']:.3f}, macro F1 {report['macro_f1']:.3f}",
    )
    fig.colorbar(im, ax=ax, fraction=0.046)
    atomic_write_with(path, lambda fh: fig.savefig(fh, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)
    return path
