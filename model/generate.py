"""Sampling from a trained model: KV cache, temperature, top-k, top-p, stop at <|endoftext|>.

`sample` (one prompt) and `sample_batch` (several, left-padded into one batch) work on token ids.
On a GPU a GPT decodes through model/decode.py: a static KV cache, the prompt prefilled once and
each further token one replay of a compiled, graph-captured step, with no host sync per token.
On the CPU, and for the LSTM, each prompt takes the plain path: a growing cache, one forward per
token (`forward(idx, caches=, start=)` and `new_caches()`); when the context fills it keeps the
newer half and rebuilds. Both paths give the same tokens (tests/test_generate.py).
`generate_text` is the entry of the generate command (`crawl2gpt generate` and `python -m
model.generate`, arguments in model/generate_args.py): checkpoint folder in, text out, with the
tokenizer saved beside the weights (model/tokenizer.py).
"""

from __future__ import annotations

import argparse

import torch

from model.decode import StaticDecoder, left_pad
from model.generate_args import DEVICE, MAX_NEW_TOKENS, SEED, TEMPERATURE, TOP_K, TOP_P, add_arguments
from model.sampling import filter_logits
from model.tokenizer import Tokenizer, load_tokenizer

__all__ = ["filter_logits", "sample", "sample_batch", "generate_text", "load_for_generation"]


@torch.no_grad()
def sample(model, prompt_ids: list[int], *args, **kwargs) -> list[int]:
    """New token ids after prompt_ids (one sequence), stopping early at eot_id: sample_batch over one
    prompt, with its arguments in its order (max_new_tokens, temperature, top_k, top_p, eot_id,
    generator, static, compile)."""
    return sample_batch(model, [prompt_ids], *args, **kwargs)[0]


@torch.no_grad()
def sample_batch(
    model,
    prompts: list[list[int]],
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eot_id: int | None = None,
    generator: torch.Generator | None = None,
    static: bool | None = None,
    compile: bool | None = None,
) -> list[list[int]]:
    """New token ids after each prompt, each row stopping at its own eot_id.

    static=None decodes a GPT over a static cache on a GPU and takes the plain path elsewhere;
    True forces the static path (on the CPU too: eager, no graph), False the plain one. The
    static path needs every prompt plus its new tokens within block_size; otherwise each prompt
    takes the plain path. `compile` (static path): torch.compile the decode step (default: on a GPU).
    """
    block = getattr(model.config, "block_size", 1 << 30)
    prompts = [list(p)[-(block - 1) :] or ([eot_id] if eot_id is not None else [0]) for p in prompts]
    length = max(len(p) for p in prompts) + max_new_tokens - 1  # slots the longest row fills
    device = next(model.parameters()).device
    if static is None:
        static = device.type == "cuda"
    if not (static and hasattr(model, "lm_head") and length <= block and max_new_tokens > 0):
        return [_sample_plain(model, p, max_new_tokens, temperature, top_k, top_p, eot_id, generator) for p in prompts]
    decoder = decoder_for(model, len(prompts), cache_length(length, block), temperature, top_k, top_p, compile)
    ids, pad = left_pad(prompts)
    rows = decoder.generate(ids, pad, max_new_tokens, eot_id, _device_generator(generator, device)).tolist()
    return [row[: row.index(eot_id)] if eot_id in row else row for row in rows]


def _sample_plain(
    model,
    prompt_ids: list[int],
    max_new_tokens: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    eot_id: int | None,
    generator: torch.Generator | None,
) -> list[int]:
    """One sequence, one forward per token over a growing cache (any model with new_caches())."""
    device = next(model.parameters()).device
    block = getattr(model.config, "block_size", 1 << 30)
    ids = list(prompt_ids)
    was_training = model.training
    model.eval()
    caches, start, feed, new = model.new_caches(), 0, ids, []
    for _ in range(max_new_tokens):
        if start + len(feed) > block:  # context full: keep the newer half and rebuild the cache
            feed, caches, start = (ids + new)[-(block // 2) :], model.new_caches(), 0
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


_LAST_DECODER: tuple | None = None  # (model, its parameters' addresses, settings, decoder): kept for reuse


def decoder_for(
    model, batch: int, length: int, temperature: float, top_k: int | None, top_p: float | None, compile: bool | None
) -> StaticDecoder:
    """A decoder for these shapes and settings. The last one built on a GPU is kept, so a trainer
    sampling at every evaluation compiles and captures once; its graph reads the parameters where
    they were at capture, so it is reused only while they are still there."""
    global _LAST_DECODER
    addresses = tuple(p.data_ptr() for p in model.parameters())
    settings = (batch, length, temperature, top_k, top_p, compile)
    if _LAST_DECODER is not None and _LAST_DECODER[0] is model and _LAST_DECODER[1:3] == (addresses, settings):
        return _LAST_DECODER[3]
    decoder = StaticDecoder(model, batch, length, temperature, top_k, top_p, compile)
    _LAST_DECODER = (model, addresses, settings, decoder) if decoder.use_graph else None
    return decoder


def _device_generator(generator: torch.Generator | None, device: torch.device) -> torch.Generator | None:
    """The caller's generator on the CPU; on a GPU a generator there, seeded from the caller's."""
    if device.type == "cpu" or generator is None:
        return generator
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return torch.Generator(device=device).manual_seed(seed)


def cache_length(slots: int, block: int) -> int:
    """Cache slots for `slots` tokens, in multiples of 16 (aligned masks for the fused attention
    kernels, and one decoder for prompts of nearby lengths), at most block_size."""
    return min(block, -(-slots // 16) * 16)


def load_for_generation(ckpt_dir_or_file, device: str = "cpu") -> tuple[torch.nn.Module, Tokenizer, int | None]:
    """(model, its tokenizer, eot_id) from a checkpoint, a checkpoints/ folder or a run folder."""
    from model.training import load_model

    model, state, ckpt = load_model(ckpt_dir_or_file, device)
    return model, load_tokenizer(ckpt, state.get("tokenizer_sha256")), state.get("eot_id")


def generate_text(
    ckpt_dir_or_file,
    prompt: str,
    max_new_tokens: int = MAX_NEW_TOKENS,
    temperature: float = TEMPERATURE,
    top_k: int | None = TOP_K,
    top_p: float | None = TOP_P,
    seed: int = SEED,
    device: str = DEVICE,
) -> str:
    """The prompt's continuation as text (the prompt itself not included). device "auto": the GPU
    when there is one, where the weights are cast to bf16 (half the bytes each token reads)."""
    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    model, tokenizer, eot_id = load_for_generation(ckpt_dir_or_file, device)
    if device.startswith("cuda"):
        model = model.to(torch.bfloat16)
    generator = torch.Generator().manual_seed(seed)
    ids = sample(model, tokenizer.encode(prompt), max_new_tokens, temperature, top_k, top_p, eot_id, generator)
    return tokenizer.decode(ids)


def run(args: argparse.Namespace) -> int:
    """The generate command: print the prompt and its continuation."""
    text = generate_text(
        args.ckpt,
        args.prompt,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
        device=args.device,
    )
    print(args.prompt + text)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m model.generate", description="Continue a prompt with a trained crawl2gpt model."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
