"""A setting that cannot work fails before the first stage, for every stage the run will reach:
one message naming the setting and the fix, exit 2, nothing written (issue 24, item 5).

Each stage's check lives beside the stage and its plan calls it too; pipeline/preflight.py and
model/preflight.py run those of the stages a run reaches (crawl2gpt/runner.py check_run), and
`crawl2gpt stage` / `train` run their one stage's before Prefect starts.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crawl2gpt.config import RunConfig
from crawl2gpt.runner import check_run, check_stage, run_pipeline
from flows.failures import ERROR_LOG
from helpers.corpus import write_stage
from pipeline.errors import ConfigError, InputError, TokenizerError

CLI = Path(sys.executable).with_name("crawl2gpt")
XX_MESSAGE = "crawl2gpt: error: filter.language.languages has codes lid.176 cannot name: ['xx']; use ISO 639-1 codes"


def closed_port() -> int:
    """A local port nothing listens on (refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def not_a_model(tmp_path: Path) -> Path:
    path = tmp_path / "tokenizer.model"
    path.write_text("this is a word list, not a SentencePiece model\n")
    return path


# One bad value per stage: (the stage that refuses it, overrides, error type, message); the run
# stops after that stage (--until), so each row also shows the check runs for the stages reached.
CASES = {
    "extract": (
        lambda tmp: ["filter.language.languages=[xx]"],
        ConfigError,
        r"filter.language.languages has codes lid.176 cannot name: \['xx'\]; use ISO 639-1 codes",
    ),
    "filter": (
        lambda tmp: ["filter.language.languages=[xx]", "extract.language_prescreen=false"],
        ConfigError,
        r"filter.language.languages has codes lid.176 cannot name: \['xx'\]",
    ),
    "dedup": (
        lambda tmp: ["dedup.backend=redis", f"dedup.redis_port={closed_port()}"],
        ConfigError,
        r"dedup.backend=redis but no Redis answers at 127.0.0.1:\d+ within 3 s .*start redis-server there",
    ),
    "tokenizer": (
        lambda tmp: [f"tokenizer.reuse={not_a_model(tmp)}"],
        TokenizerError,
        r"tokenizer.model is not a SentencePiece model .*retrain it",
    ),
    "train": (
        lambda tmp: ["train.device=cuda:99"],
        ConfigError,
        r"train.device='cuda:99' but (PyTorch .* sees no CUDA GPU|this machine has \d+ GPU)",
    ),
}
STAGE_BEFORE = {"extract": None, "filter": "extract", "dedup": "filter", "tokenizer": "dedup", "train": "shards"}


@pytest.mark.parametrize("stage", list(CASES))
def test_a_bad_value_of_each_stage_fails_before_the_first_stage(stage, tmp_path, sample_warc):
    overrides, error, message = CASES[stage]
    cfg = RunConfig().with_overrides(overrides(tmp_path))
    run = tmp_path / "run"
    started = time.monotonic()
    with pytest.raises(error, match=message):
        run_pipeline([str(sample_warc)], run, cfg, until=stage)
    print(f"{stage}: refused in {time.monotonic() - started:.2f} s")
    assert not run.exists()  # no run folder, so no stage folder and no config.yaml
    if STAGE_BEFORE[stage]:  # a run that stops before that stage is not refused for its settings
        check_run([str(sample_warc)], run, cfg, until=STAGE_BEFORE[stage])
    assert not run.exists()


def test_the_stage_plan_uses_the_same_check(tmp_path):
    """`crawl2gpt stage NAME` alone, and the plan of a stage run by other code, refuse the same value."""
    from crawl2gpt.stages import load_stage

    cfg = RunConfig().with_overrides(["filter.language.languages=[xx]"])
    for name in ("extract", "filter"):
        with pytest.raises(ConfigError, match="cannot name: \\['xx'\\]"):
            load_stage(name).plan([], cfg)
    with pytest.raises(TokenizerError, match="is not a SentencePiece model"):
        load_stage("tokenizer").plan([], RunConfig().with_overrides([f"tokenizer.reuse={not_a_model(tmp_path)}"]))


def test_shards_inputs_are_checked_before_the_stage_starts(tmp_path):
    """The shards stage's settings are all bounded by their types; what `stage shards` can get
    wrong is its input folders, refused before Prefect starts and before the output exists."""
    dedup = write_stage(tmp_path / "dedup", "dedup", [[]])
    output = tmp_path / "shards"
    with pytest.raises(InputError, match="exactly one tokenizer folder"):
        check_stage("shards", [str(dedup)], output, RunConfig())
    foreign = write_stage(tmp_path / "tokenizer", "tokenizer", [])
    not_a_model(foreign)
    with pytest.raises(TokenizerError, match="is not a SentencePiece model"):
        check_stage("shards", [str(dedup), str(foreign)], output, RunConfig())
    assert not output.exists()


def test_a_hung_redis_is_refused_within_the_short_wait(tmp_path, sample_warc):
    """A server that accepts the connection and never answers: one try of PREFLIGHT_REDIS_S, not
    redis-py's retries of dedup.redis_timeout_s (60 s by default)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        cfg = RunConfig().with_overrides(["dedup.backend=redis", f"dedup.redis_port={silent.getsockname()[1]}"])
        started = time.monotonic()
        with pytest.raises(ConfigError, match="no Redis answers .* within 3 s"):
            check_run([str(sample_warc)], tmp_path / "run", cfg, until="dedup")
        seconds = time.monotonic() - started
    print(f"hung Redis refused in {seconds:.2f} s")
    assert seconds < 3 + 5  # the 3 s wait, plus start-up slack on a loaded machine


def test_a_dask_scheduler_that_is_not_there_is_refused(tmp_path, sample_warc):
    cfg = RunConfig().with_overrides(["task_runner=dask", f"dask_address=tcp://127.0.0.1:{closed_port()}"])
    with pytest.raises(ConfigError, match="no Dask scheduler accepts connections there"):
        check_run([str(sample_warc)], tmp_path / "run", cfg, until="extract")


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["tokenizer.vocab_size=200"], "tokenizer.vocab_size=200 leaves no room for learned pieces"),
        (["tokenizer.normalization_rule_name=nfc"], "tokenizer.normalization_rule_name='nfc'"),
        (
            ["filter.gopher_quality.min_doc_words=500", "filter.gopher_quality.max_doc_words=100"],
            r"min_doc_words \(500\) is above max_doc_words \(100\)",
        ),
        (["filter.gopher_repetition.top_n_grams=[[0, 0.2]]"], "top_n_grams"),
        (["filter.fineweb.line_punct_thr=1.5"], "line_punct_thr=1.5"),
        (["train.positions=rope", "train.n_embd=36", "train.n_head=4"], "train.positions=rope needs an even head size"),
    ],
)
def test_values_no_data_can_pass_are_refused_with_the_config(overrides, message):
    """Checks on values alone are the config's own: they fail as the config loads, one line."""
    with pytest.raises(ConfigError, match=message) as caught:
        RunConfig().with_overrides(overrides)
    assert "\n" not in str(caught.value) and "errors.pydantic.dev" not in str(caught.value)


# --------------------------------------------------------------------------- the command line


def crawl2gpt(*args: str) -> tuple[int, list[str], float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    started = time.monotonic()
    done = subprocess.run(
        [str(CLI), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120
    )
    return done.returncode, done.stdout.splitlines(), time.monotonic() - started


def test_cli_refuses_an_unknown_language_code_before_extracting_and_writes_nothing(tmp_path, sample_warc):
    """The issue's case: the code used to be refused by the filter stage, after every input was
    extracted. Into a run folder that exists it writes nothing: not config.yaml, not a stage
    folder, not even the error log."""
    run = tmp_path / "run"
    (run / "extract").mkdir(parents=True)
    (run / "config.yaml").write_text("name: earlier\n")
    before = sorted((p.relative_to(run), p.stat().st_mtime_ns) for p in run.rglob("*"))
    code, lines, seconds = crawl2gpt(
        "run", "--input", str(sample_warc), "--workdir", str(run), "--set", "filter.language.languages=[xx]"
    )
    print(f"run --set filter.language.languages=[xx]: exit {code} in {seconds:.2f} s (load {os.getloadavg()[0]:.1f})")
    assert code == 2 and lines[-1].startswith(XX_MESSAGE), lines
    assert lines[-2] == "crawl2gpt: ConfigError (rerun with --verbose for the traceback)"
    assert not any("Traceback" in line or "temporary server" in line for line in lines)
    assert sorted((p.relative_to(run), p.stat().st_mtime_ns) for p in run.rglob("*")) == before
    assert not (run / ERROR_LOG).exists()
    assert seconds < 20  # about 1-2 s on an idle 2-core machine; generous for one shared by 8 agents


def test_train_command_refuses_its_settings_before_prefect_starts(tmp_path):
    """`crawl2gpt train` and `stage train` run check_stage before the flow: the device is checked
    without shards having to fit (the shards folder here holds none)."""
    shards = write_stage(tmp_path / "shards", "shards", [])
    output = tmp_path / "train"
    with pytest.raises(ConfigError, match=CASES["train"][2]):
        check_stage("train", [str(shards)], output, RunConfig().with_overrides(["train.device=cuda:99"]))
    assert not output.exists()
