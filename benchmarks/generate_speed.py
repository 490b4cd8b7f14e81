"""Generation speed: our static-cache, graph-captured decoder vs transformers' `generate`, same weights.

GPT-2 124M's shape by default (12 layers, 12 heads, 768 wide, vocabulary 50304), in bf16, greedy,
--new-tokens 256 after a --prompt-len 16 prompt, at each --batch size (1 and 8). Rows per batch:

- transformers: `GPT2LMHeadModel.generate` (its dynamic KV cache, SDPA attention) on our weights,
  converted by model/gpt2_interop.py; exactly --new-tokens tokens (min_new_tokens = max_new_tokens);
- plain: our plain path (`sample(static=False)`: a growing cache, one eager forward per token;
  batch > 1 runs the prompts one after another, as it did before the static path);
- graph: the static path with the decode step captured as a CUDA graph, not compiled;
- compiled: the static path as `sample` runs it on a GPU: step compiled, then captured.

Every row's greedy tokens are compared with transformers' (all equal, and the first position that
differs); `setup_s` is the first call's extra time (compilation, capture), the timed calls come
after it. `host_syncs` checks the decode loop with CUDA's sync debug mode set to error: 0 means
no token waited for the host.

With --shards the model is first trained for --train-steps on the shards' train split (seeded),
so the greedy comparison runs on a model with confident predictions, not near-uniform random
logits where bf16 rounding alone flips ties; prompts are then windows of the validation split.

    python -m benchmarks.generate_speed [--shards runs/x/shards] [--shape gpt2|tiny] [--batch 1 --batch 8]
        [--new-tokens 256] [--prompt-len 16] [--dtype bf16|fp32] [--train-steps 300] [--repeats 3]
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from benchmarks.harness import print_result
from model.decode import left_pad
from model.generate import cache_length, decoder_for, sample, sample_batch
from model.gpt import GPT, GPTConfig
from model.gpt2_interop import hf_config, to_gpt2_state_dict

SHAPES = {"tiny": (2, 2, 64), "gpt2": (12, 12, 768)}  # (n_layer, n_head, n_embd)


def split_tokens(shards: str, split: str) -> np.ndarray:
    from model.data import load_tokens, shard_paths

    return np.concatenate([load_tokens(p) for p in shard_paths(shards, split)]).astype(np.int64)


def train_briefly(model: GPT, tokens: np.ndarray, steps: int, device: str, batch: int = 8, length: int = 512) -> float:
    """Fit the model to the shards for `steps` AdamW steps (bf16 autocast on a GPU); the last loss."""
    gen = torch.Generator().manual_seed(0)
    text = torch.from_numpy(tokens)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.0)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda"))
    model.train()
    loss = torch.zeros(())
    for step in range(steps):
        starts = torch.randint(0, len(text) - length - 1, (batch,), generator=gen).tolist()
        w = torch.stack([text[s : s + length + 1] for s in starts]).to(device)
        for group in optimizer.param_groups:
            group["lr"] = 1e-3 * min(1.0, (step + 1) / 20)
        with autocast:
            _, loss = model(w[:, :-1], w[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    model.eval()
    return float(loss)


def transformers_model(model: GPT, dtype, device: str):
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(**{k: v for k, v in hf_config(model.config).items() if k not in ("model_type", "architectures")})
    hf = GPT2LMHeadModel(cfg)
    hf.load_state_dict(to_gpt2_state_dict(model), strict=False)  # strict off: older versions keep mask buffers
    hf.tie_weights()
    return hf.to(device=device, dtype=dtype).eval()


def timed_calls(fn, repeats: int, device: str) -> tuple[list, float, float]:
    """(first call's output, first call's seconds, median of `repeats` more calls' seconds)."""
    seconds = []
    out = None
    for i in range(repeats + 1):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        started = time.perf_counter()
        result = fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - started)
        out = result if i == 0 else out
    return out, seconds[0], statistics.median(seconds[1:])


def compare(rows: list[list[int]], reference: list[list[int]]) -> dict:
    """Greedy agreement with transformers: all equal, and the first differing position per row."""
    first_diff = []
    for ours, theirs in zip(rows, reference):
        diff = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), None)
        if diff is None and len(ours) != len(theirs):
            diff = min(len(ours), len(theirs))
        first_diff.append(diff)
    return {"tokens_equal": all(d is None for d in first_diff), "first_diff": first_diff}


def host_syncs(model: GPT, prompts: list[list[int]], new_tokens: int, compile: bool) -> int | str:
    """0 if the static decoder's loop runs with CUDA's sync debug mode at 'error' (no host sync)."""
    ids, pad = left_pad(prompts)
    length = cache_length(ids.size(1) + new_tokens - 1, model.config.block_size)
    decoder = decoder_for(model, len(prompts), length, 0.0, None, None, compile)  # the row's own, already captured
    ids, pad = ids.cuda(), pad.cuda()
    decoder.generate(ids, pad, new_tokens)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        decoder.generate(ids, pad, new_tokens)
        return 0
    except RuntimeError as err:
        return str(err)[:200]
    finally:
        torch.cuda.set_sync_debug_mode("default")


def run_batch(model: GPT, hf, prompts: list[list[int]], args, device: str) -> list[dict]:
    n = args.new_tokens
    rows = []
    ids = torch.tensor(prompts, device=device)  # equal lengths: no padding for transformers to handle

    def hf_generate():
        out = hf.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=n,
            min_new_tokens=n,
            do_sample=False,
            pad_token_id=0,
            eos_token_id=None,
        )
        return out[:, ids.size(1) :].tolist()

    reference, first_s, median_s = timed_calls(hf_generate, args.repeats, device)
    rows.append(row("transformers", len(prompts), n, first_s, median_s, {"tokens_equal": True}))
    variants = [("plain", lambda: [sample(model, p, n, temperature=0, static=False) for p in prompts])]
    if device.startswith("cuda"):
        variants += [
            ("graph", lambda: sample_batch(model, prompts, n, temperature=0, compile=False)),
            ("compiled", lambda: sample_batch(model, prompts, n, temperature=0, compile=True)),
        ]
    else:
        variants.append(("static_eager", lambda: sample_batch(model, prompts, n, temperature=0, static=True)))
    for name, fn in variants:
        out, first_s, median_s = timed_calls(fn, args.repeats if name != "plain" else 1, device)
        rows.append(row(name, len(prompts), n, first_s, median_s, compare(out, reference)))
        if device.startswith("cuda") and name in ("graph", "compiled"):
            rows[-1]["host_syncs"] = host_syncs(model, prompts, n, compile=name == "compiled")
    hf_s = rows[0]["seconds"]
    for r in rows:
        r["speedup_vs_transformers"] = hf_s / r["seconds"]
    return rows


def row(name: str, batch: int, new_tokens: int, first_s: float, median_s: float, agreement: dict) -> dict:
    return {
        "path": name,
        "batch": batch,
        "seconds": median_s,
        "tokens_per_s": batch * new_tokens / median_s,
        "ms_per_step": 1000 * median_s / new_tokens,
        "setup_s": max(0.0, first_s - median_s),
        **agreement,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="gpt2")
    parser.add_argument("--vocab", type=int, default=50304)
    parser.add_argument("--shards", default=None, help="train on this shards folder first; prompts from its val split")
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--batch", type=int, action="append", default=None, help="batch sizes (default 1 and 8)")
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--prompt-len", type=int, default=16)
    parser.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device, batches = args.device, args.batch or [1, 8]
    n_layer, n_head, n_embd = SHAPES[args.shape]
    vocab = args.vocab if args.shape != "tiny" else 512
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=vocab, block_size=1024, n_layer=n_layer, n_head=n_head, n_embd=n_embd)).to(device)
    gen = torch.Generator().manual_seed(1)
    train_loss = None
    if args.shards:
        train_loss = train_briefly(model, split_tokens(args.shards, "train") % vocab, args.train_steps, device)
        val = split_tokens(args.shards, "val") % vocab
        starts = torch.randint(0, len(val) - args.prompt_len, (max(batches),), generator=gen).tolist()
        all_prompts = [val[s : s + args.prompt_len].tolist() for s in starts]
    else:
        all_prompts = torch.randint(0, vocab, (max(batches), args.prompt_len), generator=gen).tolist()
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    hf = transformers_model(model, dtype, device)
    model = model.to(dtype).eval()
    results = []
    for batch in batches:
        for r in run_batch(model, hf, all_prompts[:batch], args, device):
            results.append(r)
            print(
                f"batch {r['batch']:>2} {r['path']:<13}{r['tokens_per_s']:>10,.0f} tok/s"
                f" {r['ms_per_step']:>8.2f} ms/step"
                f"  x{r['speedup_vs_transformers']:.2f}  setup {r['setup_s']:.1f}s  equal {r['tokens_equal']}",
                flush=True,
            )
    import transformers

    print_result(
        {
            "benchmark": "generate_speed",
            "device": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "shape": args.shape,
            "vocab_size": vocab,
            "dtype": args.dtype,
            "prompt_len": args.prompt_len,
            "new_tokens": args.new_tokens,
            "trained_steps": args.train_steps if args.shards else 0,
            "train_loss": train_loss,
            "rows": results,
        }
    )


if __name__ == "__main__":
    main()
