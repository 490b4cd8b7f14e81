"""Real inputs for the fine-tuning tests: documents of the bundled sample WARC, a tokenizer
trained on them by pipeline/tokenizer.py, and small GPT checkpoints in model/checkpoint.py's format."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import torch

from model.checkpoint import save_checkpoint
from model.gpt import GPT, GPTConfig
from pipeline.config import RunConfig
from pipeline.documents import DOCUMENT_SCHEMA, write_parquet

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_WARC = ROOT / "data" / "sample" / "CC-SAMPLE-A-00002.warc.gz"
SHARED_DATA = ROOT / "../shared/data"


def extract_sample(out: Path, warc: Path = SAMPLE_WARC) -> Path:
    """docs Parquet of the sample's HTML responses, extracted by pipeline/extract.py (as the extract stage does)."""
    from warcio.archiveiterator import ArchiveIterator

    from pipeline.config import ExtractConfig
    from pipeline.extract import decode_html, extract_main_text
    from pipeline.normalize import normalize_text

    cfg, rows = ExtractConfig(), []
    with open(warc, "rb") as fh:
        records = ArchiveIterator(fh)
        for rec in records:
            content_type = rec.http_headers.get_header("Content-Type") if rec.http_headers else None
            if rec.rec_type != "response" or "html" not in (content_type or ""):
                continue
            body = rec.content_stream().read()  # before get_record_offset, which moves the stream
            offset, url = records.get_record_offset(), rec.rec_headers.get_header("WARC-Target-URI")
            html, _ = decode_html(body, content_type)
            doc = extract_main_text(html, url, cfg)
            if doc is None:
                continue
            rows.append({"doc_id": rec.rec_headers.get_header("WARC-Record-ID"), "url": url, "domain": url.split("/")[2],
                         "warc_date": rec.rec_headers.get_header("WARC-Date"), "title": doc.title, "date": doc.date,
                         "source": warc.name, "offset": offset, "text": normalize_text(doc.text, cfg)})
    path = out / "part-00000.parquet"
    write_parquet(pa.Table.from_pylist(rows, schema=DOCUMENT_SCHEMA), path)
    return path


def train_tokenizer(parts: list[Path], out: Path, vocab_size: int = 1024) -> Path:
    from pipeline import tokenizer

    cfg = RunConfig().with_overrides([f"tokenizer.vocab_size={vocab_size}", "tokenizer.threads=1", "tokenizer.character_coverage=0.99"])
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.train(parts, out, cfg)
    return out / "tokenizer.model"


def make_checkpoint(out: Path, tokenizer_model: Path, seed: int = 0, pretrain_text: str | None = None,
                    pretrain_steps: int = 0, **config) -> Path:
    """A small GPT checkpoint with its tokenizer; optionally pretrained briefly on real text."""
    import shutil

    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(tokenizer_model))
    args = dict(vocab_size=sp.get_piece_size(), block_size=256, n_layer=2, n_head=2, n_embd=64, dropout=0.0)
    args.update(config)
    torch.manual_seed(seed)
    model = GPT(GPTConfig(**args))
    if pretrain_text and pretrain_steps:
        pretrain(model, sp.encode(pretrain_text), pretrain_steps, seed)
    path = save_checkpoint(out / "checkpoints", pretrain_steps, model, None,
                           {"model_config": model.config.to_dict(), "arch": "gpt", "eot_id": sp.eos_id()})
    shutil.copyfile(tokenizer_model, path / "tokenizer.model")
    return path


def pretrain(model: GPT, ids: list[int], steps: int, seed: int, batch: int = 16) -> list[float]:
    """Plain next-token training on random windows of one token stream (the train stage needs shards)."""
    data = torch.tensor(ids)
    T = model.config.block_size
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(steps):
        starts = torch.randint(0, len(data) - T - 1, (batch,), generator=gen)
        x = torch.stack([data[s : s + T] for s in starts])
        y = torch.stack([data[s + 1 : s + T + 1] for s in starts])
        _, loss = model(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss))
    return losses
