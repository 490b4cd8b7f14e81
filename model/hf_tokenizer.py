"""Our SentencePiece BPE tokenizer as a Hugging Face `tokenizers` tokenizer that gives the same ids.

SentencePiece's BPE encoder starts from characters and repeatedly merges the adjacent pair whose
concatenation is the highest-scoring piece; `tokenizers`' BPE merges the pair of lowest merge
rank. Listing every split of every piece into two pieces, pieces from the highest score down, as
the merges makes the two pick the same pair at every step (transformers' SpmConverter builds
Llama's tokenizer.json the same way). Characters no piece covers become byte pieces `<0xNN>` in
both (byte fallback), or one unknown piece per run of them without it. The text is prepared as
SentencePiece's normalizer spec says: a dummy "▁" prefix, spaces as "▁". Only the `identity`
rule (our tokenizer stage's default) converts: with a precompiled map (nmt_nfkc, ...)
`tokenizers`' Precompiled normalizer splits some Bengali vowel signs SentencePiece keeps whole.

One case can still differ in principle: when two different pairs that overlap form the same
piece at one step ("ab"+"a" and "a"+"ba" for "aba"), SentencePiece takes the leftmost and
`tokenizers` the one listed first. `check_same_ids` encodes every piece's text and a set of
awkward strings with both and refuses to export on any difference.

The model file is read with a small protobuf reader (the fields below, from SentencePiece's
sentencepiece_model.proto): sentencepiece's own `sentencepiece_model_pb2` needs the protobuf
package at the exact major version it was generated with.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import sentencepiece as spm

from model.tokenizer import SentencePieceTokenizer
from pipeline.atomic import atomic_write_text
from pipeline.errors import ExportError

# sentencepiece_model.proto: field numbers, and SentencePiece.Type values
PIECES, TRAINER_SPEC, NORMALIZER_SPEC = 1, 2, 3
PIECE_TEXT, PIECE_SCORE, PIECE_TYPE = 1, 2, 3
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
TRAINER_MODEL_TYPE, TRAINER_WS_SUFFIX, TRAINER_BYTE_FALLBACK, TRAINER_UNK_SURFACE = 3, 24, 35, 44
NORM_NAME, NORM_CHARSMAP, NORM_DUMMY_PREFIX, NORM_REMOVE_EXTRA_WS, NORM_ESCAPE_WS = 1, 2, 3, 4, 5
MODEL_TYPES = {1: "unigram", 2: "bpe", 3: "word", 4: "char"}
MODEL_TYPE_BPE = 2
SPACE = "\u2581"  # "▁", SentencePiece's visible space

# strings where a converted tokenizer is most likely to part ways with SentencePiece
AWKWARD_TEXTS = (
    "",
    " ",
    "  ",
    "a",
    " a",
    "a ",
    "a  b",
    "   indented\tline\n\nnext",
    "\n",
    "\t\t",
    SPACE,
    f"a {SPACE}{SPACE} b",
    "2024-05-31 12:00, 3.14159 and 1,000,000",
    "0123456789",
    "ünïcödé Ünïcödé straße ÆØÅ",
    "中文字符 日本語 한국어",
    "emoji 🙂👍🏽 and \U0001f9ea",
    "\u00a0non-breaking\u200bzero-width\ufeff",
    "ﬁ ligature, Ａ full width, ① circled",
    "<|endoftext|> <unk> <|pad|> <s></s>",
    "x" * 300,
    "Die Straße 12 in Berlin, den 3.10.",
)


@dataclass
class SentencePieceModel:
    """What a SentencePiece model file holds that the conversion needs."""

    pieces: list[tuple[str, float, int]]  # (piece, score, type) in id order
    model_type: int
    byte_fallback: bool
    whitespace_as_suffix: bool
    unk_surface: str  # what decoding writes for the unknown piece
    normalizer: str
    charsmap: bytes
    add_dummy_prefix: bool
    remove_extra_whitespaces: bool
    escape_whitespaces: bool


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i
        shift += 7


def _fields(buf: bytes) -> Iterable[tuple[int, int | bytes]]:
    """(field number, value) of one protobuf message: ints for varints, bytes for the rest."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i : i + 8], i + 8
        elif wire == 2:
            size, i = _varint(buf, i)
            value, i = buf[i : i + size], i + size
        elif wire == 5:
            value, i = buf[i : i + 4], i + 4
        else:
            raise ValueError(f"protobuf wire type {wire} is not used by SentencePiece models")
        yield number, value


def read_model(path: str | Path) -> SentencePieceModel:
    """Parse a tokenizer.model file (a serialized sentencepiece.ModelProto)."""
    pieces, trainer, norm = [], {}, {}
    for number, value in _fields(Path(path).read_bytes()):
        if number == PIECES:
            piece = {PIECE_TEXT: b"", PIECE_SCORE: b"\0\0\0\0", PIECE_TYPE: NORMAL, **dict(_fields(value))}
            pieces.append((piece[PIECE_TEXT].decode(), struct.unpack("<f", piece[PIECE_SCORE])[0], piece[PIECE_TYPE]))
        elif number == TRAINER_SPEC:
            trainer = dict(_fields(value))
        elif number == NORMALIZER_SPEC:
            norm = dict(_fields(value))
    return SentencePieceModel(  # defaults are the proto's declared defaults
        pieces=pieces,
        model_type=trainer.get(TRAINER_MODEL_TYPE, 1),
        byte_fallback=bool(trainer.get(TRAINER_BYTE_FALLBACK, 0)),
        whitespace_as_suffix=bool(trainer.get(TRAINER_WS_SUFFIX, 0)),
        unk_surface=trainer.get(TRAINER_UNK_SURFACE, " \u2047 ".encode()).decode(),
        normalizer=norm.get(NORM_NAME, b"").decode(),
        charsmap=norm.get(NORM_CHARSMAP, b""),
        add_dummy_prefix=bool(norm.get(NORM_DUMMY_PREFIX, 1)),
        remove_extra_whitespaces=bool(norm.get(NORM_REMOVE_EXTRA_WS, 1)),
        escape_whitespaces=bool(norm.get(NORM_ESCAPE_WS, 1)),
    )


def _refuse_unsupported(model: SentencePieceModel, path: Path) -> None:
    """Options whose behaviour `tokenizers` cannot reproduce exactly; our tokenizer stage sets none."""
    types = {t for _, _, t in model.pieces}
    problems = [
        (
            model.model_type != MODEL_TYPE_BPE,
            f"model_type={MODEL_TYPES.get(model.model_type, model.model_type)} (only bpe converts)",
        ),
        (USER_DEFINED in types, "user-defined symbols (SentencePiece matches them before merging)"),
        (UNUSED in types, "unused pieces (SentencePiece re-splits them after merging)"),
        (bool(model.charsmap), f"normalization rule {model.normalizer!r} (only 'identity' converts exactly)"),
        (model.whitespace_as_suffix, "treat_whitespace_as_suffix=true"),
        (model.remove_extra_whitespaces, "remove_extra_whitespaces=true (SentencePiece trims and collapses spaces)"),
    ]
    found = [what for bad, what in problems if bad]
    if found:
        raise ExportError(
            f"{path}: the tokenizer has {', '.join(found)}, which has no exact Hugging Face tokenizers "
            "equivalent; retrain it with the tokenizer stage's settings (pipeline/tokens/tokenizer.py)"
        )


def merges_of(pieces: list[tuple[str, float, int]]) -> list[tuple[str, str]]:
    """Every split of a normal piece into two normal pieces, highest-scoring piece first."""
    normal = {p: i for i, (p, _, t) in enumerate(pieces) if t == NORMAL}
    merges = []
    for piece in sorted(normal, key=lambda p: (-pieces[normal[p]][1], normal[p])):
        merges += [(piece[:k], piece[k:]) for k in range(1, len(piece)) if piece[:k] in normal and piece[k:] in normal]
    return merges


def build_tokenizer(path: str | Path):
    """A `tokenizers.Tokenizer` encoding and decoding as the SentencePiece model at `path` does."""
    try:
        from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers
    except ImportError:
        raise ExportError(
            "exporting the tokenizer needs the `tokenizers` package: pip install 'crawl2gpt[export]'"
        ) from None
    path = Path(path)
    model = read_model(path)
    _refuse_unsupported(model, path)
    vocab = {piece: i for i, (piece, _, _) in enumerate(model.pieces)}
    unk = next((p for p, _, t in model.pieces if t == UNKNOWN), None)
    tokenizer = Tokenizer(
        models.BPE(
            vocab=vocab, merges=merges_of(model.pieces), unk_token=unk, byte_fallback=model.byte_fallback, fuse_unk=True
        )
    )
    steps = [normalizers.Prepend(SPACE)] if model.add_dummy_prefix else []
    steps += [normalizers.Replace(" ", SPACE)] if model.escape_whitespaces else []
    if steps:
        tokenizer.normalizer = normalizers.Sequence(steps)
    # decoding: "▁" back to spaces, byte pieces back to UTF-8, and the dummy prefix's space dropped
    undo = [decoders.Replace(unk, model.unk_surface)] if unk else []  # " ⁇ ", as SentencePiece writes it
    undo += [decoders.Replace(SPACE, " ")] if model.escape_whitespaces else []
    undo += [decoders.ByteFallback(), decoders.Fuse()]
    undo += [decoders.Strip(" ", 1, 0)] if model.add_dummy_prefix else []
    tokenizer.decoder = decoders.Sequence(undo)
    # control pieces (pad, end of text) are never made from text by SentencePiece; registering them
    # lets decode(skip_special_tokens=True) drop them, and split_special_tokens keeps text as text
    tokenizer.add_special_tokens(
        [AddedToken(p, special=True, normalized=False) for p, _, t in model.pieces if t in (CONTROL, UNKNOWN)]
    )
    tokenizer.encode_special_tokens = True
    return tokenizer


def check_same_ids(sp: spm.SentencePieceProcessor, tokenizer, texts: Iterable[str], where: str) -> int:
    """Encode and decode each text with both; raise ExportError at the first difference. Returns the count."""
    texts = list(texts)
    for text, encoding in zip(texts, tokenizer.encode_batch(texts, add_special_tokens=False)):
        want, got = sp.encode(text), encoding.ids
        if got != want:
            raise ExportError(
                f"{where}: the converted tokenizer encodes {text[:60]!r} as {got[:12]}..., SentencePiece as "
                f"{want[:12]}...; not exported (please report this text)"
            )
        if tokenizer.decode(want, skip_special_tokens=False) != sp.decode(want):
            raise ExportError(
                f"{where}: the converted tokenizer decodes the ids of {text[:60]!r} differently from SentencePiece"
            )
    return len(texts)


def probe_texts(sp: spm.SentencePieceProcessor) -> list[str]:
    """Every normal piece's text (each must come back as that piece or its own split), and AWKWARD_TEXTS."""
    pieces = [
        sp.IdToPiece(i) for i in range(sp.GetPieceSize()) if not (sp.IsControl(i) or sp.IsUnknown(i) or sp.IsByte(i))
    ]
    return [p.replace(SPACE, " ") for p in pieces] + list(AWKWARD_TEXTS)


def special_tokens(sp: spm.SentencePieceProcessor) -> dict[str, str]:
    """transformers' names for our special pieces: pad, unk, and <|endoftext|> as eos."""
    names = {"pad_token": sp.pad_id(), "unk_token": sp.unk_id(), "eos_token": sp.eos_id(), "bos_token": sp.bos_id()}
    return {name: sp.IdToPiece(i) for name, i in names.items() if i >= 0}


def _save_readable_by_older_tokenizers(tokenizer, path: Path) -> None:
    """tokenizer.json with merges as "left right" strings, the form every `tokenizers` release reads
    (0.19, what transformers 4.40 uses, fails on the [left, right] pairs that 0.20+ writes). Pieces
    hold no plain space (SentencePiece writes it as "▁"); if one did, the pair form is kept."""
    body = json.loads(tokenizer.to_str())
    merges = body["model"]["merges"]
    if all(" " not in left + right for left, right in merges):
        body["model"]["merges"] = [f"{left} {right}" for left, right in merges]
    atomic_write_text(path, json.dumps(body, ensure_ascii=False, indent=1))


def write_hf_tokenizer(ours: SentencePieceTokenizer, folder: str | Path, max_length: int) -> dict:
    """tokenizer.json + tokenizer_config.json + special_tokens_map.json in `folder`, checked against
    SentencePiece; `AutoTokenizer.from_pretrained(folder)` loads them offline. Returns what was checked."""
    sp, folder = ours.sp, Path(folder)
    tokenizer = build_tokenizer(ours.path)
    checked = check_same_ids(sp, tokenizer, probe_texts(sp), str(ours.path))
    _save_readable_by_older_tokenizers(tokenizer, folder / "tokenizer.json")
    specials = special_tokens(sp)
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",  # tokenizer.json as it is: no Llama/GPT-2 defaults added
        **specials,
        "model_max_length": max_length,
        "clean_up_tokenization_spaces": False,  # decode gives SentencePiece's text, byte for byte
        "split_special_tokens": True,  # "<|endoftext|>" written in text stays text, as in training
        "add_bos_token": False,
        "add_eos_token": False,
    }
    atomic_write_text(folder / "tokenizer_config.json", json.dumps(config, indent=1, ensure_ascii=False))
    atomic_write_text(folder / "special_tokens_map.json", json.dumps(specials, indent=1, ensure_ascii=False))
    return {
        "vocab_size": sp.GetPieceSize(),
        "texts_checked": checked,
        "special_tokens": specials,
        "pad_id": sp.pad_id(),
        "eos_id": sp.eos_id(),
    }
