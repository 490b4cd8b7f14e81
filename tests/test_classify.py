"""Classification fine-tuning: metrics, pooling over padding, which blocks train, and runs on
keep/drop labels from the filter stage (bundled sample) and on langid sentences (shared data)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch

from crawl2gpt.config import RunConfig
from helpers.finetune import SHARED_DATA, sample_run
from model.classify import GPTClassifier, choose_trainable, collate, predict, run_classify
from model.classify_data import read_labelled, select
from model.classify_metrics import classification_report
from model.gpt import GPT, GPTConfig
from model.tokenizer import SentencePieceTokenizer
from pipeline.errors import InputError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def run() -> dict:
    return sample_run()


@pytest.fixture(scope="module")
def langid() -> Path:
    path = SHARED_DATA / "langid-sentences.tsv"
    if not path.is_file():
        pytest.skip("../shared/data/langid-sentences.tsv is not present on this machine")
    return path


def tiny_classifier(pooling: str, n_classes: int = 3) -> GPTClassifier:
    torch.manual_seed(0)
    return GPTClassifier(
        GPT(GPTConfig(vocab_size=1024, block_size=64, n_layer=2, n_head=2, n_embd=32)), n_classes, pooling
    ).eval()


def test_report_matches_hand_computed_figures():
    report = classification_report([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], ["a", "b", "c"])
    assert report["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert report["accuracy"] == pytest.approx(3 / 5)
    # a: P 1/2 R 1/2 F1 1/2; b: P 2/3 R 1 F1 4/5; c: P 0 R 0 F1 0
    assert report["per_class"]["b"] == {"precision": 0.6667, "recall": 1.0, "f1": 0.8, "support": 2}
    assert report["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_padding_does_not_change_a_prediction(run, pooling):
    tok = SentencePieceTokenizer(run["tokenizer"])
    texts, _, _ = read_labelled(run["filter"])
    short, long = tok.encode(texts[0])[:9], tok.encode(texts[1])[:40]
    clf = tiny_classifier(pooling)
    with torch.no_grad():
        alone = collate([short], [0], tok.pad_id)
        padded = collate([short, long], [0, 0], tok.pad_id)
        torch.testing.assert_close(
            clf(padded.idx, padded.lengths)[0], clf(alone.idx, alone.lengths)[0], atol=1e-5, rtol=1e-5
        )


def test_train_blocks_choose_what_trains():
    def trainable(train_blocks: int, method: str = "full") -> set[str]:
        clf = tiny_classifier("last")
        cfg = RunConfig().with_overrides(
            [f"finetune.classify.train_blocks={train_blocks}", f"finetune.method={method}"]
        )
        choose_trainable(clf, cfg.finetune)
        return {n for n, p in clf.named_parameters() if p.requires_grad}

    assert trainable(0) == {"head.weight", "head.bias"}
    top = trainable(1)
    assert {"head.weight", "gpt.transformer.ln_f.weight", "gpt.transformer.h.1.attn.c_attn.weight"} <= top
    assert not any(".h.0." in n or "wte" in n for n in top)
    assert "gpt.transformer.wte.weight" in trainable(-1)
    lora = trainable(-1, "lora")
    assert {"head.weight", "head.bias"} <= lora and all(".lora_" in n for n in lora - {"head.weight", "head.bias"})
    with pytest.raises(InputError, match="train_blocks=3"):
        trainable(3)


def test_filter_stage_gives_keep_drop_labels(run):
    texts, labels, counts = read_labelled(run["filter"])
    manifest = json.loads((run["filter"] / "_stage.json").read_text())["stats"]
    assert Counter(labels)["keep"] == manifest["docs_out"]
    assert len(texts) == manifest["docs_in"] - sum(counts.values())
    _, languages, _ = read_labelled(run["filter"], label_column="language")
    assert "de" in languages and "en" in languages
    with pytest.raises(InputError, match="'extract' stage folder"):
        read_labelled(run["extract"])


def test_tsv_and_jsonl_lines_are_counted(run, tmp_path):
    texts, labels, _ = read_labelled(run["filter"])
    tsv = tmp_path / "d.tsv"
    tsv.write_text(
        "label\ttext\n"
        + "\n".join(f"{label}\t{t.splitlines()[0]}" for label, t in zip(labels[:3], texts[:3]))
        + "\nno tab here\nkeep\t   \n"
    )
    _, got, counts = read_labelled(tsv)
    assert got == labels[:3] and counts == Counter(missing_fields=1, empty_text=1)
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text(
        "\n".join(json.dumps({"text": t, "label": label}) for t, label in zip(texts[:2], labels[:2]))
        + '\n{"text": "x"}\n{oops\n'
    )
    got, _, counts = read_labelled(jsonl)
    assert got == texts[:2] and counts == Counter(missing_fields=2)
    cfg = RunConfig().with_overrides(["finetune.classify.labels=[keep]", "finetune.classify.max_examples_per_class=2"])
    counts = Counter()
    _, chosen = select(texts, labels, cfg.finetune.classify, counts)
    assert chosen == ["keep", "keep"] and counts["other_label"] == labels.count("drop")


def classify_config(*extra: str) -> RunConfig:
    return RunConfig().with_overrides(
        [
            "finetune.classify.max_steps=6",
            "finetune.eval_interval=3",
            "finetune.classify.batch_size=8",
            "finetune.classify.learning_rate=3e-3",
            "finetune.classify.max_tokens=48",
            "finetune.warmup_steps=2",
            *extra,
        ]
    )


def test_keep_drop_classifier_on_the_bundled_sample(run, tmp_path):
    summary = run_classify(
        str(run["base"]), str(run["filter"]), str(tmp_path), classify_config("finetune.classify.pooling=mean")
    )
    report = json.loads((tmp_path / "eval.json").read_text())
    cm = torch.tensor(report["confusion"])
    assert report["labels"] == summary["labels"] == ["drop", "keep"]
    assert int(cm.sum()) == report["n"] == summary["counts"]["val_examples"] > 0
    assert report["accuracy"] == pytest.approx(float(cm.diag().sum() / cm.sum()))
    assert (tmp_path / "confusion.png").stat().st_size > 0 and (tmp_path / "loss.png").stat().st_size > 0
    texts, _, _ = read_labelled(run["filter"])
    assert set(predict(tmp_path, texts[:4])) <= {"drop", "keep"}


def test_language_classifier_beats_chance(run, langid, tmp_path):
    cfg = classify_config(
        "finetune.classify.labels=[de,en,fr,es]",
        "finetune.classify.max_examples_per_class=60",
        "finetune.classify.max_steps=30",
        "finetune.classify.batch_size=16",
        "finetune.eval_interval=30",
        "finetune.classify.max_tokens=32",
    )
    summary = run_classify(str(run["base"]), str(langid), str(tmp_path), cfg)
    assert summary["labels"] == ["de", "en", "es", "fr"]
    assert summary["accuracy"] > 0.5  # chance is 0.25
