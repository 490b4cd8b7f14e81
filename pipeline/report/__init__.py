"""The quality report of a shards folder (report.html, report.json, PNG plots) and run comparison.

build.py       the report: write / load / summarize it, which plots it has
shards_scan.py what the shards hold, from one streaming pass over them
upstream.py    what each stage behind the shards removed, from their manifests
filter.py      the filter stage through its stored columns: each threshold's effect, examples
thresholds.py  every filter threshold as data: rule, signal column, which side fails
dedup.py       the dedup stage's largest clusters, read from its rejects
excerpts.py    text excerpts of a few chosen rows, read without holding other documents' text
page.py        the report as a page and as markdown, from one outline
plots.py       PNG plots (matplotlib's object API)
compare.py     `crawl2gpt report --compare`: which documents moved between two runs
"""
