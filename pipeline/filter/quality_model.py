"""A model-based quality filter: a fastText classifier of "like the positive documents" vs "like the
negative ones" (DCLM's fastText filter, Li et al. 2024; FineWeb-Edu's classifier idea, Penedo et
al. 2024), trained by `crawl2gpt quality train` (pipeline/filter/quality_train.py).

Its signal `quality_model_score` is the classifier's probability of the positive label; a document
scored below `filter.quality_model.threshold` is dropped as `quality_model.below_threshold`.

A model file is checked before fastText opens it: fastText's loader trusts the file, and a
truncated one crashes the process (SIGFPE), exhausts memory or loads garbage weights silently. So
`check_model_file` reads the header (magic, version, supervised, dimension, buckets), finds where
the two weight matrices must begin from the file's size, and checks their stored shapes there:
a file cut anywhere, or one of another kind (lid.176, a word-vector model, a quantized .ftz, not
fastText at all), fails with one line before any document is read.
"""

from __future__ import annotations

import re
import struct
from functools import lru_cache
from pathlib import Path

from pipeline.errors import ConfigError
from pipeline.filter.config import QualityModelConfig
from pipeline.stage import sha256_file

NAME = "quality_model"
SIGNAL = "quality_model_score"
POSITIVE, NEGATIVE = "__label__positive", "__label__negative"
LABELS = (NEGATIVE, POSITIVE)
MAX_CHARS = 20_000  # the opening of a long page decides its score (bounds the cost per document)
TOKEN_RE = re.compile(r"\w+|[^\w\s]")  # words and single punctuation marks: "end." -> "end ."

FASTTEXT_MAGIC, FASTTEXT_VERSION = 793712314, 12  # fastText's FASTTEXT_FILEFORMAT_MAGIC_INT32, FASTTEXT_VERSION
SUPERVISED = 3  # fastText's model_name::sup
ARGS_FORMAT = "<12id"  # Args::save: dim ws epoch minCount neg wordNgrams loss model bucket minn maxn lrUpdateRate, t
HEADER = struct.calcsize("<2i") + struct.calcsize(ARGS_FORMAT)
DICT_COUNTS = "<3i2q"  # Dictionary::save: size, nwords, nlabels, ntokens, pruneidx_size
MATRIX_HEADER = 16  # DenseMatrix::save: int64 rows, int64 columns, then rows * columns float32


def fasttext_line(text: str) -> str:
    """The one line fastText reads for a document, in training and in scoring alike: lower case,
    punctuation split from words, whitespace (newlines too) collapsed."""
    return " ".join(TOKEN_RE.findall(text[:MAX_CHARS].lower()))


def check_model_file(path: str | Path) -> None:
    """Raise ConfigError (the file, what is wrong, the fix) unless `path` is a whole supervised
    fastText model, not quantized; its labels are checked once it is loaded (`load`)."""
    path = Path(path).expanduser()
    where = f"filter.quality_model.path {str(path)!r}"
    fix = "point it at the .bin `crawl2gpt quality train --out` wrote"
    if not path.exists():
        raise ConfigError(f"{where} does not exist; {fix}")
    try:
        with open(path, "rb") as fh:
            head = fh.read(HEADER + struct.calcsize(DICT_COUNTS))
            size = path.stat().st_size
            problem = _layout_problem(fh, head, size)
    except OSError as err:
        raise ConfigError(f"{where} cannot be read ({err.strerror or err}); {fix}") from None
    if problem:
        raise ConfigError(f"{where} is not a quality model: {problem}; {fix}")


def _layout_problem(fh, head: bytes, size: int) -> str | None:
    if len(head) < HEADER + struct.calcsize(DICT_COUNTS):
        return f"only {size} bytes, too short for a fastText model"
    magic, version = struct.unpack_from("<2i", head)
    if magic != FASTTEXT_MAGIC:
        return "not a fastText model file"
    if version != FASTTEXT_VERSION:
        return f"fastText format version {version}, not {FASTTEXT_VERSION}"
    args = struct.unpack_from(ARGS_FORMAT, head, 8)
    dim, model, bucket = args[0], args[7], args[8]
    if model != SUPERVISED:
        return "a fastText word-vector model, not a classifier"
    nwords, nlabels = struct.unpack_from(DICT_COUNTS, head, HEADER)[1:3]
    if nlabels != len(LABELS):
        return f"a classifier of {nlabels} labels, not the 2 of a quality model"
    # From the end: qout flag, output matrix (labels x dim); before it: quant flag, input matrix.
    output_at = size - (MATRIX_HEADER + nlabels * dim * 4)
    input_rows = nwords + bucket
    input_at = output_at - 1 - (MATRIX_HEADER + input_rows * dim * 4)
    if input_at < HEADER or _shape_at(fh, output_at) != (nlabels, dim) or _shape_at(fh, input_at) != (input_rows, dim):
        return "truncated or damaged (or a quantized .ftz: only full .bin models load)"
    if _flag_at(fh, input_at - 1) != 0 or _flag_at(fh, output_at - 1) != 0:
        return "a quantized model (only full .bin models load)"
    return None


def _shape_at(fh, offset: int) -> tuple[int, int] | None:
    if offset < 0:
        return None
    fh.seek(offset)
    raw = fh.read(MATRIX_HEADER)
    return struct.unpack("<2q", raw) if len(raw) == MATRIX_HEADER else None


def _flag_at(fh, offset: int) -> int | None:
    fh.seek(offset)
    raw = fh.read(1)
    return raw[0] if raw else None


def model_sha256(path: str | Path) -> str:
    """The model file's sha256: part of the filter stage's rerun key (a retrained model reruns it)."""
    try:
        return sha256_file(Path(path).expanduser())
    except OSError as err:
        raise ConfigError(
            f"filter.quality_model.path {str(path)!r} cannot be read ({err.strerror or err}); "
            "point it at the .bin `crawl2gpt quality train --out` wrote"
        ) from None


def load(path: str | Path):
    """The checked, loaded model (one per file version and process)."""
    path = Path(path).expanduser()
    try:
        stat = path.stat()
    except OSError:
        check_model_file(path)  # raises the one-line error that says what is wrong
        raise
    return _load(str(path), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=2)
def _load(path: str, size: int, mtime_ns: int):
    """Checked and loaded once per file version (size and time) and process."""
    import fasttext

    check_model_file(path)
    model = fasttext.load_model(path)
    labels = tuple(sorted(model.get_labels()))
    if labels != LABELS:
        raise ConfigError(
            f"filter.quality_model.path {path!r} is a classifier of {', '.join(labels)}, not of "
            f"{' and '.join(LABELS)}; point it at the .bin `crawl2gpt quality train --out` wrote"
        )
    return model


def check_config(cfg: QualityModelConfig) -> None:
    """Before any document is read (the filter stage's plan and pipeline/preflight.py)."""
    if cfg.enabled:
        load(cfg.path)


def score(model, text: str) -> float:
    """The probability of the positive label, rounded so reruns write byte-identical columns."""
    labels, probs = model.predict(fasttext_line(text), k=len(LABELS))
    by_label = dict(zip(labels, probs))
    return round(min(float(by_label.get(POSITIVE, 0.0)), 1.0), 6)  # fastText's softmax can overshoot 1


def signals(text: str, cfg: QualityModelConfig) -> dict[str, float]:
    return {SIGNAL: score(load(cfg.path), text)}


def check(sig: dict[str, float], cfg: QualityModelConfig) -> str | None:
    return "below_threshold" if sig[SIGNAL] < cfg.threshold else None
