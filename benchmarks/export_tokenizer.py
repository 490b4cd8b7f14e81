"""Exported tokenizer vs our SentencePiece model: same ids on real text? And how fast is each?

The tokenizer stage's own training (pipeline.tokens.tokenizer.train, the run's settings: BPE, byte
fallback, identity normalization, split digits) on the shared sample WARCs' main text (the
extract stage's output in every language: the English prescreen off; cached under .bench/), at each
--vocab size; model/hf_tokenizer.py converts it to a `tokenizers` tokenizer.json. Both then encode

  the WARCs' documents (the text the tokenizer was trained on), and
  --sentences: 200 sentences in each of 75 languages (scripts the sample barely has: byte fallback)

and every text's ids are compared, and decoded back. Peer timing in the same run: SentencePiece's
batch encode and `tokenizers`' encode_batch, both on all cores (hf_over_sp < 1: tokenizers is faster).
Last line: one JSON object.

    python -m benchmarks.export_tokenizer [WARC ...] [--vocab 8000 32000]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks.harness import BENCH_DIR, SENTENCES, add_warcs_argument, print_result, timed

CACHE = BENCH_DIR / "export_tokenizer"


def corpus(warcs: list[str]):
    """The extract stage's folder for the WARCs, every language kept, and its texts."""
    import pyarrow.parquet as pq

    from crawl2gpt.config import RunConfig
    from pipeline.extract.stage import EXTRACT
    from pipeline.stage import run_stage, stage_parts

    folder = CACHE / "extract"
    run_stage(
        EXTRACT, warcs, folder, RunConfig().with_overrides(["extract.language_prescreen=false"])
    )  # skipped when cached
    return folder, [
        t for p in stage_parts(folder) for t in pq.read_table(p, columns=["text"]).column("text").to_pylist() if t
    ]


def compare(sp, tokenizer, texts: list[str]) -> dict:
    with timed() as sp_clock:
        want = sp.encode(texts, num_threads=-1)
    with timed() as hf_clock:
        got = [e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=False)]
    sp_seconds, hf_seconds = sp_clock.wall_s, hf_clock.wall_s
    same_ids = sum(a == b for a, b in zip(want, got))
    same_text = sum(tokenizer.decode(ids, skip_special_tokens=False) == sp.decode(ids) for ids in want)
    return {
        "texts": len(texts),
        "same_ids": same_ids,
        "same_decoded_text": same_text,
        "tokens": sum(map(len, want)),
        "sp_seconds": round(sp_seconds, 3),
        "hf_seconds": round(hf_seconds, 3),
        "hf_over_sp": round(hf_seconds / sp_seconds, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_warcs_argument(parser)
    parser.add_argument("--sentences", type=Path, default=SENTENCES, help="lang<TAB>sentence lines")
    parser.add_argument("--vocab", type=int, nargs="+", default=[8000, 32000])
    args = parser.parse_args()

    import sentencepiece as spm

    from crawl2gpt.config import RunConfig
    from model.hf_tokenizer import build_tokenizer
    from pipeline.stage import stage_parts
    from pipeline.tokens.tokenizer import MODEL, train

    extract, documents = corpus([str(w) for w in args.warcs])
    lines = open(args.sentences, encoding="utf-8").read().splitlines()[1:]  # after the lang<TAB>sentence header
    sentences = [line.split("\t", 1)[-1] for line in lines]
    results = {}
    for vocab in args.vocab:
        with tempfile.TemporaryDirectory() as tmp:
            with timed() as trained:
                train(stage_parts(extract), Path(tmp), RunConfig().with_overrides([f"tokenizer.vocab_size={vocab}"]))
            sp = spm.SentencePieceProcessor(model_file=str(Path(tmp) / MODEL))
            with timed() as converted:
                tokenizer = build_tokenizer(Path(tmp) / MODEL)
        results[vocab] = {
            "train_seconds": round(trained.wall_s, 2),
            "convert_seconds": round(converted.wall_s, 3),
            "documents": compare(sp, tokenizer, documents),
            "sentences": compare(sp, tokenizer, sentences),
        }
        for name in ("documents", "sentences"):
            r = results[vocab][name]
            print(
                f"vocab {vocab:>6} {name:<9} {r['same_ids']:>6}/{r['texts']} same ids, "
                f"{r['same_decoded_text']:>6} same text, "
                f"{r['tokens']:>9} tokens; sentencepiece {r['sp_seconds']:.2f}s, tokenizers {r['hf_seconds']:.2f}s"
            )
    print_result({"benchmark": "export_tokenizer", "vocab": results})


if __name__ == "__main__":
    main()
