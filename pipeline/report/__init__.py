"""The quality report of a shards folder (report.html, report.json, PNG plots) and run comparison.

build.py       scan the shards, gather what each stage removed, write / load / summarize the report
filter.py      the filter stage through its stored columns: each threshold's effect, examples
thresholds.py  every filter threshold as data: rule, signal column, which side fails
dedup.py       the dedup stage's largest clusters, read from its rejects
excerpts.py    text excerpts of a few chosen rows, read without holding other documents' text
page.py        the report as a page and as markdown, from one outline
plots.py       PNG plots (matplotlib's object API)
compare.py     `crawl2gpt report --compare`: which documents moved between two runs
"""
