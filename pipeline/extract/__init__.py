"""The `extract` stage: WARC files -> Parquet documents (main text, title, date; language and quality pre-screens).

stage.py         the stage (EXTRACT): per record, cheapest test first; one part per input file
config.py        its settings (the `extract:` section: extraction, engines, pre-screens, normalization)
sources.py       where WARC files come from: paths, globs, folders, URLs, s3://, a crawl id
warc.py          WARC records out of a (gzipped) WARC file, surviving damage
http_response.py the HTTP status, headers and body of a response record
main_text.py     HTML payload -> main text, title and date (trafilatura or an engine), charset, time limit
html_tree.py     the lxml tree trafilatura reads, with a faster parser
link_density.py  elements and extracted lines that are mostly link text
prescreen.py     skip full extraction for pages no kept language can pass
quality_prescreen.py  skip trafilatura for pages whose cheap text already fails the filter's floors
resiliparse_text.py   resiliparse's parse and text: extract.engine=resiliparse, the cheap text
tag_markers.py   marker characters before container, link and heading tags, so resiliparse's text shows them
nesting_limit.py refuse pages nested so deep that resiliparse's main-content pass would run for minutes
marked_text.py   counts at any offset of the marked text: text, link text, lines, containers (numpy)
line_shapes.py   the marked text's lines: which are kept, their words, end punctuation, bullets (numpy)
page_lines.py    resiliparse's text line by line, with what each line sits in (vectorised features)
line_filter.py   extract.engine=fast: those lines through a small learned filter (line_filter.json)
normalize.py     extracted text -> clean text (mojibake, NFC, controls, whitespace, calls to action)
"""
