from pathlib import Path

import pytest
import yaml

from pipeline.config import RunConfig, config_slice
from pipeline.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_the_published_ones():
    cfg = RunConfig()
    assert cfg.filter.gopher_quality.min_doc_words == 50  # Gopher
    assert cfg.filter.gopher_repetition.dup_line_frac == 0.3  # Gopher table A1
    assert cfg.filter.c4.min_num_sentences == 5  # C4
    assert cfg.filter.fineweb.short_line_thr == 0.67  # FineWeb
    assert cfg.filter.language.min_score == 0.65 and cfg.filter.language.languages == ["en"]  # FineWeb
    assert (cfg.dedup.bands, cfg.dedup.rows, cfg.dedup.ngram) == (14, 8, 5)  # FineWeb
    assert cfg.dedup.num_perm == 112


def test_yaml_round_trip_and_overrides(tmp_path):
    cfg = RunConfig.load(ROOT / "configs" / "demo.yaml", ["train.max_steps=7", "filter.language.languages=[en, fr]"])
    assert cfg.train.max_steps == 7 and cfg.filter.language.languages == ["en", "fr"]
    cfg.write(tmp_path / "config.yaml")
    again = RunConfig.from_yaml(tmp_path / "config.yaml")
    assert again == cfg


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["filter.language.min_score=2"], "min_score"),
        (["filter.gopher_quality.min_doc_wordz=3"], "unknown config key"),
        (["nosuchsection.x=1"], "no config section"),
        (["train.n_embd=100", "train.n_head=3"], "divisible"),
        (["justtext"], "section.field=value"),
    ],
)
def test_invalid_values_fail_before_work(overrides, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig().with_overrides(overrides)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        RunConfig.from_yaml(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("filter: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        RunConfig.from_yaml(tmp_path / "bad.yaml")
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump({"filtr": {}}))
    with pytest.raises(ConfigError, match="filtr"):
        RunConfig.from_yaml(tmp_path / "typo.yaml")


def test_dedup_backend_does_not_change_its_fingerprint():
    a = config_slice(RunConfig(), "dedup")
    b = config_slice(RunConfig().with_overrides(["dedup.backend=redis"]), "dedup")
    assert a == b
