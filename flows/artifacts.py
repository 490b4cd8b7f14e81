"""Stage stats as Prefect artifacts: a table of counts, a markdown summary, report links."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from pipeline.stage import StageStats


def artifact_key(*parts: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")[:100]


def run_label(output: str | Path, stage: str) -> str:
    """What artifact keys call a run: its folder's name (`runs/demo/filter` -> `demo`).

    Not the config's `name`: two runs of one config file would overwrite each other's
    artifacts. A stage written outside a run folder's layout (`out/filtered-v2`) is named by
    its parent and itself, so two such outputs never share keys either.
    """
    folder = Path(output).resolve()
    return folder.parent.name if folder.name == stage else f"{folder.parent.name}-{folder.name}"


def scalar_rows(mapping: dict, prefix: str = "", nested: bool = True) -> list[dict]:
    """`measure`/`value` rows of a summary's plain values (nested dicts as `a.b` when `nested`)."""
    rows = []
    for key, value in mapping.items():
        if isinstance(value, dict) and nested:
            rows += scalar_rows(value, f"{prefix}{key}.")
        elif isinstance(value, (int, float, str, bool)) and not str(value).endswith(".png"):
            rows.append({"measure": prefix + key, "value": value})
    return rows


def stats_table(stats: StageStats) -> list[dict]:
    rows = [
        {"measure": "documents in", "value": stats.docs_in},
        {"measure": "documents out", "value": stats.docs_out},
    ]
    rows += [
        {"measure": f"dropped: {reason}", "value": n}
        for reason, n in sorted(stats.drops.items(), key=lambda kv: -kv[1])
    ]
    rows += scalar_rows(stats.extra, nested=False)
    rows.append({"measure": "seconds", "value": stats.seconds})
    return rows


def stats_markdown(stats: StageStats, config_name: str) -> str:
    kept = f"{stats.docs_out / stats.docs_in:.1%}" if stats.docs_in else "n/a"
    lines = [
        f"## Stage `{stats.stage}` of run `{run_label(stats.output, stats.stage)}` (config `{config_name}`)",
        "",
        f"- output: `{stats.output}`",
        f"- documents: {stats.docs_in} in, {stats.docs_out} out ({kept} kept)",
        f"- time: {stats.seconds:.1f} s" + (" (skipped: manifest up to date)" if stats.skipped else ""),
    ]
    if stats.drops:
        lines += ["", "| dropped because | documents |", "|---|---:|"]
        lines += [f"| {reason} | {n} |" for reason, n in sorted(stats.drops.items(), key=lambda kv: -kv[1])]
    if stats.errors:
        lines += ["", f"**{len(stats.errors)} counted problems** (first 10):", ""]
        lines += [f"- `{e}`" for e in stats.errors[:10]]
    nested = {k: v for k, v in stats.extra.items() if isinstance(v, (dict, list))}
    if nested:
        lines += ["", "```json", json.dumps(nested, indent=1, default=str)[:4000], "```"]
    return "\n".join(lines)


def publish_stage(stats: StageStats, config_name: str) -> None:
    run = run_label(stats.output, stats.stage)
    create_table_artifact(
        key=artifact_key(run, stats.stage, "counts"),
        table=stats_table(stats),
        description=f"{stats.stage}: counts in/out and drops by reason",
    )
    create_markdown_artifact(
        key=artifact_key(run, stats.stage, "summary"),
        markdown=stats_markdown(stats, config_name),
        description=f"{stats.stage} summary",
    )


def png_markdown(path: Path, title: str) -> str:
    """Embed a PNG in a markdown artifact (both Prefect 3 UIs render data URIs; no file server needed)."""
    from pipeline.report.plots import png_data_uri  # here: importing matplotlib costs every CLI command a second

    return f"### {title}\n\n![{title}]({png_data_uri(path)})\n"
