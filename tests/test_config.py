from pathlib import Path

import pytest
import yaml

from crawl2gpt.config import RunConfig
from crawl2gpt.stages import load_stage
from pipeline.errors import ConfigError
from pipeline.stage import stage_config

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
    dedup = load_stage("dedup")
    a = stage_config(dedup, RunConfig())
    b = stage_config(dedup, RunConfig().with_overrides(["dedup.backend=redis"]))
    assert a == b
    assert a != stage_config(dedup, RunConfig().with_overrides(["dedup.bands=20"]))


def test_a_stage_fingerprints_only_its_own_sections():
    # A new train setting must not rerun extract, a filter threshold must not rerun training.
    base, changed = RunConfig(), RunConfig().with_overrides(["train.max_steps=7", "finetune.max_steps=9"])
    for name in ("extract", "filter", "dedup", "tokenizer", "shards"):
        assert stage_config(load_stage(name), base) == stage_config(load_stage(name), changed), name
    tighter = RunConfig().with_overrides(["filter.c4.min_num_sentences=6"])
    assert stage_config(load_stage("filter"), base) != stage_config(load_stage("filter"), tighter)
    assert stage_config(load_stage("train"), base) == stage_config(load_stage("train"), tighter)


def test_renamed_key_is_refused_with_its_new_name(tmp_path):
    with pytest.raises(ConfigError, match="finetune.method=lora"):
        RunConfig().with_overrides(["finetune.lora.enabled=true"])
    (tmp_path / "old.yaml").write_text(yaml.safe_dump({"finetune": {"lora": {"enabled": True}}}))
    with pytest.raises(ConfigError, match="finetune.method=lora"):
        RunConfig.from_yaml(tmp_path / "old.yaml")


def test_model_code_reads_its_sections_from_a_whole_run_config(tmp_path):
    from model.config import ModelSections

    RunConfig().with_overrides(["train.max_steps=11", "filter.language.languages=[de]"]).write(tmp_path / "config.yaml")
    assert ModelSections.load(tmp_path / "config.yaml").train.max_steps == 11
