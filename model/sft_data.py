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
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from model.tokenizer import Tokenizer
from pipeline.errors import InputError
from pipeline.hashing import stable_fraction

HEADERS = {
    "system": "### System:\n",
    "user": "### Instruction:\n",
    "input": "### Input:\n",
    "assistant": "### Response:\n",
}
TURN_GAP = "\n\n"
IGNORE = -1  # GPT.forward's cross_entropy ignore_index


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
        raise InputError(
            f"instruction data {path} not found; give a JSONL file (Alpaca, chat messages or prompt/completion)"
        )
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

    def to(self, device) -> Batch:
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


def iter_batches(
    rows: list[list[Example]],
    batch_size: int,
    generator: torch.Generator | None,
    pad_id: int,
    epochs: int | None = None,
) -> Iterator[Batch]:
    """Batches of rows, reshuffled each epoch when a generator is given (forever when epochs is None)."""
    epoch = 0
    while epochs is None or epoch < epochs:
        order = torch.randperm(len(rows), generator=generator).tolist() if generator is not None else range(len(rows))
        order = list(order)
        for i in range(0, len(order), batch_size):
            yield collate([rows[j] for j in order[i : i + batch_size]], pad_id)
        epoch += 1
