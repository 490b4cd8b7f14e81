"""What a user sees when `crawl2gpt` fails: one short message last, exit code 2, no traceback.

Real subprocess runs of the installed `crawl2gpt` command, each with the temporary Prefect server
a user gets (PREFECT_API_URL unset) in a PREFECT_HOME of this module, and no PREFECT_* variable
from the calling shell (so the CLI's own defaults are what is tested). A Prefect-backed run costs
10-20 s on a 2-core machine, most of it the temporary server's start: this module makes one such
run. The empty-output runs check the console, not the server, so they use the session's server
(as a user with PREFECT_API_URL set does).
"""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crawl2gpt.config import RunConfig
from empty_warcs import GOPHER_DROPPED_URLS, write_sample_subset
from flows.cli import build_parser, main
from flows.failures import CONSOLE_HANDLER, ERROR_LOG, TELEMETRY

CLI = Path(sys.executable).with_name("crawl2gpt")
VOCAB_MESSAGE = re.compile(
    r"^crawl2gpt: error: tokenizer\.vocab_size=32000 is larger than the sample supports \(\d+ bytes, \d+ documents\): "
    r"lower tokenizer\.vocab_size to <= \d+ or give the stage more text"
)


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory) -> dict[str, str]:
    """The environment of a user who set nothing for Prefect, with this module's own PREFECT_HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    return env


@pytest.fixture(scope="module")
def migrated_cli_env(cli_env) -> dict[str, str]:
    """The same, its database migrated once here, as a user's ~/.prefect already is, so the timed
    run does not pay for it."""
    subprocess.run(
        [Path(sys.executable).with_name("prefect"), "server", "database", "upgrade", "-y"],
        env=cli_env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return cli_env


def crawl2gpt(*args: str, env: dict[str, str], timeout: float = 600) -> tuple[int, list[str], float]:
    """(exit code, output lines with stderr and stdout interleaved as a terminal shows them, seconds)."""
    started = time.monotonic()
    done = subprocess.run(
        [str(CLI), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout
    )
    return done.returncode, done.stdout.splitlines(), time.monotonic() - started


# --------------------------------------------------------------------------- before Prefect starts


def test_missing_input_fails_in_under_3_s_with_at_most_5_lines(cli_env, tmp_path):
    missing = tmp_path / "CC-MAIN-missing.warc.gz"
    code, lines, seconds = crawl2gpt("run", "--input", str(missing), "--workdir", str(tmp_path / "run"), env=cli_env)
    assert code == 2 and seconds < 3 and len(lines) <= 5, (code, seconds, lines)
    assert lines[-1] == f"crawl2gpt: error: input not found: {missing}; check the path"
    assert not any("Traceback" in line or "temporary server" in line for line in lines)
    assert not (tmp_path / "run").exists()  # a failed preflight leaves no run folder behind


def test_verbose_prints_the_traceback_and_stage_inputs_are_checked_too(cli_env, tmp_path):
    missing = tmp_path / "extract"
    code, lines, seconds = crawl2gpt(
        "stage", "filter", "--input", str(missing), "--output", str(tmp_path / "filter"), "--verbose", env=cli_env
    )
    assert code == 2 and seconds < 3
    assert "Traceback (most recent call last):" in lines
    assert lines[-1] == f"crawl2gpt: error: input not found: {missing}; check the path"


def test_telemetry_is_off_unless_the_user_set_it(monkeypatch, tmp_path):
    for name in (TELEMETRY, CONSOLE_HANDLER):
        monkeypatch.delenv(name, raising=False)
    assert main(["run", "--input", str(tmp_path / "missing.warc.gz"), "--workdir", str(tmp_path / "run")]) == 2
    assert os.environ[TELEMETRY] == "false" and os.environ[CONSOLE_HANDLER] == "flows.console.OwnErrorsConsoleHandler"
    monkeypatch.setenv(TELEMETRY, "true")
    main(["--verbose", "run", "--input", str(tmp_path / "missing.warc.gz"), "--workdir", str(tmp_path / "run")])
    assert os.environ[TELEMETRY] == "true"
    # ... and Prefect reads the variable as the CLI leaves it (a fresh process: settings are read at import)
    check = "from prefect.settings import get_current_settings as s; print(s().server.analytics_enabled)"
    env = {k: v for k, v in os.environ.items() if k != TELEMETRY}
    for value, expected in ((None, "False"), ("true", "True")):
        run_env = env if value is None else {**env, TELEMETRY: value}
        code = f"from flows.failures import prepare_environment; prepare_environment(False); {check}"
        out = subprocess.run([sys.executable, "-c", code], env=run_env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == expected


# --------------------------------------------------------------------------- help texts


def all_help_texts(parser: argparse.ArgumentParser) -> dict[str, str]:
    """The --help text of `parser` and of every subcommand below it, by command path."""
    texts = {parser.prog: parser.format_help()}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                texts.update(all_help_texts(sub))
    return texts


def test_every_set_example_in_the_help_is_a_real_config_key():
    texts = all_help_texts(build_parser())
    assert {"crawl2gpt run", "crawl2gpt finetune sft", "crawl2gpt finetune classify"} <= set(texts)
    examples = {
        (prog, m)
        for prog, text in texts.items()
        for m in re.findall(r"--set\s+([a-z][\w.]*=[^\s,;)\]]+)", re.sub(r"\s+", " ", text))
    }  # not KEY=VALUE
    assert ("crawl2gpt finetune", "finetune.method=lora") in examples  # the sft line of `finetune --help`
    for _, example in sorted(examples):
        RunConfig().with_overrides([example])  # raises ConfigError on an unknown key or a bad value
    assert not any("lora.enabled" in text for text in texts.values())


def test_label_column_help_says_it_applies_to_filter_folders():
    text = re.sub(r"\s+", " ", all_help_texts(build_parser())["crawl2gpt finetune classify"])
    assert "with a filter folder as --data" in text and "label field of JSONL" not in text


# --------------------------------------------------------------------------- through Prefect
# Whole runs through the CLI (extract .. dedup of the sample; ~25 s of CPU each): make test-slow.
# make test keeps the same messages from the stages (tests/test_tokenizer.py, tests/test_empty_stages.py).


@pytest.mark.slow
def test_default_config_on_the_sample_ends_with_the_vocabulary_message(migrated_cli_env, sample_warc, tmp_path):
    cli_env = migrated_cli_env
    run = tmp_path / "vocab-run"  # flow runs are named after the run folder: pipeline-vocab-run
    load_before = os.getloadavg()[0]
    code, lines, seconds = crawl2gpt("run", "--input", str(sample_warc), "--workdir", str(run), env=cli_env)
    print(f"default config on the sample: exit {code} in {seconds:.1f} s, {len(lines)} lines; last: {lines[-1]}")
    assert code == 2
    assert VOCAB_MESSAGE.match(lines[-1]), lines[-3:]
    assert lines[-2] == f"crawl2gpt: TokenizerError (full traceback in {run / ERROR_LOG})"
    assert not any("Traceback" in line or line.startswith("  File ") for line in lines), "\n".join(lines)
    assert not any("telemetry" in line.lower() for line in lines)
    log = (run / ERROR_LOG).read_text()
    assert (
        "Traceback (most recent call last):" in log
        and "pipeline.errors.TokenizerError: tokenizer.vocab_size=32000" in log
    )
    # The UI still shows the runs failed, with the traceback in their logs (only the console is brief).
    with sqlite3.connect(Path(cli_env["PREFECT_HOME"]) / "prefect.db") as db:
        states = dict(db.execute("SELECT name, state_type FROM flow_run WHERE name LIKE '%-vocab-run'"))
        logged = db.execute(
            "SELECT count(*) FROM log JOIN flow_run ON log.flow_run_id = flow_run.id "
            "WHERE flow_run.name = 'pipeline-vocab-run' AND log.message LIKE '%Traceback (most recent call last)%'"
        ).fetchone()[0]
    assert states["pipeline-vocab-run"] == states["tokenizer-vocab-run"] == "FAILED" and logged == 1
    busy = max(load_before, os.getloadavg()[0])
    if seconds >= 30 and busy > (os.cpu_count() or 1):
        pytest.skip(
            f"took {seconds:.1f} s on an oversubscribed machine (load {busy:.1f} on {os.cpu_count()} cores): "
            "the 30 s figure is for a machine running this command alone"
        )
    assert seconds < 30, f"took {seconds:.1f} s"


@pytest.mark.slow
def test_a_warc_whose_every_page_is_filtered_out(prefect_api, sample_warc, tmp_path):
    from prefect.settings import PREFECT_API_URL

    warc = write_sample_subset(sample_warc, GOPHER_DROPPED_URLS, tmp_path / "all-dropped.warc.gz")
    run = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_API_URL=PREFECT_API_URL.value(), PREFECT_HOME=str(tmp_path / "prefect-home"))
    code, lines, _ = crawl2gpt("run", "--input", str(warc), "--workdir", str(run), "--until", "filter", env=env)
    assert code == 0, "\n".join(lines)
    assert any(re.match(r"[│|] filter +[│|] +2 [│|] 0 \(empty output\)", line) for line in lines), "\n".join(lines)
    code, lines, _ = crawl2gpt("run", "--input", str(warc), "--workdir", str(run), "--until", "shards", env=env)
    assert code == 2
    assert lines[-1].startswith(
        "crawl2gpt: error: filter kept 0 of 2 documents (top reasons: gopher_quality.min_alpha_words_ratio 1, "
        "gopher_repetition.dup_5gram_char_frac 1): the tokenizer has no text to train on"
    ), lines[-3:]
    assert not any("Traceback" in line for line in lines)


def test_a_lost_servers_message_is_the_last_line_prefect_services_print():
    """After PrefectServerLostError's message, Prefect's events worker must not log its failed
    sends (CI once saw "Service 'EventsWorker' failed to process item ..." after it). Prefect's
    internal loggers ignore logger levels, so this runs the real ones in a fresh process."""
    script = """
import logging, prefect, prefect.events.clients
from flows.failures import quiet_prefect_services
services, websocket = logging.getLogger("prefect._internal.concurrency"), logging.getLogger("prefect.events.clients")
services.error("Service %r failed before", "EventsWorker")
websocket.warning("Unable to connect before")
quiet_prefect_services()
services.error("Service %r failed after", "EventsWorker")
websocket.warning("Unable to connect after")
"""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "failed before" in done.stderr and "connect before" in done.stderr  # Prefect's console shows them...
    assert "after" not in done.stderr  # ...until the server is reported lost
