"""What every training run shares: pretraining (model/train.py), fine-tuning and classification
(model/finetune.py, model/classify.py) and generation (model/generate.py) call these, one copy each.

  pick_device        "auto" -> cuda when there is one, else cpu
  use_compile        train.compile "auto" -> on for CUDA, off for CPU
  precision_setup    the autocast context, GradScaler and precision actually used on a device
  attention_kernels  the SDPA kernels a training step prefers (cuDNN first on a GPU)
  make_optimizer     AdamW as pretraining and fine-tuning both use it (their `OptimizerSection` keys)
  cosine_lr          linear warmup, then cosine decay to a floor (nanoGPT's get_lr)
  build_model        a GPT (or the LSTM baseline) from a model config dict
  load_model         a model from a checkpoint folder, a checkpoints/ folder or a run folder
  MetricsLog         metrics.jsonl: append a row per step, read, truncate after a resume
  plot_losses        loss.png from a run's metrics log
  peak_memory_mb     peak CUDA memory, or the process's peak resident set on CPU
"""

from __future__ import annotations

import json
import logging
import math
import resource
import sys
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from model.checkpoint import load_model_weights, read_state, resolve
from model.config import OptimizerSection
from model.gpt import GPT, GPTConfig, param_groups
from pipeline.atomic import atomic_write_text, atomic_write_with

log = logging.getLogger("crawl2gpt.train")


# --------------------------------------------------------------------------- device and precision


def pick_device(name: str = "auto") -> str:
    if name != "auto":
        return name
    return "cuda" if torch.cuda.is_available() else "cpu"


def use_compile(setting: bool | str, device: str) -> bool:
    """train.compile: true/false as given; "auto" compiles on CUDA only (on CPU the compile time
    outweighs the gain for the short runs CPUs are used for)."""
    if setting == "auto":
        return device.startswith("cuda")
    return bool(setting)


def attention_kernels(device: str):
    """Context for a training or evaluation step: SDPA tries cuDNN's fused attention first on a GPU
    (about 2% faster per step than PyTorch's default pick for GPT-2 124M on an H100,
    docs/benchmarks-train.md), then flash, memory-efficient and math as usual; unchanged on CPU."""
    if not device.startswith("cuda"):
        return nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    order = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    try:
        return sdpa_kernel(order, set_priority=True)
    except TypeError:  # PyTorch < 2.6 has no priority order: keep its default pick
        return nullcontext()


def precision_setup(
    precision: str, device: str, tf32: bool = False
) -> tuple[Callable[[], Any], torch.amp.GradScaler, str]:
    """(autocast context factory, GradScaler, precision actually used) for "bf16", "fp16" or "fp32".

    Autocast is used on CUDA only: a CPU run is fp32 whatever was asked (said once in the log).
    fp16 gets a GradScaler (small gradients underflow without one); bf16 has fp32's exponent range.
    """
    if not device.startswith("cuda"):
        if precision != "fp32":
            log.info(
                "precision %s asked for on %s: CPU trains in fp32 (autocast is used on CUDA only)", precision, device
            )
        return nullcontext, torch.amp.GradScaler("cpu", enabled=False), "fp32"
    if tf32:  # TF32 matmuls on Ampere and later, as nanoGPT enables
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if precision == "fp32":
        return nullcontext, torch.amp.GradScaler("cuda", enabled=False), "fp32"
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    autocast = lambda: torch.autocast("cuda", dtype=dtype)  # noqa: E731
    return autocast, torch.amp.GradScaler("cuda", enabled=precision == "fp16"), precision


# --------------------------------------------------------------------------- optimizer and schedule


def make_optimizer(model: torch.nn.Module, settings: OptimizerSection, lr: float, device: str) -> torch.optim.AdamW:
    """AdamW over the trainable parameters with `settings`' betas; weight decay on matrices only
    (param_groups); fused on CUDA. `lr` is the peak rate (the schedule sets each step's)."""
    return torch.optim.AdamW(
        param_groups(model, settings.weight_decay),
        lr=lr,
        betas=(settings.beta1, settings.beta2),
        fused=device.startswith("cuda"),
    )


def cosine_lr(step: int, peak: float, floor: float, warmup_steps: int, total_steps: int) -> float:
    """Learning rate for optimizer step `step` (0-based): linear warmup to `peak` over warmup_steps,
    then half a cosine down to `floor` at total_steps, and `floor` after (nanoGPT's get_lr)."""
    if step < warmup_steps:
        return peak * (step + 1) / (warmup_steps + 1)
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return floor + 0.5 * (1.0 + math.cos(math.pi * progress)) * (peak - floor)


# --------------------------------------------------------------------------- models and checkpoints


def build_model(config: dict[str, Any], arch: str = "gpt") -> torch.nn.Module:
    """A freshly initialised model of a checkpoint's `model_config` and `arch` ("gpt" or "lstm")."""
    if arch == "lstm":
        from model.lstm import LSTMLM

        return LSTMLM(GPTConfig.from_dict(config))
    return GPT(GPTConfig.from_dict(config))


def load_model(path: str | Path, device: str = "cpu") -> tuple[torch.nn.Module, dict[str, Any], Path]:
    """(model with the checkpoint's weights, its state.json, the checkpoint folder) from a checkpoint
    folder, a checkpoints/ folder or a train run folder (the newest checkpoint in it)."""
    ckpt = resolve(path)
    state = read_state(ckpt)
    model = build_model(state["model_config"], state.get("arch", "gpt"))
    load_model_weights(ckpt, model)
    return model.to(device), state, ckpt


# --------------------------------------------------------------------------- metrics


class MetricsLog:
    """metrics.jsonl: one JSON object per line, a line per optimizer step ("step" in each);
    evaluation steps add val_loss (and more). Appending a line is the only write in place, so a
    kill can tear only the last line: `read` leaves that line out, `truncate` drops it (replacing
    the file whole, so a kill during it leaves the old log)."""

    NAME = "metrics.jsonl"

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def of(cls, out_dir: str | Path) -> MetricsLog:
        """The log of a run folder: out_dir/metrics.jsonl."""
        return cls(Path(out_dir) / cls.NAME)

    def append(self, row: dict[str, Any]) -> None:
        with open(self.path, "a") as fh:
            fh.write(json.dumps(row) + "\n")

    def read(self) -> list[dict[str, Any]]:
        """Every row, in order; [] when there is no log. A torn last line is left out; a bad line
        anywhere else is damage, not a kill, and raises."""
        if not self.path.is_file():
            return []
        lines = [line for line in self.path.read_text().splitlines() if line.strip()]
        rows = []
        for n, line in enumerate(lines):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                if n == len(lines) - 1:
                    break
                raise ValueError(f"{self.path} line {n + 1} is not JSON: {line[:80]!r}") from None
        return rows

    def evals(self) -> list[dict[str, Any]]:
        """The rows of evaluation steps (a validation loss was measured)."""
        return [r for r in self.read() if r.get("val_loss") is not None]

    def truncate(self, step: int) -> None:
        """Keep the rows up to `step` (a resumed run's checkpoint); later rows and a torn line go."""
        if not self.path.is_file():
            return
        keep = [json.dumps(r) for r in self.read() if r.get("step", math.inf) <= step]
        atomic_write_text(self.path, "".join(line + "\n" for line in keep))

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def read_metrics(out_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of out_dir/metrics.jsonl."""
    return MetricsLog.of(out_dir).read()


def plot_losses(out_dir: Path, title: str = "") -> Path:
    """out_dir/loss.png: train loss per step and validation loss at each eval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(out_dir)
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in rows if r.get("val_loss") is not None]
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(*zip(*train), label="train", linewidth=1)
    if val:
        ax.plot(*zip(*val), "o-", label="validation")
    ax.set(xlabel="step", ylabel="cross-entropy (nats/token)", title=title)
    ax.legend()
    ax.grid(alpha=0.3)
    path = Path(out_dir) / "loss.png"
    atomic_write_with(path, lambda fh: fig.savefig(fh, format="png", dpi=120, bbox_inches="tight"))
    plt.close(fig)
    return path


def peak_memory_mb(device: str) -> dict[str, float]:
    """CUDA: peak allocated by tensors.

    CPU: the process's peak resident set (a high-water mark of the whole process)."""
    if device.startswith("cuda"):
        return {"peak_cuda_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1)}
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB on Linux
    return {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20, 1)}
