"""Text -> tokens: the `tokenizer` stage (SentencePiece BPE) and the `shards` stage (token shards).

tokenizer.py  the tokenizer stage (TOKENIZER) and loading its model
shards.py     the shards stage (SHARDS): encode documents into train/val Parquet shards
config.py     the `tokenizer:` and `shards:` config sections
"""
