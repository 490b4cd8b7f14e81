"""Stage `tokenizer`: SentencePiece BPE trained on a deterministic sample of deduplicated text.

Special tokens have fixed ids in every model this stage writes (SentencePiece reserves the
first ids for its meta pieces, so we give those slots our names instead of adding more):

  id 0  `<|pad|>`        padding            (SentencePiece pad, control symbol)
  id 1  `<unk>`          unknown            (never produced: byte fallback covers every byte)
  id 2  `<|endoftext|>`  document separator (SentencePiece eos, control symbol)
  ids 3..258  `<0x00>`..`<0xFF>`  byte-fallback pieces; BOS is disabled

Control symbols are never produced from text, so a page that contains the literal string
"<|endoftext|>" cannot forge a document boundary (GPT-2's tiktoken refuses it for the same
reason). Normalization is `identity`: text arrives NFC-normalized from extract, and identity
keeps decode(encode(text)) == text byte for byte.

The sample is the documents with the smallest doc-id hashes up to `sample_bytes`: the same
corpus gives the same sample whatever the part order, and a larger budget is a superset.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import sentencepiece as spm

from pipeline.atomic import atomic_write_bytes, atomic_write_text
from pipeline.config import PipelineConfig
from pipeline.documents import iter_batches
from pipeline.empty_output import empty_cause
from pipeline.errors import ConfigError, InputError, TokenizerError
from pipeline.hashing import stable_fractions
from pipeline.stage import PartResult, Stage, StageStats, read_manifest, sha256_file, stage_parts
from pipeline.tokens.config import TokenizerConfig

PAD, UNK, EOT = "<|pad|>", "<unk>", "<|endoftext|>"
PAD_ID, UNK_ID, EOT_ID = 0, 1, 2
MODEL, VOCAB, INFO = "tokenizer.model", "tokenizer.vocab", "tokenizer.json"
# SentencePiece skips longer lines silently; paragraphs of web text rarely exceed this.
MAX_SENTENCE_BYTES = 16384


# --------------------------------------------------------------------------- loading


def load(path: str | Path) -> spm.SentencePieceProcessor:
    """Load a tokenizer.model (or the one in a tokenizer/shards folder) and check its special ids."""
    path = Path(path)
    if path.is_dir():
        path = path / MODEL
    if not path.is_file():
        raise TokenizerError(f"tokenizer model {path} not found; run the tokenizer stage or fix tokenizer.reuse")
    sp = spm.SentencePieceProcessor()
    try:
        sp.Load(str(path))
    except (OSError, RuntimeError) as err:
        raise TokenizerError(
            f"{path} is not a SentencePiece model ({err}); retrain it (crawl2gpt stage tokenizer --force)"
        ) from None
    for piece, want in ((PAD, PAD_ID), (EOT, EOT_ID)):
        if sp.PieceToId(piece) != want or not sp.IsControl(want):
            raise TokenizerError(
                f"{path} does not have {piece} as control id {want}; it was not trained by crawl2gpt. "
                "Retrain it (unset tokenizer.reuse) so shards and the model agree on special ids."
            )
    return sp


def reused_model(tc: TokenizerConfig) -> Path | None:
    """tokenizer.reuse as the model file it names (a folder: its tokenizer.model), refused unless
    it is a tokenizer crawl2gpt trained; None when the stage trains one. The plan calls this, and
    so does `crawl2gpt run` before its first stage (pipeline/preflight.py)."""
    if not tc.reuse:
        return None
    path = Path(tc.reuse).expanduser().resolve()
    if path.is_dir():
        path = path / MODEL
    if not path.is_file():
        raise ConfigError(
            f"tokenizer.reuse {tc.reuse!r} is not a tokenizer.model (or a folder holding one); fix or unset it"
        )
    load(path)  # a foreign or damaged model: TokenizerError naming it
    return path


def check_config(cfg: PipelineConfig) -> None:
    reused_model(cfg.tokenizer)


def special_ids(sp: spm.SentencePieceProcessor) -> dict[str, int]:
    return {"pad_id": sp.pad_id(), "unk_id": sp.unk_id(), "eot_id": sp.eos_id(), "bos_id": sp.bos_id()}


def byte_id_range(sp: spm.SentencePieceProcessor) -> tuple[int, int]:
    """[first, last] id of the 256 byte-fallback pieces, or (-1, -1) without byte fallback."""
    first = sp.PieceToId("<0x00>")
    if first == sp.unk_id() or not sp.IsByte(first):
        return (-1, -1)
    return (first, first + 255)


# --------------------------------------------------------------------------- sampling


def _dedup_folders(inputs: Sequence[str]) -> list[Path]:
    if not inputs:
        raise InputError("the tokenizer stage needs a finished dedup folder as input")
    folders = []
    for spec in inputs:
        stage = read_manifest(Path(spec)).get("stage")
        if stage != "dedup":
            raise InputError(f"{spec} is a {stage!r} stage folder; the tokenizer trains on a finished dedup folder")
        folders.append(Path(spec))
    return folders


def sample_cutoff(parts: Sequence[Path], sample_bytes: int) -> tuple[float, int, int]:
    """Hash cutoff so that documents hashing below it hold about `sample_bytes` of text.

    One streaming pass reading doc ids and text lengths; memory is 16 bytes per document.
    Returns (cutoff, documents in corpus, bytes in corpus).
    """
    hashes, sizes = [], []
    for part in parts:
        for batch in iter_batches(part, columns=["doc_id", "text"]):
            hashes.append(stable_fractions(batch.column("doc_id").to_pylist()))
            sizes.append(
                pc.binary_length(pc.cast(batch.column("text"), "binary")).fill_null(0).to_numpy(zero_copy_only=False)
            )
    if not hashes:
        return 0.0, 0, 0
    h, n = np.concatenate(hashes), np.concatenate(sizes).astype(np.int64)
    total = int(n.sum())
    if total <= sample_bytes:
        return 1.0, len(h), total
    order = np.argsort(h, kind="stable")
    last = int(np.searchsorted(np.cumsum(n[order]), sample_bytes))
    return float(np.nextafter(h[order[min(last, len(h) - 1)]], 2.0)), len(h), total


def sample_lines(parts: Sequence[Path], cutoff: float, stats: dict[str, int]) -> Iterator[str]:
    """Paragraph lines of the sampled documents (SentencePiece trains on lines, not documents)."""
    for part in parts:
        for batch in iter_batches(part, columns=["doc_id", "text"]):
            keep = stable_fractions(batch.column("doc_id").to_pylist()) < cutoff
            for text, take in zip(batch.column("text").to_pylist(), keep):
                if not take or not text:
                    continue
                stats["docs"] += 1
                stats["bytes"] += len(text.encode())
                for line in text.split("\n"):
                    if line.strip():
                        stats["lines"] += 1
                        yield line


# --------------------------------------------------------------------------- training


def train(parts: Sequence[Path], out_dir: Path, cfg: PipelineConfig) -> dict[str, Any]:
    """Train SentencePiece BPE on the sample of `parts`; writes tokenizer.model/.vocab into out_dir."""
    tc = cfg.tokenizer
    cutoff, corpus_docs, corpus_bytes = sample_cutoff(parts, tc.sample_bytes)
    if corpus_bytes == 0:
        raise TokenizerError(
            f"no text to train the tokenizer on: the dedup parts ({len(parts)} files) hold no documents. "
            "Check the filter/dedup stage reports (filters may drop everything, e.g. filter.language.languages)."
        )
    stats = {"docs": 0, "bytes": 0, "lines": 0}
    model = io.BytesIO()
    spm.set_random_generator_seed(tc.seed)  # input_sentence_size subsamples lines with this seed
    try:
        spm.SentencePieceTrainer.Train(
            sentence_iterator=sample_lines(parts, cutoff, stats),
            model_writer=model,  # in memory: a model_prefix path would be stored in the model bytes
            model_type="bpe",
            vocab_size=tc.vocab_size,
            character_coverage=tc.character_coverage,
            byte_fallback=tc.byte_fallback,
            normalization_rule_name=tc.normalization_rule_name,
            input_sentence_size=tc.input_sentence_size,
            shuffle_input_sentence=True,
            max_sentence_length=MAX_SENTENCE_BYTES,
            num_threads=tc.threads or os.cpu_count() or 1,
            pad_id=PAD_ID,
            pad_piece=PAD,
            unk_id=UNK_ID,
            unk_piece=UNK,
            eos_id=EOT_ID,
            eos_piece=EOT,
            bos_id=-1,
            split_digits=tc.split_digits,
            allow_whitespace_only_pieces=True,  # keep runs of spaces (indentation) as pieces
            remove_extra_whitespaces=False,  # identity: whitespace is data
            minloglevel=2,
        )
    except RuntimeError as err:
        raise TokenizerError(_explain(str(err), tc.vocab_size, stats)) from None
    atomic_write_bytes(out_dir / MODEL, model.getvalue())
    return {
        "trained": True,
        "sample": stats,
        "corpus_docs": corpus_docs,
        "corpus_bytes": corpus_bytes,
        "cutoff": cutoff,
    }


def _explain(message: str, vocab_size: int, stats: dict[str, int]) -> str:
    said = f"SentencePiece says {message.strip()!r}"
    if "Vocabulary size too high" in message:
        most = re.search(r"<= (\d+)", message)
        return (
            f"tokenizer.vocab_size={vocab_size} is larger than the sample supports ({stats['bytes']} bytes, "
            f"{stats['docs']} documents): lower tokenizer.vocab_size{' to <= ' + most.group(1) if most else ''} "
            "or give the stage more text (tokenizer.sample_bytes, more WARC files)."
            + ("" if most else f" {said}")  # the limit parsed, SentencePiece's own words add nothing
        )
    if "smaller than required_chars" in message:
        return (
            f"tokenizer.vocab_size={vocab_size} cannot hold every character that tokenizer.character_coverage "
            f"asks for; {said}. Raise tokenizer.vocab_size or lower tokenizer.character_coverage "
            "(rarer characters then fall back to bytes)."
        )
    if stats["lines"] == 0:
        return f"the sampled documents hold no non-blank lines; check the dedup stage output ({said})"
    return f"SentencePiece training failed: {said}"


def write_vocab(sp: spm.SentencePieceProcessor, path: Path) -> None:
    """The human-readable `piece<TAB>score` list SentencePiece writes next to a model."""
    lines = [f"{sp.IdToPiece(i)}\t{sp.GetScore(i):g}" for i in range(sp.GetPieceSize())]
    atomic_write_text(path, "\n".join(lines) + "\n")


def describe(model_path: Path, extra: dict[str, Any]) -> dict[str, Any]:
    """The tokenizer.json body: ids other code needs without loading SentencePiece."""
    sp = load(model_path)
    first, last = byte_id_range(sp)
    return {
        "format": "crawl2gpt-tokenizer/1",
        "model": MODEL,
        "model_type": "bpe",
        "sha256": sha256_file(model_path),
        "vocab_size": sp.GetPieceSize(),
        "special_tokens": {PAD: PAD_ID, UNK: UNK_ID, EOT: EOT_ID},
        **special_ids(sp),
        "byte_fallback_ids": [first, last],
        **extra,
    }


# --------------------------------------------------------------------------- the stage


class TokenizerStage(Stage):
    name = "tokenizer"
    config_sections = ("tokenizer",)

    def config_files(self, cfg: PipelineConfig) -> list[str]:
        """A reused model is fingerprinted by its bytes' size and time, not only its path."""
        return [str(Path(cfg.tokenizer.reuse).expanduser())] if cfg.tokenizer.reuse else []

    def check_inputs(self, inputs: Sequence[str], cfg: PipelineConfig) -> None:
        """`crawl2gpt stage tokenizer` checks its inputs before Prefect starts; the plan does again."""
        if not cfg.tokenizer.reuse:
            _dedup_folders(inputs)

    def plan(self, inputs: Sequence[str], cfg: PipelineConfig) -> list[dict[str, Any]]:
        reuse = reused_model(cfg.tokenizer)
        if reuse is not None:
            return [{"reuse": str(reuse)}]
        folders = _dedup_folders(inputs)
        if sum(read_manifest(f).get("stats", {}).get("docs_out", 0) for f in folders) == 0:
            # Empty upstream outputs are valid; training on nothing is not. Name where the
            # documents were lost rather than this stage's symptom.
            what, hint = empty_cause(folders) or (f"{', '.join(map(str, folders))} hold 0 documents", "give more input")
            raise TokenizerError(f"{what}: the tokenizer has no text to train on; {hint}")
        parts = [str(p) for folder in folders for p in stage_parts(folder)]
        return [{"parts": parts}]

    def run_part(self, part: dict[str, Any], workdir: Path, cfg: PipelineConfig) -> PartResult:
        started = time.time()
        workdir = Path(workdir)
        if "reuse" in part:
            shutil.copyfile(part["reuse"], workdir / MODEL)
            meta: dict[str, Any] = {"trained": False, "reused_from": part["reuse"]}
        else:
            meta = train([Path(p) for p in part["parts"]], workdir, cfg)
        sp = load(workdir / MODEL)
        write_vocab(sp, workdir / VOCAB)
        info = describe(workdir / MODEL, meta)
        atomic_write_text(workdir / INFO, json.dumps(info, indent=2))
        docs = meta.get("sample", {}).get("docs", 0)
        return PartResult(
            part="tokenizer",
            outputs=[MODEL, VOCAB, INFO],
            counts={"docs_in": meta.get("corpus_docs", 0), "docs_out": docs},
            seconds=time.time() - started,
            meta=info,
        )

    def finish(self, workdir: Path, results: list[PartResult], cfg: PipelineConfig) -> StageStats:
        info = results[0].meta
        extra = {k: info[k] for k in ("vocab_size", "sha256", "pad_id", "eot_id", "trained")}
        extra.update({f"sample_{k}": v for k, v in info.get("sample", {}).items()})
        extra["train_seconds"] = round(results[0].seconds, 3)
        if "reused_from" in info:
            extra["reused_from"] = info["reused_from"]
        return StageStats(
            stage=self.name,
            docs_in=results[0].counts.get("docs_in", 0),
            docs_out=results[0].counts.get("docs_out", 0),
            extra=extra,
        )


TOKENIZER = TokenizerStage()
