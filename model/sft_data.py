"""Instruction data for SFT: JSONL formats, the prompt template, loss masking, padding and packing.

Accepted JSONL lines (one JSON object each; anything else is counted and skipped):
  Alpaca    {"instruction": ..., "input": ... (optional), "output": ...}      (Taori et al. 2023)
  chat      {"messages": [{"role": "system"|"user"|"assistant", "content": ...}, ...]}
  prompt    {"prompt": ..., "completion" or "response": ...}

Every example becomes a list of turns (role, text) rendered through ONE template, Alpaca's:

    ### System:\n{system}\n\n            (chat only)
    ### Instruction:\n{user}\n\n
    ### Input:\n{input}\n\n              (Alpaca only, when input is not empty)
    ### Response:\n{assistant}<|endoftext|>

Headers are plain text; the end of a response is the tokenizer's <|endoftext|> id, inserted as
an id (a control symbol in our SentencePiece models, GPT-2's id 50256), so no text in the data
can forge or hide a turn's end, and generation stops on it. The loss is taken only on response
tokens and that end token; prompt tokens are labelled -1 (ignored by the cross-entropy).

Bad input has one rule each, counted under the reason name:
  invalid_json, not_an_object, missing_fields, empty_response, bad_role,
  too_long (longer than the context; or with overlong=truncate, 'truncated' and kept).

Packing puts several examples in one row; each row carries segment ids and positions that
restart per example, and GPT.hidden_states turns them into a block-diagonal causal mask, so no
example attends to another (the packed logits equal the unpacked ones, tests/test_finetune.py).
"""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Protocol, Sequence

import torch

from pipeline.errors import InputError
from pipeline.hashing import stable_fraction

HEADERS = {"system": "### System:\n", "user": "### Instruction:\n", "input": "### Input:\n", "assistant": "### Response:\n"}
TURN_GAP = "\n\n"
IGNORE = -1  # GPT.forward's cross_entropy ignore_index


class Tokenizer(Protocol):
    eot_id: int
    pad_id: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


class SentencePieceTokenizer:
    """The project's SentencePiece model (pipeline/tokens/tokenizer.py): pad 0, <|endoftext|> 2."""

    def __init__(self, path: str | Path):
        import sentencepiece as spm

        self.path = str(path)
        self.sp = spm.SentencePieceProcessor(model_file=self.path)
        self.eot_id = self.sp.eos_id() if self.sp.eos_id() >= 0 else self.sp.PieceToId("<|endoftext|>")
        self.pad_id = self.sp.pad_id() if self.sp.pad_id() >= 0 else self.eot_id
        self.vocab_size = self.sp.get_piece_size()

    def encode(self, text: str) -> list[int]:
        return self.sp.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self.sp.decode(list(ids))

    def __getstate__(self):  # SentencePieceProcessor is not picklable: reload from the path
        return {"path": self.path}

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
        elif (self.folder / "vocab.json").is_file() and (self.folder / "merges.txt").is_file():
            self.tok = ByteLevelBPETokenizer(str(self.folder / "vocab.json"), str(self.folder / "merges.txt"))
        else:
            raise InputError(f"{folder} has no GPT-2 tokenizer (tokenizer.json, or vocab.json + merges.txt)")
        eot = self.tok.token_to_id("<|endoftext|>")
        if eot is None:
            raise InputError(f"the tokenizer in {folder} has no <|endoftext|> token; it is not GPT-2's")
        self.eot_id = self.pad_id = eot
        self.vocab_size = self.tok.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int]) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=False)

    def save(self, folder: Path) -> None:
        import shutil

        for name in self.FILES:
            if (self.folder / name).is_file():
                shutil.copyfile(self.folder / name, Path(folder) / name)

    def __getstate__(self):
        return {"folder": str(self.folder)}

    def __setstate__(self, state):
        self.__init__(state["folder"])


def load_tokenizer(folder: str | Path) -> Tokenizer:
    """The tokenizer saved in a checkpoint folder: our SentencePiece model, or GPT-2's BPE files."""
    folder = Path(folder)
    if (folder / "tokenizer.model").is_file():
        return SentencePieceTokenizer(folder / "tokenizer.model")
    return GPT2Tokenizer(folder)


# --------------------------------------------------------------------------- reading JSONL


Turn = tuple[str, str]  # (role, text)


def parse_example(obj: object) -> tuple[list[Turn] | None, str | None]:
    """One JSON value -> (turns, None) or (None, reason it is skipped)."""
    if not isinstance(obj, dict):
        return None, "not_an_object"
    if "messages" in obj:
        return _parse_messages(obj["messages"])
    if "instruction" in obj and "output" in obj:
        prompt, extra, answer = obj["instruction"], obj.get("input") or "", obj["output"]
    elif "prompt" in obj and ("completion" in obj or "response" in obj):
        prompt, extra, answer = obj["prompt"], "", obj.get("completion", obj.get("response"))
    else:
        return None, "missing_fields"
    if not all(isinstance(v, str) for v in (prompt, extra, answer)):
        return None, "missing_fields"
    if not answer.strip():
        return None, "empty_response"
    if not prompt.strip():
        return None, "missing_fields"
    turns = [("user", prompt)] + ([("input", extra)] if extra.strip() else []) + [("assistant", answer)]
    return turns, None


def _parse_messages(messages: object) -> tuple[list[Turn] | None, str | None]:
    if not isinstance(messages, list) or not messages:
        return None, "missing_fields"
    turns = []
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            return None, "missing_fields"
        if m.get("role") not in ("system", "user", "assistant"):
            return None, "bad_role"
        turns.append((m["role"], m["content"]))
    answers = [text for role, text in turns if role == "assistant"]
    if not answers or not all(a.strip() for a in answers):
        return None, "empty_response"
    return turns, None


def read_jsonl(path: str | Path) -> tuple[list[list[Turn]], Counter]:
    """All usable examples of a JSONL file, and the count of each skip reason."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"instruction data {path} not found; give a JSONL file (Alpaca, chat messages or prompt/completion)")
    examples, counts = [], Counter()
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            counts["lines"] += 1
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                counts["invalid_json"] += 1
                continue
            turns, reason = parse_example(obj)
            if reason:
                counts[reason] += 1
            else:
                examples.append(turns)
    counts["examples"] = len(examples)
    return examples, counts


# --------------------------------------------------------------------------- template and masking


def render(turns: list[Turn], eot: str = "<|endoftext|>") -> str:
    """The template as text (for reading and docs; training encodes turn by turn, see encode)."""
    return "".join(HEADERS[r] + t + (eot if r == "assistant" else TURN_GAP) for r, t in turns)


def prompt_turns(turns: list[Turn]) -> tuple[list[Turn], str]:
    """Everything before the last response, and that response (what eval prompts answer)."""
    last = max(i for i, (role, _) in enumerate(turns) if role == "assistant")
    return turns[:last], turns[last][1]


def encode_prompt(turns: list[Turn], tok: Tokenizer) -> list[int]:
    """Ids of the turns followed by the response header: what the model continues at inference."""
    ids = encode(turns + [("assistant", "")], tok)[0]
    return ids[:-1]  # without the closing <|endoftext|> of the empty response


def encode(turns: list[Turn], tok: Tokenizer) -> tuple[list[int], list[bool]]:
    """Token ids of an example and, per id, whether the loss is taken on it (response + end)."""
    ids: list[int] = []
    trained: list[bool] = []
    for role, text in turns:
        if role == "assistant":
            head, body = tok.encode(HEADERS[role]), tok.encode(text) + [tok.eot_id]
            ids += head + body
            trained += [False] * len(head) + [True] * len(body)
            continue
        piece = tok.encode(HEADERS[role] + text + TURN_GAP)
        ids += piece
        trained += [False] * len(piece)
    return ids, trained


@dataclass
class Example:
    x: list[int]  # input ids
    y: list[int]  # next-token targets, IGNORE on prompt positions


def to_example(turns: list[Turn], tok: Tokenizer, block_size: int, overlong: str, counts: Counter) -> Example | None:
    """Shifted, masked ids that fit block_size, or None (counted) under the overlong rule."""
    ids, trained = encode(turns, tok)
    if len(ids) - 1 > block_size:
        if overlong == "drop":
            counts["too_long"] += 1
            return None
        ids, trained = ids[: block_size + 1], trained[: block_size + 1]
        if not any(trained[1:]):
            counts["too_long"] += 1
            return None
        counts["truncated"] += 1
    y = [t if keep else IGNORE for t, keep in zip(ids[1:], trained[1:])]
    return Example(ids[:-1], y)


def split_of(turns: list[Turn], val_fraction: float) -> str:
    """'val' or 'train' from a hash of the example's text: stable whatever the file order."""
    return "val" if stable_fraction(render(turns)) < val_fraction else "train"


# --------------------------------------------------------------------------- batches


@dataclass
class Batch:
    idx: torch.Tensor  # (B, T) token ids
    targets: torch.Tensor  # (B, T) next-token ids, IGNORE where no loss
    segments: torch.Tensor  # (B, T) example number within the row; attention stays inside one
    positions: torch.Tensor  # (B, T) position within the example (restarts per example)

    def to(self, device) -> "Batch":
        return Batch(*(t.to(device) for t in (self.idx, self.targets, self.segments, self.positions)))


def make_rows(examples: Sequence[Example], block_size: int, packing: bool) -> list[list[Example]]:
    """Group examples into rows: one per row (padding), or first-fit in order up to block_size (packing)."""
    if not packing:
        return [[e] for e in examples]
    rows: list[list[Example]] = []
    room: list[int] = []
    for e in examples:
        n = len(e.x)
        slot = next((i for i, free in enumerate(room) if free >= n), None)
        if slot is None:
            rows.append([e])
            room.append(block_size - n)
        else:
            rows[slot].append(e)
            room[slot] -= n
    return rows


def collate(rows: Sequence[Sequence[Example]], pad_id: int) -> Batch:
    """Right-pad rows to the longest; padding is its own segment and carries no loss."""
    width = max(sum(len(e.x) for e in row) for row in rows)
    B = len(rows)
    idx = torch.full((B, width), pad_id, dtype=torch.long)
    targets = torch.full((B, width), IGNORE, dtype=torch.long)
    segments = torch.full((B, width), len(max(rows, key=len)), dtype=torch.long)
    positions = torch.zeros((B, width), dtype=torch.long)
    for b, row in enumerate(rows):
        at = 0
        for s, e in enumerate(row):
            n = len(e.x)
            idx[b, at : at + n] = torch.tensor(e.x)
            targets[b, at : at + n] = torch.tensor(e.y)
            segments[b, at : at + n] = s
            positions[b, at : at + n] = torch.arange(n)
            at += n
        positions[b, at:] = torch.arange(width - at)
    return Batch(idx, targets, segments, positions)


def iter_batches(rows: list[list[Example]], batch_size: int, generator: torch.Generator | None, pad_id: int,
                 epochs: int | None = None) -> Iterator[Batch]:
    """Batches of rows, reshuffled each epoch when a generator is given (forever when epochs is None)."""
    epoch = 0
    while epochs is None or epoch < epochs:
        order = torch.randperm(len(rows), generator=generator).tolist() if generator is not None else range(len(rows))
        order = list(order)
        for i in range(0, len(order), batch_size):
            yield collate([rows[j] for j in order[i : i + batch_size]], pad_id)
        epoch += 1


# --------------------------------------------------------------------------- pairs from the curated corpus

TITLE_INSTRUCTION = "Write a title for this article."
CONTINUE_INSTRUCTION = "Continue the text."
RECIPES = ("title", "continue")


def paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n|\n", text) if p.strip()]


def opening(paras: list[str], max_chars: int) -> str:
    """Whole paragraphs from the start up to max_chars (at least the first, cut at a word)."""
    out = []
    for p in paras:
        if out and sum(len(q) + 1 for q in out) + len(p) > max_chars:
            break
        out.append(p)
    text = "\n".join(out)
    return text if len(text) <= max_chars else text[:max_chars].rsplit(" ", 1)[0]


def title_pair(title: str | None, text: str, max_input_chars: int = 1500) -> tuple[dict | None, str | None]:
    """Recipe 'title': the article's opening is the input, its <title> (trafilatura metadata) the answer."""
    title = (title or "").strip()
    if not title:
        return None, "no_title"
    if not 8 <= len(title) <= 200:  # shorter are site names ("Home"), longer are not titles
        return None, "title_length"
    paras = paragraphs(text)
    if paras and paras[0].strip().lower() == title.lower():  # the extractor kept the headline: the answer would be visible
        paras = paras[1:]
    body = opening(paras, max_input_chars)
    if len(body) < 200:
        return None, "text_too_short"
    return {"instruction": TITLE_INSTRUCTION, "input": body, "output": title}, None


def continue_pair(text: str, max_input_chars: int = 800, max_output_chars: int = 600) -> tuple[dict | None, str | None]:
    """Recipe 'continue': the opening paragraph(s) are the input, the paragraph(s) after them the answer."""
    paras = [p for p in paragraphs(text) if len(p.split()) >= 5]  # menu lines and captions are not paragraphs
    if len(paras) < 2:
        return None, "too_few_paragraphs"
    head = opening(paras[:-1], max_input_chars)
    used = head.count("\n") + 1
    tail = opening(paras[used:], max_output_chars)
    if len(head) < 100 or len(tail) < 100:
        return None, "paragraphs_too_short"
    return {"instruction": CONTINUE_INSTRUCTION, "input": head, "output": tail}, None


def document_parts(source: str | Path) -> list[Path]:
    """Parquet parts of a finished stage folder (extract/filter/dedup), a folder of parts, or one file."""
    from pipeline.stage import MANIFEST, stage_parts

    source = Path(source)
    if source.is_file():
        return [source]
    if (source / MANIFEST).is_file():
        return stage_parts(source)
    parts = sorted(source.glob("*.parquet"))
    if not parts:
        raise InputError(f"{source} holds no document Parquet parts; give a finished extract, filter or dedup folder")
    return parts


def derive_pairs(sources: Iterable[str | Path], out_jsonl: str | Path, recipes: Sequence[str] = RECIPES,
                 max_pairs: int = 0, max_input_chars: int = 1500) -> Counter:
    """Write Alpaca-format pairs derived from real documents to out_jsonl; returns counts per outcome.

    Each line also carries `recipe`, `doc_id` and `url`, so every pair can be traced to its page.
    max_input_chars bounds the article opening given as input (small-context models need less).
    """
    from pipeline.atomic import atomic_write_text
    from pipeline.documents import iter_batches as doc_batches

    unknown = set(recipes) - set(RECIPES)
    if unknown:
        raise InputError(f"unknown pair recipes {sorted(unknown)}; recipes are {RECIPES}")
    counts, lines = Counter(), []
    for part in (p for s in sources for p in document_parts(s)):
        for batch in doc_batches(part, columns=["doc_id", "url", "title", "text"]):
            for doc in batch.to_pylist():
                counts["documents"] += 1
                for recipe in recipes:
                    text = doc["text"] or ""
                    pair, reason = (title_pair(doc["title"], text, max_input_chars) if recipe == "title"
                                    else continue_pair(text, min(800, max_input_chars)))
                    counts[f"{recipe}:{reason or 'pairs'}"] += 1
                    if pair:
                        lines.append(json.dumps(dict(pair, recipe=recipe, doc_id=doc["doc_id"], url=doc["url"]), ensure_ascii=False))
    if max_pairs:
        lines = lines[:max_pairs]
    counts["pairs"] = len(lines)
    atomic_write_text(Path(out_jsonl), "".join(line + "\n" for line in lines))
    return counts
