"""What knows the whole run: the list of stages (train included), the assembled run config and
the DAG loop that the plain runner, the CLI and the Prefect flows all drive.

It sits above both libraries: `pipeline/` (the data stages and the shared core) and `model/`
(which may import pipeline/) never import it; `flows/` does.
"""
