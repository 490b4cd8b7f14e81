"""Checkpoints as safetensors + JSON: nothing is ever unpickled when one is loaded.

A checkpoint is a folder `checkpoints/step-000300/` holding
  model.safetensors      weights (tied weights stored once, via safetensors' save_model)
  optimizer.safetensors  AdamW moments and step counts, keyed `<param index>.<name>`
  rng.safetensors        torch CPU (and CUDA) generator states as uint8 tensors
  state.json             written last: model config, step, optimizer hyperparameters,
                         loader position, train config, metrics so far
It is written into a temporary folder and renamed into place, so a crash mid-save never
leaves a checkpoint that looks complete.
"""
from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from pipeline.atomic import atomic_write_text, fsync_dir
from pipeline.errors import CheckpointError

STATE = "state.json"


def checkpoint_dirs(root: Path) -> list[Path]:
    """Complete checkpoints under root (those with state.json), oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("step-*") if (p / STATE).is_file())


def latest_checkpoint(root: Path) -> Path | None:
    found = checkpoint_dirs(root)
    return found[-1] if found else None


def resolve(path: str | Path) -> Path:
    """A checkpoint folder from a checkpoint folder, a `checkpoints/` folder, or a train run folder."""
    path = Path(path)
    if path.is_file() and path.name in ("model.safetensors", STATE):
        path = path.parent
    if (path / STATE).is_file():
        return path
    for root in (path, path / "checkpoints"):
        found = latest_checkpoint(root)
        if found:
            return found
    raise CheckpointError(f"no checkpoint in {path}: expected a step-* folder with {STATE} (train writes them under checkpoints/)")


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = optimizer.state_dict()
    tensors = {}
    for index, state in sd["state"].items():
        for name, value in state.items():
            tensors[f"{index}.{name}"] = value.detach().cpu().contiguous() if torch.is_tensor(value) else torch.tensor(value)
    return tensors, {"param_groups": sd["param_groups"]}


def _rng_tensors() -> dict[str, torch.Tensor]:
    tensors = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda{i}"] = state
    return tensors


def save_checkpoint(root: Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                    state: dict[str, Any], keep: int = 2) -> Path:
    """Write checkpoint `root/step-<step>` (model must be the unwrapped module); keep the newest `keep`."""
    root = Path(root)
    final = root / f"step-{step:06d}"
    tmp = root / f".step-{step:06d}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    save_model(model, str(tmp / "model.safetensors"))
    body = dict(state, step=step)
    if optimizer is not None:
        tensors, meta = _optimizer_tensors(optimizer)
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        body["optimizer"] = meta
    save_file(_rng_tensors(), str(tmp / "rng.safetensors"))
    atomic_write_text(tmp / STATE, json.dumps(body, indent=1, default=str))
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    fsync_dir(root)
    for old in checkpoint_dirs(root)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(".step-*.tmp-*"):  # leftovers of a crash during an earlier save
        shutil.rmtree(stale, ignore_errors=True)
    return final


def read_state(ckpt: Path) -> dict[str, Any]:
    try:
        return json.loads((Path(ckpt) / STATE).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{ckpt}/{STATE} cannot be read ({err}); delete that checkpoint folder to fall back to an older one") from None


def load_model_weights(ckpt: Path, model: torch.nn.Module) -> None:
    try:
        missing, unexpected = load_model(model, str(Path(ckpt) / "model.safetensors"), strict=False)
    except (OSError, RuntimeError) as err:
        raise CheckpointError(f"{ckpt}/model.safetensors does not fit this model: {err}") from None
    if missing or unexpected:
        raise CheckpointError(f"{ckpt}/model.safetensors does not fit this model: missing {missing}, unexpected {unexpected}")


def load_optimizer(ckpt: Path, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    tensors = load_file(str(Path(ckpt) / "optimizer.safetensors"))
    per_param: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        per_param.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": per_param, "param_groups": state["optimizer"]["param_groups"]})


def restore_rng(ckpt: Path) -> None:
    tensors = load_file(str(Path(ckpt) / "rng.safetensors"))
    torch.set_rng_state(tensors["cpu"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("cuda"))]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
