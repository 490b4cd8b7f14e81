"""crawl2gpt data pipeline: WARC -> documents -> filtered -> deduplicated -> token shards.

Plain Python; nothing here imports Prefect (the flows/ package wraps these functions).
"""

__version__ = "0.1.0"
