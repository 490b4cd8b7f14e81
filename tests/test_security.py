"""Security: nothing unpickled from files, manifests cannot point outside their folder,
servers listen on loopback by default. See SECURITY.md for what is trusted and what is not."""

from __future__ import annotations

import ast
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import InputError, StageIncompleteError
from pipeline.shard_format import shard_path
from pipeline.stage import MANIFEST, read_manifest, stage_parts

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("pipeline", "model", "flows", "benchmarks", "deployments")
# (file, call) pairs allowed on purpose, each with its reason in SECURITY.md.
ALLOWED = {("pipeline/dedup/lsh.py", "pickle.loads")}  # datasketch's own Redis members, written by this run
FORBIDDEN = {
    "pickle.load",
    "pickle.loads",
    "pickle.Unpickler",
    "dill.load",
    "dill.loads",
    "joblib.load",
    "marshal.load",
    "marshal.loads",
    "shelve.open",
    "yaml.load",
    "yaml.unsafe_load",
    "yaml.full_load",
    "pd.read_pickle",
    "pandas.read_pickle",
    "eval",
    "exec",
}


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    return ""


def unsafe_calls(source: str, rel: str) -> list[str]:
    """Calls that could run code from a file's bytes: unpickling, unsafe YAML, eval."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        keywords = {k.arg: k.value for k in node.keywords}

        def flag(key: str, keywords: dict = keywords) -> bool:
            return isinstance(keywords.get(key), ast.Constant) and keywords[key].value is True

        if name.endswith("torch.load") and not flag("weights_only"):
            found.append(f"{rel}:{node.lineno} torch.load without weights_only=True")
        elif name in ("np.load", "numpy.load") and flag("allow_pickle"):
            found.append(f"{rel}:{node.lineno} {name}(allow_pickle=True)")
        elif name in FORBIDDEN and (rel, name) not in ALLOWED:
            found.append(f"{rel}:{node.lineno} {name}")
    return found


def test_the_scanner_catches_what_it_looks_for():
    bad = (
        "import torch, pickle, yaml, numpy as np\ntorch.load(f)\ntorch.load(f, weights_only=False)\npickle.load(f)\n"
        "yaml.load(s)\nnp.load(f, allow_pickle=True)\neval(s)\n"
    )
    assert len(unsafe_calls(bad, "x.py")) == 6
    assert unsafe_calls("import torch, yaml\ntorch.load(f, weights_only=True)\nyaml.safe_load(s)\n", "x.py") == []


def test_no_code_runs_from_file_bytes():
    found = []
    for package in SCANNED:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            found += unsafe_calls(path.read_text(), rel)
    assert found == []


class _Trap:
    """Unpickling this creates a marker file: proof that something was unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_checkpoint_with_a_pickle_inside_is_refused_without_unpickling(tmp_path):
    import torch
    from safetensors import SafetensorError

    from model.checkpoint import load_model_state

    marker = tmp_path / "pwned"
    ckpt = tmp_path / "step-000001"
    ckpt.mkdir()
    (ckpt / "state.json").write_text(json.dumps({"step": 1, "tied": {}}))
    for payload in (pickle.dumps(_Trap(marker)), None):
        if payload is None:  # a torch.save zip file (pickle inside) under the safetensors name
            torch.save({"w": _Trap(marker)}, ckpt / "model.safetensors")
        else:
            (ckpt / "model.safetensors").write_bytes(payload)
        with pytest.raises(SafetensorError):  # refused by its header: the bytes are never unpickled
            load_model_state(ckpt)
        assert not marker.exists()


def test_manifests_are_json_never_pickle(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "stage").mkdir()
    (tmp_path / "stage" / MANIFEST).write_bytes(pickle.dumps(_Trap(marker)))
    with pytest.raises(StageIncompleteError, match="not valid JSON"):
        read_manifest(tmp_path / "stage")
    assert not marker.exists()


@pytest.mark.parametrize("rel", ["../outside.parquet", "/etc/passwd", "sub/../../outside.parquet", "link.parquet"])
def test_manifest_paths_cannot_escape_the_stage_folder(tmp_path, rel):
    folder = tmp_path / "filter"
    folder.mkdir()
    (tmp_path / "outside.parquet").write_bytes(b"secret")
    (folder / "link.parquet").symlink_to(tmp_path / "outside.parquet")  # a link out counts as outside
    (folder / MANIFEST).write_text(json.dumps({"files": {rel: {"bytes": 6, "sha256": "0"}}}))
    with pytest.raises(InputError, match="outside the folder"):
        stage_parts(folder)


@pytest.mark.parametrize("rel", ["../outside.parquet", "/etc/passwd", "sub/train-00000.parquet"])
def test_shard_paths_cannot_escape_the_shards_folder(tmp_path, rel):
    with pytest.raises(InputError, match="outside its folder"):
        shard_path(tmp_path, {"path": rel})


def test_prefect_server_and_redis_default_to_loopback():
    from crawl2gpt.config import RunConfig

    assert RunConfig().dedup.redis_host == "127.0.0.1"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_SERVER_API_HOST")}
    code = "from prefect.settings import get_current_settings; print(get_current_settings().server.api.host)"
    host = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert host == "127.0.0.1"
    script = (ROOT / "deployments" / "ui.sh").read_text()
    assert "HOST=${PREFECT_HOST:-127.0.0.1}" in script and '--host "$HOST"' in script


def test_dask_local_cluster_dashboard_binds_loopback():
    from crawl2gpt.config import RunConfig
    from flows.parts import task_runner_for

    runner = task_runner_for(RunConfig(task_runner="dask"), 2)
    kwargs = runner.cluster_kwargs
    assert str(kwargs.get("dashboard_address", ":8787")).split(":")[0] in ("127.0.0.1", "localhost")


def test_shards_manifest_of_foreign_bytes_is_refused(tmp_path):
    from pipeline.shard_format import load_manifest

    (tmp_path / "manifest.json").write_bytes(pickle.dumps(_Trap(tmp_path / "pwned")))
    with pytest.raises(StageIncompleteError, match="not valid JSON"):
        load_manifest(tmp_path)
