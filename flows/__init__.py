"""The Prefect layer: tasks and flows over pipeline/ and model/, plus the `crawl2gpt` CLI.

Nothing here holds business logic: a flow maps one task per input part over a stage's
`run_part`, calls its `finish`, and publishes the stage's stats as artifacts.
"""
