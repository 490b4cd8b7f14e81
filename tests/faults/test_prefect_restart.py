"""Fault 2 of issue 19: the Prefect server a run reports to is stopped and started again (same
port, same SQLite database) while `crawl2gpt run` runs against it (PREFECT_API_URL set).

The stop lands at a known point, read from the run's console: for the restart, as extract's
subflow ends, the run paused meanwhile (the next calls start filter's subflow, mostly through
Prefect clients that have not reached the server yet and so do not retry a refused connection:
the pipeline then waits for the server and runs the stage again); for the lost server, as
filter's subflow begins (its calls come before its part is done, so the loss is met inside filter).

Promise checked (docs/reliability.md):
  - down for seconds (a restart): the run waits for it (Prefect's retries, or the pipeline's own
    wait and a rerun of the stage); it exits 0, its data equals an undisturbed run's, and the
    server, once back, shows every flow run of it final: Completed, and Crashed for a stage
    subflow the restart cut off;
  - down past the client's retries (PREFECT_CLIENT_MAX_RETRIES=1 here, a ~2 s window, so the test
    need not wait the default's one to two minutes): exit 2 with one message naming the server
    and the stage, within seconds rather than a window per flow level; no traceback; finished
    stages unchanged, no half-written stage; after the restart the same command completes,
    skips what was finished, writes the same data, and marks the interrupted runs Crashed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from helpers.prefect_cli import UNTIL, Cli, flow_runs_of, our_lines, subflow_begins
from helpers.prefect_cli import server_and_reference as start_server_and_reference
from helpers.prefect_server import PrefectServer
from helpers.run_data import leftovers, run_data, stage_data
from pipeline.stage import read_manifest

# slow: a real server started, stopped and restarted around whole runs (minutes); `pytest -m faults` runs them
pytestmark = [pytest.mark.faults, pytest.mark.slow]


@pytest.fixture(scope="module")
def server_and_reference(sample_warc, tmp_path_factory) -> Iterator[tuple[PrefectServer, dict]]:
    yield from start_server_and_reference(sample_warc, tmp_path_factory)


def test_a_restart_within_the_retries_costs_nothing(server_and_reference, sample_warc, tmp_path):
    server, reference = server_and_reference
    run_dir = tmp_path / "restarted"
    cli = Cli(run_dir, sample_warc, server.env)  # Prefect's default retries
    cli.wait_for_line(f"Flow run 'extract-{run_dir.name}' - Finished in state Completed()")
    with cli.paused():  # so that filter's subflow starts while the server is down, not before
        server.stop()
    time.sleep(2)
    server.start()
    lines_while_down = list(cli.lines)
    code, console = cli.wait(timeout=240)

    assert code == 0, console[-3000:]
    # the run waited for the server: the next stage's subflow cannot start without it
    assert not any(subflow_begins("filter", run_dir.name) in line for line in lines_while_down)
    # Which call carries the wait varies: Prefect's retry (a client that reached the server
    # before), or, most often here, the pipeline's own wait and a second filter subflow (a fresh
    # client, which Prefect does not retry on a refused connection): logged as such.
    again = "answers again: running the filter stage again" in console
    assert our_lines(console) == []
    assert run_data(run_dir, UNTIL) == reference
    # every flow run final: the pipeline and one Completed subflow per stage, and the filter
    # subflow the restart cut off Crashed, next to the one that ran the stage again
    runs = flow_runs_of(server, run_dir.name)
    assert runs == {
        "pipeline-restarted": ["COMPLETED"],
        "extract-restarted": ["COMPLETED"],
        "filter-restarted": runs["filter-restarted"],
        "dedup-restarted": ["COMPLETED"],
    }, runs
    assert sorted(runs["filter-restarted"]) in (
        (["COMPLETED"], ["COMPLETED", "CRASHED"]) if again else (["COMPLETED"],)
    ), runs


def test_a_server_gone_past_the_retries_stops_with_one_message_and_a_rerun_finishes(
    server_and_reference, sample_warc, tmp_path
):
    server, reference = server_and_reference
    run_dir = tmp_path / "lost"
    env = {**server.env, "PREFECT_CLIENT_MAX_RETRIES": "1"}
    cli = Cli(run_dir, sample_warc, env)
    cli.wait_for_line(subflow_begins("filter", run_dir.name))  # its first API calls are behind it, not its part
    server.stop()
    stopped = time.time()
    code, console = cli.wait(timeout=120)
    seconds_to_message = time.time() - stopped
    try:
        assert code == 2, console[-3000:]
        ours = our_lines(console)
        assert len(ours) == 2 and ours[0].startswith("crawl2gpt: PrefectServerLostError"), ours
        assert ours[1] == (
            f"crawl2gpt: error: the Prefect server at {server.api} stopped answering during the filter stage; "
            "finished stages are kept. Start the server and rerun the same command: up-to-date stages are skipped."
        )
        assert console.rstrip().splitlines()[-1] == ours[1]  # the last thing the user reads
        assert "Traceback" not in console
        # one ~2 s window, then everything else fails at once (before: one window per flow level)
        assert seconds_to_message < 30, seconds_to_message
        assert stage_data(run_dir, "extract") == reference["extract"]
        assert not (run_dir / "filter").exists() and leftovers(run_dir) == []
        extract_finished = read_manifest(run_dir / "extract")["finished_at"]
    finally:
        server.start()

    rerun = Cli(run_dir, sample_warc, env)
    code, console = rerun.wait(timeout=240)
    assert code == 0, console[-3000:]
    assert run_data(run_dir, UNTIL) == reference
    assert read_manifest(run_dir / "extract")["finished_at"] == extract_finished  # skipped, not redone
    # the rerun's runs Completed; the interrupted ones, which could not report, marked Crashed by it
    runs = flow_runs_of(server, run_dir.name)
    assert sorted(runs["pipeline-lost"]) == sorted(runs["filter-lost"]) == ["COMPLETED", "CRASHED"], runs
    assert runs["extract-lost"] == ["COMPLETED", "COMPLETED"] and runs["dedup-lost"] == ["COMPLETED"], runs
