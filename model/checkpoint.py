"""Checkpoints as safetensors + JSON: nothing is ever unpickled when one is loaded.

A checkpoint is a folder `checkpoints/step-000300/` holding
  model.safetensors      full (unsharded) weights; a tied weight is stored once, state.json names its aliases
  optimizer.safetensors  AdamW moments and step counts, keyed `<parameter name>|<moment>`
  rng.safetensors        every rank's torch CPU (and CUDA) generator state, `cpu.<rank>`, as uint8 tensors
  state.json             written last: model config, step, optimizer hyperparameters,
                         loader position, train config, metrics so far
It is written into a temporary folder and renamed into place, so a crash mid-save never
leaves a checkpoint that looks complete.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from pipeline.atomic import atomic_write_text, fsync_dir, temp_path
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
    raise CheckpointError(
        f"no checkpoint in {path}: expected a step-* folder with {STATE} (train writes them under checkpoints/)"
    )


def tied_names(module: torch.nn.Module) -> dict[str, str]:
    """Parameter names that alias an earlier one (tied weights): {alias: source}."""
    seen: dict[int, str] = {}
    tied = {}
    for name, p in module.named_parameters(remove_duplicate=False):
        if id(p) in seen:
            tied[name] = seen[id(p)]
        else:
            seen[id(p)] = name
    return tied


def _optimizer_tensors(optimizer_state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Tensors of a name-keyed optimizer state dict (torch.distributed.checkpoint's full form)."""
    tensors = {}
    for param, moments in optimizer_state["state"].items():
        for name, value in moments.items():
            tensors[f"{param}|{name}"] = (
                value.detach().cpu().contiguous() if torch.is_tensor(value) else torch.tensor(value)
            )
    return tensors


def save_checkpoint(
    root: Path,
    step: int,
    model: torch.nn.Module | dict[str, torch.Tensor],
    optimizer_state: dict[str, Any] | None,
    state: dict[str, Any],
    tied: dict[str, str] | None = None,
    rng: dict[str, torch.Tensor] | None = None,
    keep: int = 2,
) -> Path:
    """Write checkpoint `root/step-<step>`; keep the newest `keep`.

    `model` is a plain module, or a full state dict with its `tied` aliases (what FSDP gathers);
    `rng` holds every rank's generator states (default: this process's, as rank 0).
    """
    if isinstance(model, torch.nn.Module):
        model_state, tied = model.state_dict(), tied_names(model)
    else:
        model_state, tied = model, tied or {}
    rng = rng if rng is not None else {"cpu.0": torch.get_rng_state()}
    root = Path(root)
    final = root / f"step-{step:06d}"
    tmp = temp_path(final)
    tmp.mkdir(parents=True)
    try:
        _write_checkpoint_files(tmp, model_state, tied, optimizer_state, state, step, rng)
    except (
        BaseException
    ):  # a full disk, a kill signal: the half-written folder would hold its space until the next save
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    fsync_dir(root)
    for old in checkpoint_dirs(root)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(".step-*.tmp-*"):  # leftovers of a crash during an earlier save
        shutil.rmtree(stale, ignore_errors=True)
    return final


def _write_checkpoint_files(
    tmp: Path,
    model_state: dict,
    tied: dict[str, str],
    optimizer_state: dict[str, Any] | None,
    state: dict[str, Any],
    step: int,
    rng: dict[str, torch.Tensor],
) -> None:
    weights = {k: v.detach().cpu().contiguous() for k, v in model_state.items() if k not in tied}
    save_file(weights, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    body = dict(state, step=step, tied=tied)
    if optimizer_state is not None:
        save_file(_optimizer_tensors(optimizer_state), str(tmp / "optimizer.safetensors"))
        body["optimizer"] = {"param_groups": optimizer_state["param_groups"]}
    save_file(rng, str(tmp / "rng.safetensors"))
    atomic_write_text(tmp / STATE, json.dumps(body, indent=1, default=str))


def read_state(ckpt: Path) -> dict[str, Any]:
    try:
        return json.loads((Path(ckpt) / STATE).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(
            f"{ckpt}/{STATE} cannot be read ({err}); delete that checkpoint folder to fall back to an older one"
        ) from None


def load_model_state(ckpt: Path) -> dict[str, torch.Tensor]:
    """The full state dict of a checkpoint, tied aliases included."""
    weights = load_file(str(Path(ckpt) / "model.safetensors"))
    for alias, source in read_state(ckpt).get("tied", {}).items():
        weights[alias] = weights[source]
    return weights


def load_model_weights(ckpt: Path, model: torch.nn.Module) -> None:
    """Load into an unwrapped, unsharded module; any mismatch is a CheckpointError."""
    try:
        model.load_state_dict(load_model_state(ckpt), strict=True)
    except (OSError, RuntimeError, KeyError) as err:
        raise CheckpointError(f"{ckpt}/model.safetensors does not fit this model: {err}") from None


def load_optimizer_state(ckpt: Path, state: dict[str, Any]) -> dict[str, Any]:
    """Name-keyed optimizer state dict, for torch.distributed.checkpoint's set_optimizer_state_dict."""
    per_param: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in load_file(str(Path(ckpt) / "optimizer.safetensors")).items():
        param, name = key.split("|", 1)
        per_param.setdefault(param, {})[name] = value
    return {"state": per_param, "param_groups": state["optimizer"]["param_groups"]}


def restore_rng(ckpt: Path, rank: int = 0) -> None:
    """This rank's generator states, as saved by the same rank (dropout continues exactly)."""
    tensors = load_file(str(Path(ckpt) / "rng.safetensors"))
    torch.set_rng_state(tensors[f"cpu.{rank}"])
    if f"cuda.{rank}" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors[f"cuda.{rank}"])
