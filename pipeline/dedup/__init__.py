"""Deduplication: exact (hash of normalized text), then near (MinHash + LSH bands), keep one per cluster.

shingles.py      text normalization, word n-gram shingle hashes, the exact-dedup text hash
minhash.py       per-document MinHash signatures (datasketch batch API), stored as bytes
lsh.py           LSH banding with datasketch's MinHashLSH (memory or Redis storage), S-curve, pair rules
redis_keys.py    the Redis backend's key namespace per stage attempt, clean-up, Redis failures as RedisIndexError
redis_owners.py  owner records: which attempt wrote which keys, their lease (dedup.redis_ttl_h), deleting them
redis_clean.py   `crawl2gpt dedup-clean`: delete the keys of killed attempts on a folder, or of expired ones
memory.py        the in-memory / Redis backend: one index of all parts in one process
buckets.py       sorted (hash, document) bucket files, read one hash range at a time
rowstore.py      per-document arrays on disk (shingles, signatures), read back with one pread each
disk.py          the disk backend: exact, band and verification tasks over bucket files
union_find.py    connected components; the root is always the lowest index = earliest document
output.py        kept rows and rejects per part, the same writer for every backend
config.py        the `dedup:` config section (DedupConfig)
settings.py      its checks before any work (bands, shingle size, Redis answering), for the plan and preflight
stage.py         the `dedup` stage (DEDUP): signatures per part, then the backend's phases
"""
