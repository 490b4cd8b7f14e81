"""`crawl2gpt ablate` on tiny shards: two arms (two shards folders of real web text, each with its own
tokenizer) train the same GPT; bits per byte equals the loss summed over tokens / (ln 2 x bytes),
computed here independently; the summary, verdict, curves and page are written; a killed arm
resumes to the uninterrupted result; another plan is refused; the flow publishes its artifacts."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import sentencepiece as spm
import torch

from helpers.model_shards import TINY_TRAIN, make_shards
from model.ablation import arm_dir, arms, plan_ablation, read_result, run_arm, start
from model.ablation_report import finish, text
from model.ablation_stats import difference, spread
from model.config import TrainConfig
from model.training import load_model, read_metrics
from pipeline.errors import ConfigError, InputError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = TrainConfig(**dict(TINY_TRAIN, sample_tokens=0, precision="fp32"))
TOKENS = 12 * 4 * 32  # 12 steps


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("ablation-runs")
    # Two runs of the same text with different tokenizers: bits per byte must make them comparable.
    return [
        make_shards(root / "wide" / "shards", vocab_size=512),
        make_shards(root / "narrow" / "shards", vocab_size=448),
    ]


@pytest.fixture(scope="module")
def eval_text(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("eval") / "eval.jsonl"
    repo = Path(__file__).resolve().parents[1]
    rows = [json.loads(line) for line in (repo / "data" / "eval" / "web-main-text.jsonl").read_text().splitlines()]
    path.write_text("".join(json.dumps({"text": r["text"][:1500]}) + "\n" for r in rows[:3]))
    return path


@pytest.fixture(scope="module")
def ablation(runs, eval_text, tmp_path_factory):
    plan = plan_ablation(
        [r.parent for r in runs],
        tmp_path_factory.mktemp("ablation") / "out",
        TINY,
        eval_path=eval_text,
        seeds=2,
        tokens=TOKENS,
    )
    start(plan)
    for label, seed in arms(plan):
        run_arm(plan, label, seed)
    return plan, finish(plan)


def independent_bpb(model, stream: list[int], n_bytes: int, block: int) -> float:
    """The definition, written out: every token after the first is predicted from the tokens before
    it in its window of `block`; their -log p summed in float64, over ln 2 times the text's bytes."""
    nats = 0.0
    with torch.no_grad():
        for s in range(0, len(stream) - 1, block):
            window = torch.tensor(stream[s : s + block + 1])
            logits, _ = model(window[None, :-1])
            logp = torch.log_softmax(logits[0].double(), dim=-1)
            nats -= float(logp[torch.arange(len(window) - 1), window[1:]].sum())
    return nats / (math.log(2) * n_bytes)


def test_bits_per_byte_is_the_summed_loss_over_ln2_bytes(ablation, runs, eval_text):
    plan, _ = ablation
    texts = [json.loads(line)["text"] for line in eval_text.read_text().splitlines()]
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    for shards, (label, seed) in zip(runs, arms(plan)[:2]):
        result = read_result(plan, label, seed)
        model, _, _ = load_model(arm_dir(plan, label, seed))
        model.eval()
        sp = spm.SentencePieceProcessor(model_file=str(shards / "tokenizer.model"))
        eot = sp.piece_to_id("<|endoftext|>")
        stream = [eot] + [i for t in texts for i in sp.encode(t) + [eot]]
        assert result["eval_bpb"] == pytest.approx(independent_bpb(model, stream, n_bytes, TINY.block_size), rel=1e-6)
        val = [pq.read_table(p) for p in sorted(shards.glob("val-*.parquet"))]
        val_stream = [eot] + [int(i) for t in val for row in t.column("tokens").to_pylist() for i in row]
        val_bytes = sum(int(np.sum(t.column("n_bytes").to_numpy())) for t in val)  # from the documents
        assert result["val_bpb"] == pytest.approx(
            independent_bpb(model, val_stream, val_bytes, TINY.block_size), rel=1e-6
        )


def test_every_arm_trains_the_same_shape_for_the_same_tokens(ablation):
    plan, summary = ablation
    assert [r["label"] for r in plan["runs"]] == ["wide", "narrow"] and plan["seeds"] == [TINY.seed, TINY.seed + 1]
    assert summary["complete"] and len(summary["arms"]) == 4
    for arm in summary["arms"]:
        assert arm["steps"] == 12 and arm["tokens"] == TOKENS
        assert [p["step"] for p in arm["curve"]] == list(range(2, 13, 2))  # 12 steps // 6 points
        assert all(p["eval_bpb"] > 0 for p in arm["curve"]) and arm["curve"][-1]["eval_bpb"] == pytest.approx(
            arm["eval_bpb"], rel=1e-9
        )
    params = {arm["run"]: arm["params"] for arm in summary["arms"]}
    assert params["wide"] > params["narrow"]  # the same shape; the embedding follows each run's vocabulary


def test_summary_table_verdict_curves_and_page(ablation):
    plan, summary = ablation
    out = Path(plan["out"])
    for label in ("wide", "narrow"):
        values = [a["eval_bpb"] for a in summary["arms"] if a["run"] == label]
        s = summary["spread"][label]["eval_bpb"]
        assert s["mean"] == pytest.approx(np.mean(values)) and s["sd"] == pytest.approx(np.std(values, ddof=1))
    d = summary["differences"]["eval_bpb"][0]
    assert (d["a"], d["b"]) == ("wide", "narrow")
    assert d["diff"] == pytest.approx(
        summary["spread"]["narrow"]["eval_bpb"]["mean"] - summary["spread"]["wide"]["eval_bpb"]["mean"]
    )
    printed = text(summary)
    assert "wide" in printed and "narrow" in printed and d["verdict"] in printed
    assert json.loads((out / "ablation.json").read_text())["differences"] == json.loads(
        json.dumps(summary["differences"])
    )
    assert (out / "curves.png").stat().st_size > 5000 and "data:image/png;base64" in (out / "ablation.html").read_text()


def test_verdict_rules():
    a, b = spread([2.00, 2.02, 2.01]), spread([2.10, 2.12, 2.11])
    assert difference(a, b, "a", "b")["verdict"] == "a better"
    assert difference(b, a, "b", "a")["verdict"] == "a better"
    close = spread([2.005, 2.03, 2.02])
    assert difference(a, close, "a", "c")["verdict"] == "within noise"
    one = difference(spread([2.0]), spread([2.1]), "a", "b")
    assert one["verdict"] == "one seed: no noise estimate" and one["se"] is None
    d = difference(a, b, "a", "b")
    assert d["se"] == pytest.approx(math.sqrt(0.01**2 / 3 * 2)) and d["seeds_needed"] == 2


def test_a_killed_arm_resumes_to_the_uninterrupted_result(ablation, runs, eval_text, tmp_path):
    from model.train import train

    plan, summary = ablation
    label, seed = arms(plan)[0]
    again = plan_ablation(
        [r.parent for r in runs], tmp_path / "again", TINY, eval_path=eval_text, seeds=2, tokens=TOKENS
    )
    start(again)
    cfg = TrainConfig.model_validate({**again["train"], "seed": seed})

    def kill(step: int, loss: float) -> None:
        if step == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # as a kill: the arm's checkpoints stay, no result.json
        train(runs[0], arm_dir(again, label, seed), cfg, progress=False, on_step=kill)
    assert read_result(again, label, seed) is None
    resumed = run_arm(again, label, seed)
    straight = read_result(plan, label, seed)
    assert resumed["eval_bpb"] == straight["eval_bpb"] and resumed["val_bpb"] == straight["val_bpb"]
    assert [r["step"] for r in read_metrics(arm_dir(again, label, seed))] == list(range(1, 13))
    assert run_arm(again, label, seed) == resumed  # finished: read back, not retrained


def test_another_plan_in_the_same_folder_is_refused_but_seeds_may_grow(ablation, runs, eval_text, tmp_path):
    plan, _ = ablation
    other = plan_ablation([r.parent for r in runs], plan["out"], TINY, eval_path=eval_text, seeds=2, tokens=2 * TOKENS)
    with pytest.raises(ConfigError, match="other tokens, train"):
        start(other)
    fewer = plan_ablation([r.parent for r in runs], plan["out"], TINY, eval_path=eval_text, seeds=1, tokens=TOKENS)
    with pytest.raises(ConfigError, match="other seeds"):
        start(fewer)
    grown_out = tmp_path / "grown"
    shutil.copytree(plan["out"], grown_out)
    before = {(a["run"], a["seed"]): a for a in finish({**plan, "out": str(grown_out)})["arms"]}
    (grown_out / "plan.json").write_text(json.dumps({**plan, "out": str(grown_out)}))
    more = plan_ablation([r.parent for r in runs], grown_out, TINY, eval_path=eval_text, seeds=3, tokens=TOKENS)
    start(more)  # a third seed: the four finished arms are kept, two are added
    assert [read_result(more, label, seed) is not None for label, seed in arms(more)] == [True] * 4 + [False] * 2
    assert all(read_result(more, *key) == arm for key, arm in before.items())


def test_bad_inputs_fail_before_training(runs, eval_text, tmp_path):
    with pytest.raises(InputError, match="at least two"):
        plan_ablation([runs[0].parent], tmp_path / "x", TINY, eval_path=eval_text)
    with pytest.raises(InputError, match="neither a run folder"):
        plan_ablation([runs[0].parent, tmp_path], tmp_path / "x", TINY, eval_path=eval_text)
    with pytest.raises(ConfigError, match="less than one step"):
        plan_ablation([r.parent for r in runs], tmp_path / "x", TINY, eval_path=eval_text, tokens=10)
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(InputError, match="holds no text"):
        plan_ablation([r.parent for r in runs], tmp_path / "x", TINY, eval_path=tmp_path / "empty.jsonl")
    assert not (tmp_path / "x").exists()


def test_the_flow_publishes_table_and_arms(prefect_api, runs, eval_text, tmp_path):
    from flows.ablate import ablate_flow
    from flows.artifacts import artifact_key
    from helpers.artifacts import artifact_keys

    settings = [
        "train.n_layer=2",
        "train.n_head=2",
        "train.n_embd=32",
        "train.block_size=32",
        "train.batch_size=4",
        "train.warmup_steps=1",
        "train.device=cpu",
    ]
    state = ablate_flow(
        [str(r.parent) for r in runs],
        str(tmp_path / "flow"),
        eval_path=str(eval_text),
        seeds=1,
        tokens=4 * 4 * 32,
        overrides=settings,
        return_state=True,
    )
    result = state.result()
    assert result["complete"] and {a["run"] for a in result["arms"]} == {"wide", "narrow"}
    assert result["differences"]["eval_bpb"][0]["verdict"] == "one seed: no noise estimate"
    name = artifact_key("flow")
    assert artifact_keys(state.state_details.flow_run_id) == {f"{name}-ablation", f"{name}-ablation-arms"}
