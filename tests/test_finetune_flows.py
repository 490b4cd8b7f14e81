"""The finetune-sft and finetune-classify flows run the library functions and publish artifacts."""

from __future__ import annotations

import pytest

from helpers.artifacts import artifact_keys
from helpers.finetune import sample_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = [
    "finetune.max_steps=4",
    "finetune.eval_interval=2",
    "finetune.batch_size=4",
    "finetune.eval_prompts=1",
    "finetune.max_new_tokens=4",
    "finetune.overlong=truncate",
    "finetune.val_fraction=0.2",
    "finetune.classify.max_steps=4",
    "finetune.classify.batch_size=8",
    "finetune.classify.max_tokens=32",
]


def test_flows_publish_metrics_and_plots(prefect_api, tmp_path):
    from flows.artifacts import artifact_key
    from flows.finetune import finetune_classify_flow, finetune_sft_flow

    run = sample_run()
    state = finetune_sft_flow(
        str(run["base"]), str(run["extract"]), str(tmp_path / "sft"), overrides=TINY, return_state=True
    )
    summary = state.result()
    assert summary["derived_pairs"]["pairs"] > 0 and (tmp_path / "sft" / "pairs.jsonl").is_file()
    label = artifact_key(tmp_path.name)  # keyed by the run folder (tmp_path/sft), not the config's name
    assert artifact_keys(state.state_details.flow_run_id) == {
        f"{label}-finetune-sft-summary",
        f"{label}-finetune-sft-report",
    }
    state = finetune_classify_flow(
        str(run["base"]), str(run["filter"]), str(tmp_path / "cls"), overrides=TINY, return_state=True
    )
    assert set(state.result()["labels"]) == {"drop", "keep"}
    assert artifact_keys(state.state_details.flow_run_id) == {
        f"{label}-cls-finetune-classify-summary",
        f"{label}-cls-finetune-classify-per-class",
        f"{label}-cls-finetune-classify-report",
    }
