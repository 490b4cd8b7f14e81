"""PNG plots for the shard quality report (matplotlib's object API: no pyplot, no display)."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pipeline.atomic import atomic_write_bytes


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    png = io.BytesIO()
    # No timestamp or version in the metadata: the same shards give the same bytes.
    fig.savefig(png, format="png", dpi=100, metadata={"Software": None})
    atomic_write_bytes(path, png.getvalue())
    return path


def histogram(path: Path, edges: Sequence[float], counts: Sequence[int], title: str, xlabel: str) -> Path:
    """Bars over log-spaced bins (document lengths span four orders of magnitude)."""
    fig = Figure(figsize=(7, 3.2))
    ax = fig.add_subplot()
    widths = [b - a for a, b in zip(edges[:-1], edges[1:])]
    ax.bar(edges[:-1], counts, width=widths, align="edge", color="#4c72b0", edgecolor="white")
    ax.set_xscale("log")
    ax.set(title=title, xlabel=xlabel, ylabel="documents")
    return _save(fig, path)


def bars(path: Path, labels: Sequence[str], values: Sequence[float], title: str, xlabel: str,
         colors: Sequence[str] | None = None) -> Path:
    """Horizontal bars, largest on top; long labels (domains, rule names) stay readable."""
    fig = Figure(figsize=(7, 0.8 + 0.28 * max(1, len(labels))))
    ax = fig.add_subplot()
    ax.barh(list(range(len(labels)))[::-1], values, color=colors or "#55a868")
    ax.set_yticks(list(range(len(labels)))[::-1], [str(x)[:40] for x in labels], fontsize=8)
    ax.set(title=title, xlabel=xlabel)
    return _save(fig, path)
