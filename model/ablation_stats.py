"""An ablation's numbers: each run's spread over seeds, the differences between runs, a verdict.

Each run trained once per seed; a seed changes the initial weights and the order of the data, so
the spread of one run's seeds is the noise any difference between runs must stand out of.

  spread       mean, sample standard deviation, min, max of a metric over one run's seeds
  difference   mean(B) - mean(A), its standard error sqrt(sd_A^2 / n_A + sd_B^2 / n_B), and
               whether the seeds' ranges overlap
  verdict      "within noise" when they overlap (some seed of the worse run beat some seed of the
               better), else which run is better (lower bits per byte); "one seed: no noise
               estimate" when a run has a single seed
  seeds_needed how many seeds per run would make this difference twice its standard error, at
               the spread measured here (n >= 8 sd^2 / d^2, equal seeds per run and pooled sd; at
               least 2, the fewest that measure a spread);
               what docs/ablation.md calls the seeds a user needs before trusting a difference
"""

from __future__ import annotations

import math
import statistics
from typing import Any


def spread(values: list[float]) -> dict[str, Any]:
    values = [v for v in values if v is not None]
    if not values:
        return {"n": 0, "mean": None, "sd": None, "min": None, "max": None, "values": []}
    return {
        "n": len(values),
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else None,
        "min": min(values),
        "max": max(values),
        "values": values,
    }


def difference(a: dict[str, Any], b: dict[str, Any], name_a: str, name_b: str) -> dict[str, Any]:
    """B against A on one metric (lower is better), from their `spread`s."""
    if not a["n"] or not b["n"]:
        return {"a": name_a, "b": name_b, "diff": None, "se": None, "verdict": "not measured"}
    diff = b["mean"] - a["mean"]
    result: dict[str, Any] = {"a": name_a, "b": name_b, "diff": diff, "se": None, "overlap": None, "seeds_needed": None}
    if a["n"] < 2 or b["n"] < 2:
        result["verdict"] = "one seed: no noise estimate"
        return result
    result["se"] = math.sqrt(a["sd"] ** 2 / a["n"] + b["sd"] ** 2 / b["n"])
    result["overlap"] = a["min"] <= b["max"] and b["min"] <= a["max"]
    pooled = (a["sd"] ** 2 + b["sd"] ** 2) / 2
    result["seeds_needed"] = max(2, math.ceil(8 * pooled / diff**2)) if diff else None  # 2: the least with a spread
    if result["overlap"]:
        result["verdict"] = "within noise"
    else:
        result["verdict"] = f"{name_a if diff > 0 else name_b} better"
    return result


def summarize(arms: list[dict[str, Any]], labels: list[str], metrics: tuple[str, ...]) -> dict[str, Any]:
    """Per run and metric its spread over seeds; every run against the first on each metric."""
    runs = {label: {m: spread([arm[m] for arm in arms if arm["run"] == label]) for m in metrics} for label in labels}
    base = labels[0]
    differences = {m: [difference(runs[base][m], runs[other][m], base, other) for other in labels[1:]] for m in metrics}
    return {"spread": runs, "differences": differences}


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _cell(s: dict[str, Any]) -> str:
    if not s["n"]:
        return "-"
    sd = f" ± {s['sd']:.4f}" if s["sd"] is not None else ""
    return f"{s['mean']:.4f}{sd} [{s['min']:.4f}, {s['max']:.4f}]"


METRIC_NAMES = {"eval_bpb": "eval text bits/byte", "val_bpb": "own val split bits/byte"}


def table_rows(summary: dict[str, Any], epochs: dict[str, float]) -> list[dict[str, str]]:
    """One row per run: its seeds, each metric as mean ± sd [min, max], the epochs its budget is."""
    rows = []
    for label, metrics in summary["spread"].items():
        row = {"run": label, "seeds": str(max(s["n"] for s in metrics.values()))}
        row.update({METRIC_NAMES.get(m, m): _cell(s) for m, s in metrics.items()})
        row["epochs"] = f"{epochs.get(label, 0):.2f}"
        rows.append(row)
    return rows


def difference_lines(summary: dict[str, Any]) -> list[str]:
    lines = []
    for metric, diffs in summary["differences"].items():
        for d in diffs:
            if d["diff"] is None:
                continue
            se = f" ± {d['se']:.4f} (standard error)" if d["se"] is not None else ""
            need = f" ({d['seeds_needed']} seeds per run put it at 2 standard errors)" if d.get("seeds_needed") else ""
            lines.append(
                f"{METRIC_NAMES.get(metric, metric)}: {d['b']} - {d['a']} = {d['diff']:+.4f}{se}: {d['verdict']}{need}"
            )
    return lines


def text_table(rows: list[dict[str, str]]) -> str:
    """A plain fixed-width table (the CLI prints it; markdown goes to the UI)."""
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in columns}
    line = lambda cells: "  ".join(cells[c].ljust(widths[c]) for c in columns).rstrip()  # noqa: E731
    return "\n".join([line({c: c for c in columns}), line({c: "-" * widths[c] for c in columns}), *map(line, rows)])


def markdown_table(rows: list[dict[str, str]]) -> str:
    columns = list(rows[0])
    return "\n".join(
        [
            "| " + " | ".join(columns) + " |",
            "|" + "---|" * len(columns),
            *("| " + " | ".join(r[c] for c in columns) + " |" for r in rows),
        ]
    )
