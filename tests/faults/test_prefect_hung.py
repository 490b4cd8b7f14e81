"""Item 3 of issue 24: the Prefect server a run reports to hangs (SIGSTOP: its port still accepts
connections, nothing answers) while `crawl2gpt run` runs against it (PREFECT_API_URL set).

The sample is cut into 3 WARC files run with workers=2, so the stages' parts run in a pool of
worker processes. The hang lands, read from the run's console, as the first of filter's parts is
reported finished: the others are still to report, the pool is up and extract is finished.
PREFECT_CLIENT_MAX_RETRIES=3 makes the window the run waits for the
server 2^4 - 2 = 14 s (62 s by default), so the test need not wait a minute per case.

Promise checked (docs/reliability.md, flows/server_hung.py):
  - the server wakes (SIGCONT) within the window: the run carries on; it exits 0 with no message
    of ours, its data equals an undisturbed run's, and the server shows every flow run Completed;
  - the server stays hung: the run ends between the window and the window + 4 s (+ the time to
    write the message) after the hang, exit 2, with one message naming the server's URL and the
    fix, no traceback on the console, none of its child processes left, finished stages unchanged;
    once the server is resumed, the same command completes, removes the killed stage's temporary
    folder, skips what was finished and writes the undisturbed run's data.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import psutil
import pytest

from helpers.fault_runs import split_warc
from helpers.prefect_cli import SETTINGS, UNTIL, Cli, flow_runs_of, our_lines
from helpers.prefect_cli import server_and_reference as start_server_and_reference
from helpers.prefect_server import PrefectServer
from helpers.run_data import leftovers, run_data, stage_data
from pipeline.stage import read_manifest

# slow: a real server and three runs against it (~2 min); `pytest -m faults` runs them
pytestmark = [pytest.mark.faults, pytest.mark.slow]
RETRIES = 3
WINDOW_S = 2 ** (RETRIES + 1) - 2  # flows/server_lost.py retry_window_s
WATCHDOG_SLACK_S = 4  # flows/server_hung.py: 2 x PROBE_EVERY_S + PROBE_TIMEOUT_S
EXIT_SLACK_S = 6  # killing the workers and writing the message, on a loaded 2-core box
RUN_SETTINGS = [*SETTINGS, "workers=2"]
FIRST_FILTER_PART_DONE = ("Task run 'filter:", "Finished in state Completed()")


@pytest.fixture(scope="module")
def warcs(sample_warc, tmp_path_factory) -> list:
    return split_warc(sample_warc, tmp_path_factory.mktemp("warcs"), pieces=3)


@pytest.fixture(scope="module")
def server_and_reference(warcs, tmp_path_factory) -> Iterator[tuple[PrefectServer, dict]]:
    yield from start_server_and_reference(warcs, tmp_path_factory, RUN_SETTINGS)


def hung_env(server: PrefectServer) -> dict[str, str]:
    return {**server.env, "PREFECT_CLIENT_MAX_RETRIES": str(RETRIES)}


def processes_below(pid: int, until: float) -> list[psutil.Process]:
    """Every process started below `pid` (seen every 0.2 s) until it exits or `until`."""
    seen: dict[int, psutil.Process] = {}
    while time.time() < until:
        try:
            seen.update((p.pid, p) for p in psutil.Process(pid).children(recursive=True))
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.2)
    return list(seen.values())


def test_a_server_that_wakes_within_the_window_costs_nothing(server_and_reference, warcs, tmp_path):
    server, reference = server_and_reference
    run_dir = tmp_path / "woken"
    cli = Cli(run_dir, warcs, hung_env(server), RUN_SETTINGS)
    cli.wait_for_line(*FIRST_FILTER_PART_DONE)
    server.pause()
    try:
        time.sleep(WINDOW_S / 2)
        assert cli.process.poll() is None
    finally:
        server.resume()
    code, console = cli.wait(timeout=240)

    assert code == 0, console[-3000:]
    assert our_lines(console) == []
    assert "answers again" not in console  # no stage was run twice: the waiting requests got their answers
    assert run_data(run_dir, UNTIL) == reference
    runs = flow_runs_of(server, run_dir.name)
    assert runs == {f"{name}-woken": ["COMPLETED"] for name in ("pipeline", "extract", "filter", "dedup")}, runs


def test_a_server_hung_past_the_window_ends_the_run_with_one_message_and_a_rerun_finishes(
    server_and_reference, warcs, tmp_path
):
    server, reference = server_and_reference
    run_dir = tmp_path / "hung"
    cli = Cli(run_dir, warcs, hung_env(server), RUN_SETTINGS)
    cli.wait_for_line(*FIRST_FILTER_PART_DONE)
    server.pause()
    hung = time.time()
    try:
        children = processes_below(cli.process.pid, until=hung + 120)  # the part workers
        seconds_to_exit = time.time() - hung
        code, console = cli.wait(timeout=10)
        assert code == 2, console[-3000:]
        ours = our_lines(console)
        assert len(ours) == 2 and ours[0].startswith("crawl2gpt: PrefectServerLostError (full traceback in "), ours
        assert re.fullmatch(
            rf"crawl2gpt: error: the Prefect server at {re.escape(server.api)} accepted connections but answered "
            r"nothing for \d+ s during the filter stage \(its process is stopped or hung\); finished stages are kept\. "
            r"Restart the server \(or resume its process: kill -CONT\) and rerun the same command: "
            r"up-to-date stages are skipped\.",
            ours[1],
        ), ours[1]
        assert console.rstrip().splitlines()[-1] == ours[1]  # the last thing the user reads
        assert "Traceback" not in console
        assert WINDOW_S <= seconds_to_exit <= WINDOW_S + WATCHDOG_SLACK_S + EXIT_SLACK_S, seconds_to_exit
        assert children, "no worker process ran: the hang did not land while the part pool was up"
        assert not [p.pid for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert "where the run was waiting:" in (run_dir / "crawl2gpt-error.log").read_text()
        assert stage_data(run_dir, "extract") == reference["extract"]
        assert not (run_dir / "filter").exists()
        killed_stage_leftovers = leftovers(run_dir)  # the killed filter's temporary folder, never read as a stage
        extract_finished = read_manifest(run_dir / "extract")["finished_at"]
    finally:
        server.resume()

    rerun = Cli(run_dir, warcs, hung_env(server), RUN_SETTINGS)
    code, console = rerun.wait(timeout=240)
    assert code == 0, console[-3000:]
    assert run_data(run_dir, UNTIL) == reference
    assert read_manifest(run_dir / "extract")["finished_at"] == extract_finished  # skipped, not redone
    assert leftovers(run_dir) == []
    runs = flow_runs_of(server, run_dir.name)
    assert runs["dedup-hung"] == ["COMPLETED"] and sorted(runs["pipeline-hung"])[0] == "COMPLETED", runs
    print(
        f"\nhung server: exit 2 {seconds_to_exit:.1f} s after SIGSTOP (window {WINDOW_S} s); "
        f"{len(children)} worker(s) killed; left {killed_stage_leftovers} for the rerun to remove; "
        f"flow runs after the rerun: {runs}"
    )
