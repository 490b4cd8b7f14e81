"""PNG plots for the shard quality report (matplotlib's object API: no pyplot, no display)."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from pathlib import Path

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


def png_data_uri(path: Path) -> str:
    """A PNG file as a data: URI, for pages and markdown that must stand alone."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def histogram(path: Path, edges: Sequence[float], counts: Sequence[int], title: str, xlabel: str) -> Path:
    """Bars over log-spaced bins (document lengths span four orders of magnitude)."""
    fig = Figure(figsize=(7, 3.2))
    ax = fig.add_subplot()
    widths = [b - a for a, b in zip(edges[:-1], edges[1:])]
    ax.bar(edges[:-1], counts, width=widths, align="edge", color="#4c72b0", edgecolor="white")
    ax.set_xscale("log")
    ax.set(title=title, xlabel=xlabel, ylabel="documents")
    return _save(fig, path)


def bars(
    path: Path,
    labels: Sequence[str],
    values: Sequence[float],
    title: str,
    xlabel: str,
    colors: Sequence[str] | None = None,
) -> Path:
    """Horizontal bars, largest on top; long labels (domains, rule names) stay readable."""
    fig = Figure(figsize=(7, 0.8 + 0.28 * max(1, len(labels))))
    ax = fig.add_subplot()
    ax.barh(list(range(len(labels)))[::-1], values, color=colors or "#55a868")
    ax.set_yticks(list(range(len(labels)))[::-1], [str(x)[:40] for x in labels], fontsize=8)
    ax.set(title=title, xlabel=xlabel)
    return _save(fig, path)


KEPT, DROPPED, LINE = "#4c72b0", "#c44e52", "#222222"


def signal_histogram(
    path: Path,
    edges: Sequence[float],
    kept: Sequence[int],
    dropped: Sequence[int],
    lines: Sequence[tuple[float, str]],
    title: str,
    log_x: bool,
) -> Path:
    """Kept (blue) and dropped (red) documents stacked per bin, each threshold a dashed line with its rule."""
    fig = Figure(figsize=(5.6, 2.4))
    ax = fig.add_subplot()
    left, widths = list(edges[:-1]), [b - a for a, b in zip(edges[:-1], edges[1:])]
    ax.bar(left, kept, width=widths, align="edge", color=KEPT)
    ax.bar(left, dropped, width=widths, align="edge", bottom=kept, color=DROPPED)
    if log_x:
        ax.set_xscale("symlog", linthresh=1.0)  # the first bin starts at 0
    ax.set_xlim(edges[0], edges[-1])
    middle = (edges[0] + edges[-1]) / 2 if not log_x else edges[len(edges) // 2]
    for value, rule in lines:
        ax.axvline(value, color=LINE, linestyle="--", linewidth=1.2)
        right_half = value > middle  # label on the inner side of the line, so it stays in the plot
        ax.annotate(
            rule,
            (value, 1),
            xycoords=("data", "axes fraction"),
            xytext=(-3 if right_half else 3, -10),
            textcoords="offset points",
            fontsize=7,
            color=LINE,
            ha="right" if right_half else "left",
        )
    ax.set(title=title, ylabel="documents")
    return _save(fig, path)


def grouped_bars(
    path: Path,
    labels: Sequence[str],
    series: dict[str, Sequence[float]],
    colors: Sequence[str],
    title: str,
    xlabel: str,
) -> Path:
    """Horizontal bars, one group per label (top to bottom in the given order), one bar per series."""
    fig = Figure(figsize=(8, 0.9 + 0.16 * len(series) * max(1, len(labels))))
    ax = fig.add_subplot()
    height = 0.8 / len(series)
    rows = list(range(len(labels)))[::-1]
    for k, ((name, values), color) in enumerate(zip(series.items(), colors)):
        ax.barh([r + 0.4 - (k + 0.5) * height for r in rows], values, height=height, color=color, label=name)
    ax.set_yticks(rows, [str(x)[:44] for x in labels], fontsize=8)
    ax.set(title=title, xlabel=xlabel)
    ax.legend(fontsize=7, loc="lower right", frameon=False)
    return _save(fig, path)


def stacked_bars(path: Path, labels: Sequence[str], kept: Sequence[int], dropped: Sequence[int], title: str) -> Path:
    """Horizontal kept + dropped bars per label (languages, domains), first label on top."""
    fig = Figure(figsize=(7, 0.8 + 0.28 * max(1, len(labels))))
    ax = fig.add_subplot()
    rows = list(range(len(labels)))[::-1]
    ax.barh(rows, kept, color=KEPT, label="kept")
    ax.barh(rows, dropped, left=kept, color=DROPPED, label="dropped")
    ax.set_yticks(rows, [str(x)[:40] for x in labels], fontsize=8)
    ax.set(title=title, xlabel="documents")
    ax.legend(fontsize=7, loc="lower right", frameon=False)
    return _save(fig, path)
