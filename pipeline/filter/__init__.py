"""The `filter` stage (stage.py): quality filters (Gopher, C4, FineWeb), language ID, a fastText
quality model (quality_model.py; trained by quality_train.py) and PII masking, one rule family per file.

Every family exposes `signals(text, cfg) -> dict[str, float]` (pure, never raises on odd text)
and `check(signals, cfg) -> str | None` (the first failing threshold). `pipeline.filter.stage`
runs them in FineWeb's order and stores every signal as a column.

config.py holds the `filter:` config section (one class per family, the published defaults).
"""
