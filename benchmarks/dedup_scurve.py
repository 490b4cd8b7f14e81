"""Plot the LSH S-curve of the configured bands x rows (and neighbours) -> docs/dedup-scurve.png.

usage: python benchmarks/dedup_scurve.py [OUT.png]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crawl2gpt.config import RunConfig  # noqa: E402
from pipeline.dedup.lsh import lsh_threshold, s_curve  # noqa: E402


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "dedup-scurve.png"
    d = RunConfig().dedup
    s = np.linspace(0, 1, 501)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for bands, rows, style in [(d.bands, d.rows, "-"), (20, 5, "--"), (9, 13, ":")]:
        label = f"{bands} bands x {rows} rows (knee {lsh_threshold(bands, rows):.2f})"
        ax.plot(s, s_curve(s, bands, rows), style, label=label + ("  [FineWeb, default]" if (bands, rows) == (d.bands, d.rows) else ""))
    ax.axvline(d.verify_threshold, color="grey", lw=0.8)
    ax.text(d.verify_threshold - 0.01, 0.05, f"verify_threshold {d.verify_threshold}", color="grey", ha="right")
    ax.set(xlabel="Jaccard similarity of the 5-gram shingle sets", ylabel="P(candidate pair)",
           title="MinHash LSH: probability that a pair shares a band")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    points = {f"{x:.2f}": round(float(s_curve(x, d.bands, d.rows)), 4) for x in (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)}
    print(json.dumps({"benchmark": "dedup_scurve", "bands": d.bands, "rows": d.rows, "knee": round(lsh_threshold(d.bands, d.rows), 4),
                      "p_candidate": points, "plot": str(out.relative_to(ROOT))}))


if __name__ == "__main__":
    main()
