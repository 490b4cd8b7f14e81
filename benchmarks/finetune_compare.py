"""Full fine-tuning vs LoRA on the same SFT task: held-out quality, trainable parameters, peak memory.

Recipe (all real data): the shared WARC samples go through the extract stage; a SentencePiece
tokenizer is trained on the extracted text; a small GPT is pretrained on it (next-token loss on
random windows); instruction pairs are derived from the same documents (model/sft_pairs.py:
title from article, continuation from opening paragraphs); then run_sft runs twice from the
same base with the same data, steps and batch, once full and once LoRA, each in its own
process so that the peak resident memory (ru_maxrss) belongs to that run alone.

Quality: held-out cross-entropy per response token (lower is better) before and after, and
the exact-match rate of generated titles on the held-out title pairs.

    python -m benchmarks.finetune_compare [WARC ...] [--steps 150] [--device cpu]

Prints one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchmarks.harness import add_warcs_argument, existing_files, module_command, print_result, run_json


def prepare(warcs: list[str], work: Path, args) -> tuple[Path, Path]:
    """extract stage -> tokenizer -> pretrained base checkpoint, and derived pairs. Reused if present."""
    import torch

    from crawl2gpt.config import RunConfig
    from crawl2gpt.stages import load_stage
    from model.checkpoint import save_checkpoint
    from model.gpt import GPT, GPTConfig
    from model.sft_pairs import derive_pairs
    from pipeline.documents import iter_batches
    from pipeline.stage import run_stage, stage_parts
    from pipeline.tokens import tokenizer

    base_dir, pairs = work / "base", work / "pairs.jsonl"
    if (base_dir / "checkpoints").is_dir() and pairs.is_file():
        return base_dir, pairs
    cfg = RunConfig().with_overrides([f"tokenizer.vocab_size={args.vocab}", "tokenizer.threads=1"])
    run_stage(load_stage("extract"), warcs, work / "extract", cfg)
    parts = stage_parts(work / "extract")
    tokenizer.train(parts, work / "tokenizer", cfg)
    counts = derive_pairs([work / "extract"], pairs, max_input_chars=args.max_input_chars)
    print(f"pairs: {dict(counts)}", file=sys.stderr)
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(work / "tokenizer" / "tokenizer.model"))
    text = "".join(
        t + "\n" for p in parts for b in iter_batches(p, columns=["text"]) for t in b.column("text").to_pylist()
    )
    ids = torch.tensor(sp.encode(text))
    torch.manual_seed(0)
    model = GPT(
        GPTConfig(
            vocab_size=sp.get_piece_size(),
            block_size=args.block,
            n_layer=args.layers,
            n_head=args.heads,
            n_embd=args.embd,
        )
    ).to(args.device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    gen = torch.Generator().manual_seed(0)
    started = time.time()
    for step in range(args.pretrain_steps):
        starts = torch.randint(0, len(ids) - args.block - 1, (16,), generator=gen)
        x = torch.stack([ids[s : s + args.block] for s in starts]).to(args.device)
        y = torch.stack([ids[s + 1 : s + args.block + 1] for s in starts]).to(args.device)
        _, loss = model(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        if step % 50 == 0:
            print(
                f"pretrain step {step} loss {float(loss.detach()):.3f} ({time.time() - started:.0f}s)", file=sys.stderr
            )
    path = save_checkpoint(
        base_dir / "checkpoints",
        args.pretrain_steps,
        model.cpu(),
        None,
        {
            "model_config": model.config.to_dict(),
            "arch": "gpt",
            "eot_id": sp.eos_id(),
            "pretrain_final_loss": float(loss.detach()),
        },
    )
    (path / "tokenizer.model").write_bytes((work / "tokenizer" / "tokenizer.model").read_bytes())
    return base_dir, pairs


def child(method: str, base: str, pairs: str, out: str, args) -> dict:
    """One run_sft in this process; adds title exact-match on the held-out title pairs."""
    import torch

    from crawl2gpt.config import RunConfig
    from model.finetune import answers_for, load_base, run_sft
    from model.sft_data import read_jsonl, split_of
    from model.sft_pairs import TITLE_INSTRUCTION

    torch.set_num_threads(args.threads)
    overrides = [
        f"finetune.method={method}",
        f"finetune.max_steps={args.steps}",
        f"finetune.batch_size={args.batch}",
        f"finetune.eval_interval={args.steps}",
        "finetune.eval_prompts=3",
        "finetune.val_fraction=0.1",
        f"finetune.device={args.device}",
        "finetune.overlong=truncate",
        f"finetune.lora.rank={args.rank}",
        f"finetune.learning_rate={args.full_lr}",
        f"finetune.lora.learning_rate={args.lora_lr}",
    ]
    summary = run_sft(base, pairs, out, RunConfig().with_overrides(overrides))
    conversations, _ = read_jsonl(pairs)
    titles = [t for t in conversations if t[0][1] == TITLE_INSTRUCTION and split_of(t, 0.1) == "val"][
        : args.title_evals
    ]
    model, tok, _ = load_base(summary["checkpoint"], args.device)
    got = answers_for(model, tok, titles, 24)
    summary["title_exact_match"] = sum(g.strip() == t[-1][1].strip() for g, t in zip(got, titles)) / max(len(titles), 1)
    summary["title_evals"] = len(titles)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_warcs_argument(parser)
    parser.add_argument("--work", default="/tmp/crawl2gpt-finetune-bench")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--full-lr", type=float, default=3e-4)
    parser.add_argument("--lora-lr", type=float, default=3e-3)
    parser.add_argument("--pretrain-steps", type=int, default=200)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--embd", type=int, default=128)
    parser.add_argument("--block", type=int, default=256)
    parser.add_argument("--vocab", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--title-evals", type=int, default=30)
    parser.add_argument("--max-input-chars", type=int, default=500)
    parser.add_argument("--child", choices=["full", "lora"], help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--pairs", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print_result(child(args.child, args.base, args.pairs, args.out, args))
        return
    warcs = [str(w) for w in existing_files(args.warcs)]
    work = Path(args.work)
    import torch

    torch.set_num_threads(args.threads)
    base, pairs = prepare(warcs, work, args)
    results = {}
    for method in ("full", "lora"):
        child_args = ["--child", method, "--base", base, "--pairs", pairs, "--out", work / method, *sys.argv[1:]]
        results[method] = run_json(module_command("benchmarks.finetune_compare", child_args))
    full, lora = results["full"], results["lora"]
    mem = "peak_cuda_mb" if "peak_cuda_mb" in full else "peak_rss_mb"
    keys = ["val_loss", "base_val_loss", "title_exact_match", "seconds", mem]
    out = {
        "benchmark": "finetune_compare",
        "device": args.device,
        "steps": args.steps,
        "batch": args.batch,
        "lora_rank": args.rank,
        "model_params": full["params"]["total"],
        "train_examples": full["counts"]["train_examples"],
        "val_examples": full["counts"]["val_examples"],
        "full": dict({k: full.get(k) for k in keys}, trainable=full["params"]["trainable"], lr=full["learning_rate"]),
        "lora": dict({k: lora.get(k) for k in keys}, trainable=lora["params"]["trainable"], lr=lora["learning_rate"]),
        "ratio_lora_over_full": {
            "trainable": lora["params"]["trainable"] / full["params"]["trainable"],
            "val_loss": lora["val_loss"] / full["val_loss"],
            mem: lora[mem] / full[mem],
            "seconds": lora["seconds"] / full["seconds"],
        },
    }
    print_result(out)


if __name__ == "__main__":
    main()
