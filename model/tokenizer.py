"""The tokenizer every model command uses: train's samples, generate, fine-tuning (sft and
classify), the checks before step 1 (model/preflight.py) and export.

Ours is the SentencePiece model the tokenizer stage trains. It is opened through that stage's
`load` (pipeline/tokens/tokenizer.py, which the shards stage uses too), so every reader refuses a
model whose <|pad|> and <|endoftext|> are not the control ids 0 and 2 the shards were written
with. Where the file's sha256 was recorded (a shards manifest, a checkpoint's state.json), its
bytes must match. The one other tokenizer is GPT-2's byte-level BPE, for fine-tuning GPT-2 weights.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from pipeline.errors import CheckpointError, InputError, TokenizerError
from pipeline.stage import sha256_file
from pipeline.tokens.tokenizer import EOT_ID, MODEL, PAD_ID
from pipeline.tokens.tokenizer import load as load_sentencepiece

SHARDS_FIX = "rerun the shards stage (crawl2gpt stage shards --force) so shards and tokenizer match"


class Tokenizer(Protocol):
    eot_id: int  # ends a document or a response; generation stops on it
    pad_id: int  # fills batches; padding carries no loss
    vocab_size: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def save(self, folder: Path) -> None: ...


class SentencePieceTokenizer:
    """Our SentencePiece model: <|pad|> id 0, <|endoftext|> id 2 (both checked on load)."""

    def __init__(self, path: str | Path):
        path = Path(path)
        self.path = path / MODEL if path.is_dir() else path
        self.sp = load_sentencepiece(self.path)
        self.eot_id, self.pad_id = EOT_ID, PAD_ID
        self.vocab_size = self.sp.get_piece_size()

    def encode(self, text: str) -> list[int]:
        return self.sp.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self.sp.decode(list(ids))

    def save(self, folder: Path) -> None:
        shutil.copyfile(self.path, Path(folder) / MODEL)

    def __getstate__(self):  # SentencePieceProcessor is not picklable: reload from the path
        return {"path": str(self.path)}

    def __setstate__(self, state):
        self.__init__(state["path"])


class GPT2Tokenizer:
    """GPT-2's byte-level BPE from a Hugging Face folder (tokenizer.json, or vocab.json + merges.txt);
    <|endoftext|> (50256 in GPT-2) ends a response and pads (padding carries no loss)."""

    FILES = ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json")

    def __init__(self, folder: str | Path):
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers.implementations import ByteLevelBPETokenizer

        self.folder = Path(folder)
        if (self.folder / "tokenizer.json").is_file():
            self.tok = HFTokenizer.from_file(str(self.folder / "tokenizer.json"))
        elif self.present(self.folder):
            self.tok = ByteLevelBPETokenizer(str(self.folder / "vocab.json"), str(self.folder / "merges.txt"))
        else:
            raise InputError(f"{folder} has no GPT-2 tokenizer (tokenizer.json, or vocab.json + merges.txt)")
        eot = self.tok.token_to_id("<|endoftext|>")
        if eot is None:
            raise InputError(f"the tokenizer in {folder} has no <|endoftext|> token; it is not GPT-2's")
        self.eot_id = self.pad_id = eot
        self.vocab_size = self.tok.get_vocab_size()

    @staticmethod
    def present(folder: Path) -> bool:
        folder = Path(folder)
        has = lambda name: (folder / name).is_file()  # noqa: E731
        return has("tokenizer.json") or (has("vocab.json") and has("merges.txt"))

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int]) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=False)

    def save(self, folder: Path) -> None:
        for name in self.FILES:
            if (self.folder / name).is_file():
                shutil.copyfile(self.folder / name, Path(folder) / name)

    def __getstate__(self):
        return {"folder": str(self.folder)}

    def __setstate__(self, state):
        self.__init__(state["folder"])


def check_sha256(path: Path, recorded: str | None, made_for: str, record: str, fix: str) -> None:
    """Refuse a tokenizer file whose bytes are not those `record` names: text decoded with another
    tokenizer is nonsense. Nothing recorded, nothing to check."""
    if not recorded:
        return
    actual = sha256_file(path)
    if actual != recorded:
        raise TokenizerError(
            f"{path} is not the tokenizer {made_for} ({record} sha256 {recorded[:12]}..., file {actual[:12]}...); {fix}"
        )


def shards_tokenizer(shards_dir: str | Path, manifest: dict[str, Any]) -> SentencePieceTokenizer | None:
    """The tokenizer.model beside the shards: the file the manifest recorded (its sha256), with our
    special ids and the manifest's vocabulary size (a model sized for another vocabulary cannot hold
    every token id). None when the folder has none: training runs, samples are skipped."""
    recorded = manifest.get("tokenizer") or {}
    path = Path(shards_dir) / recorded.get("path", MODEL)
    if not path.is_file():
        return None
    check_sha256(path, recorded.get("sha256"), f"the shards in {shards_dir} were encoded with", "manifest", SHARDS_FIX)
    tokenizer = SentencePieceTokenizer(path)
    if tokenizer.vocab_size != manifest["vocab_size"]:
        raise TokenizerError(
            f"{path} has {tokenizer.vocab_size} pieces, the manifest of {shards_dir} says vocab_size "
            f"{manifest['vocab_size']}; {SHARDS_FIX}"
        )
    return tokenizer


def load_tokenizer(folder: str | Path, sha256: str | None = None) -> Tokenizer:
    """The tokenizer saved in a checkpoint folder: our SentencePiece model (its bytes checked against
    `sha256`, the one state.json recorded, when given), or GPT-2's BPE files."""
    folder = Path(folder)
    if (folder / MODEL).is_file():
        check_sha256(
            folder / MODEL,
            sha256,
            "this checkpoint was trained with",
            "state.json",
            "copy the training run's shards/tokenizer.model beside the checkpoint",
        )
        return SentencePieceTokenizer(folder / MODEL)
    if GPT2Tokenizer.present(folder):
        return GPT2Tokenizer(folder)
    raise CheckpointError(
        f"{folder} has no tokenizer.model (nor GPT-2 tokenizer files); it was saved by a run "
        "without a tokenizer in its shards folder"
    )
