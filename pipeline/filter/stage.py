"""The `filter` stage: language ID, Gopher repetition + quality, C4, FineWeb rules, a quality model
(when one is configured), PII masking.

One part per input `extract` part. Rules run in FineWeb's order (language first), each on every
document, so a document's row holds every signal (thresholds can be re-tuned from the columns
without recomputing) and a dropped document lists every rule it fails:
  part-NNNNN.parquet            kept documents: input columns + signals + language, language_score
  rejects/part-NNNNN.parquet    dropped documents: same + first_failing_rule, failing_rules
  by_language/xx/part-NNNNN.parquet   (partition_by_language) kept documents again, per language
Rule names are `family.threshold`, e.g. `gopher_quality.min_doc_words`.

C4 rewrites what it keeps (only lines passing its line rules survive, as in C4 and datatrove's
C4QualityFilter); the FineWeb rules then measure that rewritten text, as in FineWeb's pipeline.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.atomic import fsync_dir
from pipeline.config import PipelineConfig
from pipeline.documents import iter_batches
from pipeline.errors import ConfigError, InputError
from pipeline.filter import c4, fineweb, gopher_quality, gopher_repetition, language, pii, quality_model
from pipeline.filter.config import FilterConfig
from pipeline.stage import PartResult, Stage, StageStats, merge_counts, stage_parts

BATCH_DOCS = 256  # language ID is batched; bounded memory per batch


@dataclass
class Decision:
    """What the rules say about one document."""

    text: str  # the text to keep (C4-rewritten, PII-masked)
    language: str
    language_score: float
    signals: dict[str, float]
    failing: list[str]  # `family.threshold`, in rule order; empty = kept
    emails: int = 0
    ips: int = 0


def evaluate(text: str | None, lang: tuple[str, float], cfg: FilterConfig) -> Decision:
    """Every enabled rule on one document (language already detected, as it is batched)."""
    text = text or ""
    label, score = lang
    sig: dict[str, float] = {}
    failing: list[str] = []

    def apply(family: str, values: dict[str, float], reason: str | None) -> None:
        sig.update(values)
        if reason:
            failing.append(f"{family}.{reason}")

    if cfg.language.enabled:
        apply("language", {}, language.check(label, score, cfg.language))
    if cfg.gopher_repetition.enabled:
        values = gopher_repetition.signals(text, cfg.gopher_repetition)
        apply("gopher_repetition", values, gopher_repetition.check(values, cfg.gopher_repetition))
    if cfg.gopher_quality.enabled:
        values = gopher_quality.signals(text, cfg.gopher_quality, label if cfg.language.enabled else None)
        apply("gopher_quality", values, gopher_quality.check(values, cfg.gopher_quality))
    kept_text = text
    if cfg.c4.enabled:
        values, c4_text = c4.signals_and_clean_text(text, cfg.c4)
        apply("c4", values, c4.check(values, cfg.c4))
        if cfg.c4.rewrite_text:
            kept_text = c4_text
    if cfg.fineweb.enabled:
        values = fineweb.signals(kept_text, cfg.fineweb)
        apply("fineweb", values, fineweb.check(values, cfg.fineweb))
    if cfg.quality_model.enabled:  # last, on the text the corpus would keep (as FineWeb's rules are)
        values = quality_model.signals(kept_text, cfg.quality_model)
        apply("quality_model", values, quality_model.check(values, cfg.quality_model))
    emails = ips = 0
    if not failing and cfg.pii.enabled:
        kept_text, emails, ips = pii.mask(kept_text, cfg.pii)
    return Decision(kept_text, label, score, sig, failing, emails, ips)


def signal_names(cfg: FilterConfig) -> list[str]:
    """The signal columns this config produces (the rules measure the empty text too)."""
    return list(evaluate("", (language.UNDETERMINED, 0.0), cfg).signals)


# --------------------------------------------------------------------------- writing


class PartWriter:
    """Streams record batches into one Parquet file; fsyncs on close (the manifest comes later).

    `keep_empty=True` writes the file even when no row comes: a part that kept nothing is an
    ordinary outcome, and the next stage must read it as "0 documents", not as a missing part.
    """

    def __init__(self, path: Path, schema: pa.Schema, keep_empty: bool = False):
        self.path, self.schema, self.writer, self.keep_empty = path, schema, None, keep_empty

    def write(self, columns: dict[str, list]) -> None:
        if not columns or not next(iter(columns.values())):
            return
        self._open().write_table(pa.Table.from_pydict(columns, schema=self.schema))

    def _open(self) -> pq.ParquetWriter:
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(self.path, self.schema, compression="zstd")
        return self.writer

    def close(self) -> bool:
        if self.writer is None and self.keep_empty:
            self._open()
        if self.writer is None:
            return False
        self.writer.close()
        with open(self.path, "rb+") as fh:
            os.fsync(fh.fileno())
        fsync_dir(self.path.parent)
        return True


def output_schemas(input_schema: pa.Schema, cfg: FilterConfig) -> tuple[pa.Schema, pa.Schema]:
    signals = signal_names(cfg)
    ours = {*signals, "language", "language_score", "first_failing_rule", "failing_rules"}
    fields = [f for f in input_schema if f.name not in ours]  # re-filtering replaces old values
    fields += [pa.field(n, pa.float64()) for n in signals]
    fields += [pa.field("language", pa.string()), pa.field("language_score", pa.float64())]
    kept = pa.schema(fields)
    rejects = kept.append(pa.field("first_failing_rule", pa.string())).append(
        pa.field("failing_rules", pa.list_(pa.string()))
    )
    return kept, rejects


# --------------------------------------------------------------------------- the stage


@dataclass(frozen=True)
class FilterPart:
    index: int
    path: str


def check_config(cfg: FilterConfig) -> None:
    """Settings errors surface before any work starts, not inside a worker: the plan calls this,
    and so does `crawl2gpt run` before its first stage (pipeline/preflight.py)."""
    if cfg.c4.enabled and cfg.c4.badwords:
        if not cfg.c4.badwords_file:
            raise ConfigError("filter.c4.badwords is on but filter.c4.badwords_file is not set; give a word list path")
        c4.badwords_re(cfg.c4.badwords_file)
    if cfg.language.enabled:
        language.fasttext_model()
        if cfg.language.second_opinion:
            language.lingua_languages()
        language.check_languages(cfg.language)
    quality_model.check_config(cfg.quality_model)


class FilterStage(Stage):
    name = "filter"
    config_sections = ("filter",)

    def config_slice(self, cfg: PipelineConfig) -> dict[str, Any]:
        """The filter section, and the quality model's sha256 while it is on: a retrained model at
        the same path reruns the filter (a file's size and time, what config_files keys on, could
        both survive a retraining)."""
        sliced = super().config_slice(cfg)
        if cfg.filter.quality_model.enabled:
            sliced["filter.quality_model.sha256"] = quality_model.model_sha256(cfg.filter.quality_model.path)
        return sliced

    def config_files(self, cfg: PipelineConfig) -> list[str]:
        """An edited badwords list must rerun the filter, as a changed threshold does."""
        c4 = cfg.filter.c4
        return [str(Path(c4.badwords_file).expanduser())] if c4.enabled and c4.badwords and c4.badwords_file else []

    def plan(self, inputs: Sequence[str], cfg: PipelineConfig) -> list[FilterPart]:
        check_config(cfg.filter)
        paths = [p for folder in inputs for p in stage_parts(folder)]
        if not paths:
            raise InputError(f"no Parquet parts in {', '.join(map(str, inputs))}; run the extract stage first")
        return [FilterPart(i, str(p)) for i, p in enumerate(paths)]

    def run_part(self, part: FilterPart, workdir: Path, cfg: PipelineConfig) -> PartResult:
        fcfg, name = cfg.filter, f"part-{part.index:05d}.parquet"
        kept_schema, reject_schema = output_schemas(pq.read_schema(part.path), fcfg)
        kept = PartWriter(Path(workdir) / name, kept_schema, keep_empty=True)
        rejects = PartWriter(Path(workdir) / "rejects" / name, reject_schema)
        by_lang: dict[str, PartWriter] = {}
        counts: dict[str, int] = {"docs_in": 0, "docs_out": 0, "pii_emails": 0, "pii_ips": 0}

        def bump(key: str, n: int = 1) -> None:
            counts[key] = counts.get(key, 0) + n

        for batch in iter_batches(Path(part.path), batch_size=BATCH_DOCS):
            rows = batch.to_pylist()
            texts = [row.get("text") or "" for row in rows]
            langs = (
                language.detect(texts, fcfg.language)
                if fcfg.language.enabled
                else [(language.UNDETERMINED, 0.0)] * len(rows)
            )
            kept_rows, reject_rows = [], []
            for row, lang in zip(rows, langs):
                decision = evaluate(row.get("text"), lang, fcfg)
                bump("docs_in")
                bump(f"lang_{decision.language}")
                out = {
                    **row,
                    **decision.signals,
                    "language": decision.language,
                    "language_score": decision.language_score,
                }
                if decision.failing:
                    bump(f"drop_{decision.failing[0]}")
                    for rule in decision.failing:
                        bump(f"fail_{rule}")
                    reject_rows.append(
                        {**out, "first_failing_rule": decision.failing[0], "failing_rules": decision.failing}
                    )
                else:
                    bump("docs_out")
                    bump("pii_emails", decision.emails)
                    bump("pii_ips", decision.ips)
                    kept_rows.append({**out, "text": decision.text})
            kept.write(_columns(kept_rows, kept_schema))
            rejects.write(_columns(reject_rows, reject_schema))
            if fcfg.language.partition_by_language:
                for lang_code in {r["language"] for r in kept_rows}:
                    path = Path(workdir) / "by_language" / lang_code / name
                    writer = by_lang.setdefault(lang_code, PartWriter(path, kept_schema))
                    writer.write(_columns([r for r in kept_rows if r["language"] == lang_code], kept_schema))
        outputs = [w.path for w in (kept, rejects, *by_lang.values()) if w.close()]
        return PartResult(
            part=part.path,
            outputs=[str(Path(p).relative_to(workdir)) for p in outputs],
            counts=counts,
        )

    def finish(self, workdir: Path, results: list[PartResult], cfg: PipelineConfig) -> StageStats:
        total = merge_counts(results)
        drops = {k[5:]: v for k, v in total.items() if k.startswith("drop_")}
        fails = {k[5:]: v for k, v in total.items() if k.startswith("fail_")}
        families: dict[str, int] = {}
        for rule, n in drops.items():
            families[rule.split(".")[0]] = families.get(rule.split(".")[0], 0) + n
        extra: dict[str, Any] = {
            "fails": dict(sorted(fails.items())),
            "drops_by_family": families,
            "languages": dict(
                sorted(((k[5:], v) for k, v in total.items() if k.startswith("lang_")), key=lambda kv: -kv[1])
            ),
            "pii": {"emails": total.get("pii_emails", 0), "ips": total.get("pii_ips", 0)},
            "parts": len(results),
        }
        return StageStats(
            stage=self.name,
            docs_in=total.get("docs_in", 0),
            docs_out=total.get("docs_out", 0),
            drops=dict(sorted(drops.items())),
            extra=extra,
            errors=[e for r in results for e in r.errors],
        )


def _columns(rows: list[dict], schema: pa.Schema) -> dict[str, list]:
    return {name: [r.get(name) for r in rows] for name in schema.names}


FILTER = FilterStage()
