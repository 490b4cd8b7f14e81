"""Shared test helpers, one module per kind of fixture data; test modules import from here and
never from each other.

  corpus.py         stage folders from the bundled sample WARC (extract, tokenizer) for shard/report tests
  dedup.py          filter-stage folders of planted near-duplicates, and reading a stage back
  finetune.py       a small trained run (extract .. train) on the bundled sample, cached per session
  model_shards.py   a shards folder from real web text (sample WARC + a small BPE), and tiny train settings
"""
