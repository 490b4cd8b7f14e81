"""The generate command's arguments, one definition for `crawl2gpt generate` and
`python -m model.generate` (model/generate.py runs both).

Torch-free, so building crawl2gpt's parser stays cheap. The defaults are the ones `crawl2gpt
generate` has always had (the README's sample was printed with them): temperature 0.8, the 50
likeliest tokens, then nucleus sampling at 0.95; model/generate.py's generate_text uses them too.
"""

from __future__ import annotations

import argparse

MAX_NEW_TOKENS, TEMPERATURE, TOP_K, TOP_P, SEED, DEVICE = 100, 0.8, 50, 0.95, 1337, "auto"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ckpt", required=True, metavar="PATH", help="a train folder, its checkpoints/ folder or one checkpoint"
    )
    parser.add_argument("--prompt", default="", help="text to continue")
    parser.add_argument("--max-new-tokens", type=int, default=MAX_NEW_TOKENS)
    parser.add_argument("--temperature", type=float, default=TEMPERATURE, help="0 picks the likeliest token (greedy)")
    parser.add_argument("--top-k", type=int, default=TOP_K, help="sample among the k likeliest tokens (0: all)")
    parser.add_argument(
        "--top-p", type=float, default=TOP_P, help="then among the fewest covering this probability (1: all)"
    )
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--device", default=DEVICE, help="auto (the GPU if there is one, in bf16), cpu, cuda or cuda:N")
