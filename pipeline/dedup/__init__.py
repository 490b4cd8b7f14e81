"""Deduplication: exact (hash of normalized text), then near (MinHash + LSH bands), keep one per cluster.

  shingles.py    text normalization, word n-gram shingle hashes, the exact-dedup text hash
  minhash.py     per-document MinHash signatures (datasketch batch API), stored as bytes
  lsh.py         LSH banding over all parts (datasketch MinHashLSH, memory or Redis storage), S-curve
  union_find.py  connected components; the root is always the lowest index = earliest document
  stage.py       the `dedup` stage (DEDUP): signatures per part in parallel, clustering in finish()
"""
