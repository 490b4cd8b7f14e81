"""Plot the LSH S-curve of the configured bands x rows (and neighbours) -> docs/dedup-scurve.png.

usage: python -m benchmarks.dedup_scurve [OUT.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from benchmarks.harness import ROOT, print_result
from crawl2gpt.config import RunConfig
from pipeline.dedup.lsh import lsh_threshold, s_curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=ROOT / "docs" / "dedup-scurve.png", help="the plot (PNG)")
    out = parser.parse_args().out.resolve()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = RunConfig().dedup
    s = np.linspace(0, 1, 501)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for bands, rows, style in [(d.bands, d.rows, "-"), (20, 5, "--"), (9, 13, ":")]:
        label = f"{bands} bands x {rows} rows (knee {lsh_threshold(bands, rows):.2f})"
        ax.plot(
            s,
            s_curve(s, bands, rows),
            style,
            label=label + ("  [FineWeb, default]" if (bands, rows) == (d.bands, d.rows) else ""),
        )
    ax.axvline(d.verify_threshold, color="grey", lw=0.8)
    ax.text(d.verify_threshold - 0.01, 0.05, f"verify_threshold {d.verify_threshold}", color="grey", ha="right")
    ax.set(
        xlabel="Jaccard similarity of the 5-gram shingle sets",
        ylabel="P(candidate pair)",
        title="MinHash LSH: probability that a pair shares a band",
    )
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    points = {
        f"{x:.2f}": round(float(s_curve(x, d.bands, d.rows)), 4) for x in (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
    }
    plot = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    print_result(
        {
            "benchmark": "dedup_scurve",
            "bands": d.bands,
            "rows": d.rows,
            "knee": round(lsh_threshold(d.bands, d.rows), 4),
            "p_candidate": points,
            "plot": str(plot),
        }
    )


if __name__ == "__main__":
    main()
