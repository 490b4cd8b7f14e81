"""GPT-2 weights in and out: a transformers `GPT2LMHeadModel` or a GPT-2 safetensors file.

Our GPT with norm=layernorm, mlp=gelu, positions=learned, bias=True is GPT-2's architecture
and uses its parameter names (nanoGPT's choice); the only difference is that GPT-2's `Conv1D`
stores linear weights as (in, out) where nn.Linear stores (out, in), so those are transposed.
Hub safetensors files name keys without the `transformer.` prefix; both spellings are read.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from model.gpt import GPT, GPTConfig
from pipeline.atomic import atomic_write_file, atomic_write_text
from pipeline.errors import CheckpointError

CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
GPT2_ARCH = dict(norm="layernorm", mlp="gelu", positions="learned", bias=True)


def _canonical(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers' key names, without the attention-mask buffers older versions saved."""
    out = {}
    for key, value in state.items():
        if key.endswith(("attn.bias", "attn.masked_bias")) and value.dim() != 1:
            continue
        name = key if key.startswith(("transformer.", "lm_head.")) else f"transformer.{key}"
        out[name] = value
    out.setdefault("lm_head.weight", out["transformer.wte.weight"])  # tied; files often omit it
    return out


def config_from_state(state: dict[str, torch.Tensor], n_head: int) -> GPTConfig:
    vocab, n_embd = state["transformer.wte.weight"].shape
    n_layer = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("transformer.h."))
    return GPTConfig(
        vocab_size=vocab,
        block_size=state["transformer.wpe.weight"].shape[0],
        n_layer=n_layer,
        n_head=n_head,
        n_embd=n_embd,
        **GPT2_ARCH,
    )


def from_gpt2_state_dict(state: dict[str, torch.Tensor], n_head: int) -> GPT:
    """Our GPT holding the weights of a GPT-2 state dict (transformers or hub-file key names)."""
    state = _canonical(state)
    model = GPT(config_from_state(state, n_head))
    ours = model.state_dict()
    if set(ours) != set(state):
        raise CheckpointError(
            f"not a GPT-2 state dict: missing {sorted(set(ours) - set(state))[:5]}, "
            f"unexpected {sorted(set(state) - set(ours))[:5]}"
        )
    with torch.no_grad():
        for key, target in ours.items():
            value = state[key].t() if key.endswith(CONV1D) else state[key]
            if value.shape != target.shape:
                raise CheckpointError(
                    f"GPT-2 weight {key} has shape {tuple(value.shape)}, expected {tuple(target.shape)}"
                )
            target.copy_(value)
    return model


def to_gpt2_state_dict(model: GPT) -> dict[str, torch.Tensor]:
    """transformers `GPT2LMHeadModel` state dict (Conv1D layout) of our GPT."""
    cfg = model.config
    if any(getattr(cfg, k) != v for k, v in GPT2_ARCH.items()):
        raise CheckpointError(
            f"only the GPT-2 architecture exports to GPT-2 ({GPT2_ARCH}); this model has "
            f"norm={cfg.norm}, mlp={cfg.mlp}, positions={cfg.positions}, bias={cfg.bias}"
        )
    return {
        k: (v.t() if k.endswith(CONV1D) else v).detach().clone().contiguous() for k, v in model.state_dict().items()
    }


def hf_config(config: GPTConfig) -> dict:
    """config.json for transformers' GPT2Config (GELU 'gelu_new' is the tanh approximation we use)."""
    return {
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "vocab_size": config.vocab_size,
        "n_positions": config.block_size,
        "n_ctx": config.block_size,
        "n_embd": config.n_embd,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "activation_function": "gelu_new",
        "layer_norm_epsilon": 1e-5,
        "resid_pdrop": config.dropout,
        "embd_pdrop": config.dropout,
        "attn_pdrop": config.dropout,
        "tie_word_embeddings": True,
    }


def load_gpt2(source) -> GPT:
    """From a transformers GPT2LMHeadModel, or a folder / .safetensors file with config.json beside it."""
    if hasattr(source, "state_dict") and hasattr(source, "config"):
        return from_gpt2_state_dict(source.state_dict(), source.config.n_head)
    from safetensors.torch import load_file

    path = Path(source)
    file = path / "model.safetensors" if path.is_dir() else path
    config_json = file.parent / "config.json"
    if not file.is_file() or not config_json.is_file():
        raise CheckpointError(f"{source}: expected model.safetensors with a GPT-2 config.json beside it")
    return from_gpt2_state_dict(load_file(str(file)), json.loads(config_json.read_text())["n_head"])


def export_gpt2(model: GPT, folder: str | Path) -> Path:
    """Write model.safetensors + config.json that `GPT2LMHeadModel.from_pretrained(folder)` loads."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = to_gpt2_state_dict(model)
    state.pop("lm_head.weight")  # tied to wte: stored once, as GPT-2's own files do
    atomic_write_file(folder / "model.safetensors", lambda tmp: save_file(state, str(tmp), metadata={"format": "pt"}))
    atomic_write_text(folder / "config.json", json.dumps(hf_config(model.config), indent=1))
    return folder
