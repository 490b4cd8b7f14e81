"""Sampling from a trained model: KV cache, temperature, top-k, top-p, stop at <|endoftext|>.

`sample` works on token ids with any model that has `forward(idx, caches=, start=)` and
`new_caches()` (the GPT and the LSTM); `generate_text` is the entry of the generate command
(`crawl2gpt generate` and `python -m model.generate`, arguments in model/generate_args.py):
checkpoint folder in, text out, with the tokenizer saved beside the weights (model/tokenizer.py).
"""
from __future__ import annotations

import argparse

import torch
from torch.nn import functional as F

from model.generate_args import MAX_NEW_TOKENS, SEED, TEMPERATURE, TOP_K, TOP_P, add_arguments
from model.tokenizer import Tokenizer, load_tokenizer


def filter_logits(logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None) -> torch.Tensor:
    """logits (B, V) -> probabilities after temperature, top-k, then nucleus (Holtzman et al. 2020)."""
    logits = logits.float() / temperature
    if top_k:
        kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = F.softmax(logits, dim=-1)
    if top_p is not None and top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        # drop a token when the tokens ranked above it already cover top_p; the first always stays
        drop = sorted_probs.cumsum(-1) - sorted_probs >= top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
        probs = probs / probs.sum(-1, keepdim=True)
    return probs


@torch.no_grad()
def sample(model, prompt_ids: list[int], max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
           top_p: float | None = None, eot_id: int | None = None, generator: torch.Generator | None = None) -> list[int]:
    """New token ids after prompt_ids (one sequence), stopping early at eot_id."""
    device = next(model.parameters()).device
    block = getattr(model.config, "block_size", 1 << 30)
    ids = list(prompt_ids)[-(block - 1):] or ([eot_id] if eot_id is not None else [0])
    was_training = model.training
    model.eval()
    caches, start, feed, new = model.new_caches(), 0, ids, []
    for _ in range(max_new_tokens):
        if start + len(feed) > block:  # context full: keep the newer half and rebuild the cache
            feed, caches, start = (ids + new)[-(block // 2):], model.new_caches(), 0
        logits, _ = model(torch.tensor([feed], device=device), caches=caches, start=start)
        start += len(feed)
        logits = logits[:, -1, :]
        if temperature <= 0:
            token = int(logits.argmax(-1))
        else:
            probs = filter_logits(logits, temperature, top_k, top_p)
            token = int(torch.multinomial(probs.cpu(), 1, generator=generator))
        if token == eot_id:
            break
        new.append(token)
        feed = [token]
    model.train(was_training)
    return new


def load_for_generation(ckpt_dir_or_file, device: str = "cpu") -> tuple[torch.nn.Module, Tokenizer, int | None]:
    """(model, its tokenizer, eot_id) from a checkpoint, a checkpoints/ folder or a run folder."""
    from model.training import load_model

    model, state, ckpt = load_model(ckpt_dir_or_file, device)
    return model, load_tokenizer(ckpt, state.get("tokenizer_sha256")), state.get("eot_id")


def generate_text(ckpt_dir_or_file, prompt: str, max_new_tokens: int = MAX_NEW_TOKENS, temperature: float = TEMPERATURE,
                  top_k: int | None = TOP_K, top_p: float | None = TOP_P, seed: int = SEED, device: str = "cpu") -> str:
    """The prompt's continuation as text (the prompt itself not included)."""
    model, tokenizer, eot_id = load_for_generation(ckpt_dir_or_file, device)
    generator = torch.Generator().manual_seed(seed)
    ids = sample(model, tokenizer.encode(prompt), max_new_tokens, temperature, top_k, top_p, eot_id, generator)
    return tokenizer.decode(ids)


def run(args: argparse.Namespace) -> int:
    """The generate command: print the prompt and its continuation."""
    text = generate_text(args.ckpt, args.prompt, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                         top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    print(args.prompt + text)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.generate",
                                     description="Continue a prompt with a trained crawl2gpt model.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
