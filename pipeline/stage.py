"""The stage contract: how every stage writes, records and skips its output.

A stage subclasses `Stage` and writes three methods:
  plan(inputs, cfg)              -> parts: small picklable descriptions of independent work
  run_part(part, workdir, cfg)   -> PartResult: writes files for one part into `workdir`
  finish(workdir, results, cfg)  -> StageStats: cross-part work (dedup index, shard manifest)
and may override the optional hooks `Stage` documents with their defaults (config_slice,
config_files, check_inputs, finish_maps, report_files).

`run_stage` drives them: it writes everything into a temporary folder next to the output,
writes `_stage.json` last, then renames the folder into place. A later stage only reads
folders that have a manifest (`stage_parts`), so an interrupted stage is never read.
A stage whose manifest matches its inputs' fingerprints, its config slice and the code
version (of the modules the stage runs, pipeline/code_version.py) is skipped; `force=True` reruns it.

`map_parts` decides where parts run: a local process pool by default, Prefect tasks when
called from a flow (flows/ passes its own). The work itself is identical either way.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from pipeline.atomic import atomic_write_text, clean_stale, fsync_dir, replace_dir, temp_path
from pipeline.code_version import code_version
from pipeline.config import PipelineConfig
from pipeline.disk_full import as_disk_full, explaining_full_disks
from pipeline.errors import InputError, StageIncompleteError

MANIFEST = "_stage.json"


@dataclass
class PartResult:
    """What one part of a stage produced (returned from a worker process)."""

    part: str
    outputs: list[str] = field(default_factory=list)  # files written, relative to the stage folder
    counts: dict[str, int] = field(default_factory=dict)  # docs_in, docs_out, skip/drop reasons
    errors: list[str] = field(default_factory=list)  # counted problems, with file names
    seconds: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)  # stage-specific facts finish() needs


@dataclass
class StageStats:
    """Counts in and out, drops by reason, stage-specific figures; also the manifest body."""

    stage: str
    docs_in: int = 0
    docs_out: int = 0
    drops: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    skipped: bool = False
    output: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StageStats:
        names = cls.__dataclass_fields__.keys()
        return cls(**{k: v for k, v in data.items() if k in names})

    def summary(self) -> str:
        head = f"{self.stage:<9} {self.docs_in:>7} in -> {self.docs_out:>7} out"
        if self.skipped:
            return head + "  (skipped: up to date)"
        drops = ", ".join(f"{k} {v}" for k, v in sorted(self.drops.items(), key=lambda kv: -kv[1]) if v)
        tail = f"  {self.seconds:6.1f}s"
        return head + tail + (f"  dropped: {drops}" if drops else "")


class Stage(ABC):
    """One stage of the DAG (datatrove's PipelineStep idea): subclass it, set `name` and
    `config_sections`, write plan, run_part and finish, and override a hook below only where its
    default does not fit. `run_stage` drives every stage through these methods alone.

    `cfg` is the run's config: the data sections of PipelineConfig, plus the model's for train.
    """

    name: str  # the run folder's sub-folder and the manifest's `stage`
    # The config sections the output depends on, e.g. ("filter",): only those are fingerprinted,
    # so a new train setting never reruns extract.
    config_sections: tuple[str, ...]
    # Whether finish also gets `map_parts`: a stage whose cross-part work is itself split into
    # tasks (dedup's bucket ranges) runs those map phases wherever the parts ran.
    finish_maps: bool = False
    # Name patterns of files written for people (report.html, plots): listed in the manifest but
    # left out of the digest later stages' keys take, so a change to the report alone never
    # reruns training.
    report_files: tuple[str, ...] = ()

    def config_slice(self, cfg: PipelineConfig) -> dict[str, Any]:
        """The settings the output depends on (what the manifest fingerprints): by default every
        field of `config_sections`; a stage leaves out settings that do not change its output."""
        return {section: getattr(cfg, section).model_dump(mode="json") for section in self.config_sections}

    def config_files(self, cfg: PipelineConfig) -> list[str]:
        """Files a setting points at (a word list, a tokenizer to reuse), fingerprinted like
        inputs so that editing one reruns the stage. None by default."""
        return []

    def check_inputs(self, inputs: Sequence[str], cfg: PipelineConfig) -> None:
        """Raise an error naming the folder and the fix when `inputs` cannot be used: what
        `crawl2gpt stage` checks before Prefect starts; a stage's plan calls it too. Nothing
        to check by default."""
        return None

    @abstractmethod
    def plan(self, inputs: Sequence[str], cfg: PipelineConfig) -> list[Any]:
        """The parts, before anything is written. Checks first what it can: the settings the stage
        shares with the checks `crawl2gpt run` makes before its first stage (pipeline/preflight.py),
        then its inputs."""

    @abstractmethod
    def run_part(self, part: Any, workdir: Path, cfg: PipelineConfig) -> PartResult:
        """Write the files of one part into `workdir` (runs in a worker process or a task)."""

    @abstractmethod
    def finish(self, workdir: Path, results: list[PartResult], cfg: PipelineConfig) -> StageStats:
        """Cross-part work once every part is done; with `finish_maps`, also gets `map_parts`."""


MapParts = Callable[[Callable[[Any], PartResult], list[Any]], list[PartResult]]


# --------------------------------------------------------------------------- fingerprints


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def fingerprint_input(spec: str) -> dict[str, Any]:
    """How an input is identified for skip decisions.

    A stage folder is identified by the digest of the data files its manifest lists (content,
    not time; its report files are for people and left out); a plain local file by size and
    modification time (hashing terabytes of WARC on every run would cost more than it saves); a
    URL by itself (Common Crawl files are immutable).
    """
    if "://" in spec:
        return {"input": spec, "kind": "url"}
    path = Path(spec)
    if path.is_dir() and (path / MANIFEST).is_file():
        return {"input": str(path.resolve()), "kind": "stage", "digest": data_digest(read_manifest(path))}
    if path.is_file():
        st = path.stat()
        return {"input": str(path.resolve()), "kind": "file", "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return {"input": str(path.resolve()), "kind": "folder", "files": [fingerprint_input(str(p)) for p in files]}
    return {"input": spec, "kind": "pattern"}


def stage_config(stage: Stage, cfg: PipelineConfig) -> dict[str, Any]:
    """The part of the config a stage's output depends on (what its manifest fingerprints)."""
    return stage.config_slice(cfg)


def stage_key(stage: Stage, inputs: Sequence[str], cfg: PipelineConfig) -> dict[str, Any]:
    """What a stage's output depends on: its inputs, its config sections and the code it runs."""
    return {
        "stage": stage.name,
        "inputs": [fingerprint_input(s) for s in inputs],
        "config": stage_config(stage, cfg),
        "code_version": code_version(type(stage).__module__),
    }


# --------------------------------------------------------------------------- manifests


def read_manifest(folder: Path) -> dict[str, Any]:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise StageIncompleteError(
            f"{folder} has no {MANIFEST}: the stage that writes it did not finish. "
            f"Rerun that stage (crawl2gpt stage NAME --output {folder})."
        )
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:  # a damaged or foreign file
        raise StageIncompleteError(f"{path} is not valid JSON ({err}); rerun the stage with --force") from None


def list_outputs(folder: Path) -> dict[str, dict[str, Any]]:
    """Every file of a finished stage folder with its size and checksum (the manifest's `files`)."""
    files = {}
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.name != MANIFEST):
        rel = path.relative_to(folder).as_posix()
        files[rel] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
    return files


def manifest_matches(folder: Path, key: dict[str, Any]) -> bool:
    try:
        manifest = read_manifest(folder)
    except StageIncompleteError:
        return False
    return manifest.get("key_digest") == _digest(key)


def is_report_file(rel: str, report_files: Sequence[str]) -> bool:
    """Whether a file of a stage folder is a report for people (matched on its first path part)."""
    return any(fnmatch.fnmatch(rel.split("/")[0], pattern) for pattern in report_files)


def data_digest(manifest: dict[str, Any]) -> str:
    """What a later stage's key takes from this stage folder: the digest of its data files."""
    return manifest.get("data_digest", manifest["output_digest"])


def write_manifest(
    folder: Path, key: dict[str, Any], stats: StageStats, started: float, report_files: Sequence[str] = ()
) -> dict[str, Any]:
    files = list_outputs(folder)
    data_files = {rel: entry for rel, entry in files.items() if not is_report_file(rel, report_files)}
    manifest = {
        "stage": stats.stage,
        "key_digest": _digest(key),
        "inputs": key["inputs"],
        "config": key["config"],
        "code_version": key["code_version"],
        "files": files,
        "output_digest": _digest(files),
        "data_digest": _digest(data_files),
        "stats": stats.to_dict(),
        "started_at": started,
        "finished_at": time.time(),
    }
    atomic_write_text(Path(folder) / MANIFEST, json.dumps(manifest, indent=2, default=str))
    return manifest


# --------------------------------------------------------------------------- reading stage folders


def stage_parts(folder: str | Path, pattern: str = "*.parquet") -> list[Path]:
    """The data files of a finished stage folder (top level only; `rejects/` is not data).

    Refuses folders without a manifest, and file names in a manifest that would point
    outside the folder (a manifest is data, not instructions).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"input folder {folder} does not exist")
    manifest = read_manifest(folder)
    root = folder.resolve()
    parts = []
    for rel in manifest.get("files", {}):
        path = (folder / rel).resolve()
        if root not in path.parents:
            raise InputError(f"{folder / MANIFEST} lists {rel!r}, which is outside the folder; refusing it")
        if "/" not in rel and path.match(pattern):
            parts.append(path)
    return sorted(parts)


# --------------------------------------------------------------------------- running


def process_map(workers: int) -> MapParts:
    """Run parts in a process pool (spawned, so it is safe beside threads such as Prefect's)."""

    def run(fn: Callable[[Any], PartResult], parts: list[Any]) -> list[PartResult]:
        if workers <= 1 or len(parts) <= 1:
            return [fn(p) for p in parts]
        import multiprocessing as mp

        with ProcessPoolExecutor(max_workers=min(workers, len(parts)), mp_context=mp.get_context("spawn")) as pool:
            return list(pool.map(fn, parts))

    return run


def default_workers(cfg: PipelineConfig) -> int:
    return cfg.workers or os.cpu_count() or 1


def run_stage(
    stage: Stage,
    inputs: Sequence[str],
    output: str | Path,
    cfg: PipelineConfig,
    *,
    force: bool = False,
    map_parts: MapParts | None = None,
    atomic: bool = True,
) -> StageStats:
    """Run one stage from `inputs` into `output` under the stage contract (module docstring).

    `atomic=False` is for the train stage, which writes checkpoints into the real folder so a
    crashed run can resume from them; its manifest is still removed first and written last.
    """
    output = Path(output)
    key = stage_key(stage, [*inputs, *stage.config_files(cfg)], cfg)
    if not force and manifest_matches(output, key):
        stats = StageStats.from_dict(read_manifest(output)["stats"])
        stats.skipped, stats.output = True, str(output)
        return stats

    started = time.time()
    parts = stage.plan(
        list(inputs), cfg
    )  # before any write: a stage that refuses its settings or inputs leaves no folder
    clean_stale(output)
    if atomic:
        workdir = temp_path(output)
    else:
        workdir = output
        (output / MANIFEST).unlink(missing_ok=True)

    try:
        workdir.mkdir(parents=True, exist_ok=True)
        run_one = partial(stage.run_part, workdir=workdir, cfg=cfg)
        mapper = explaining_full_disks(map_parts or process_map(default_workers(cfg)), stage.name, output, atomic)
        results = mapper(run_one, parts)
        more = {"map_parts": mapper} if stage.finish_maps else {}
        stats = stage.finish(workdir, results, cfg, **more)
        stats.seconds = round(time.time() - started, 3)
        stats.output = str(output)
        write_manifest(workdir, key, stats, started, stage.report_files)
        fsync_dir(workdir)
    except Exception as err:
        # A stage that fails cleans up after itself; a killed one leaves its temp folder for
        # clean_stale on the next run. Either way nothing without a manifest is ever read.
        if atomic:
            shutil.rmtree(workdir, ignore_errors=True)
        if (full := as_disk_full(err, stage.name, output, atomic)) is not None:  # finish's own writes
            raise full from err
        raise
    if atomic:
        replace_dir(workdir, output)
    return stats


def merge_counts(results: Iterable[PartResult]) -> dict[str, int]:
    total: dict[str, int] = {}
    for result in results:
        for name, count in result.counts.items():
            total[name] = total.get(name, 0) + count
    return total
