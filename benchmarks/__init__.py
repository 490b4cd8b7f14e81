"""Benchmarks of crawl2gpt against its peers; each runs as `python -m benchmarks.NAME` from the repository root
(docs/benchmarks.md). Not part of the installed package."""
