"""A trained checkpoint as a Hugging Face folder that transformers loads offline (`crawl2gpt export`).

Three options of our GPT decide which transformers architecture computes exactly what it does:

  positions=learned  norm=layernorm  mlp=gelu    -> GPT-2 (GPT2LMHeadModel), via model/gpt2_interop.py
  positions=rope     norm=rmsnorm    mlp=swiglu  -> Llama (LlamaForCausalLM)

Any other combination (and the LSTM baseline) has no transformers equivalent and is refused with
the option named. The Llama mapping, term by term against transformers' modeling_llama.py:
  - rotary positions: we rotate interleaved channel pairs (x0, x1), (x2, x3), ... (RoFormer);
    Llama rotates the first half of a head against the second (rotate_half). Reordering each
    head's q and k rows, even channels first then odd, turns one into the other (what
    transformers' convert_llama_weights_to_hf does to Meta's checkpoints); q.k is unchanged when
    q and k are reordered alike. Same frequencies base^(-2i/hs): rope_theta = rope_base.
  - RMSNorm: the same fp32 formula, weight after; eps read from the model.
  - SwiGLU: c_fc's output is [gate | up] -> gate_proj, up_proj; silu(gate) * up; then down_proj.
  - bias: our one switch covers every linear layer = Llama's attention_bias and mlp_bias together.
  - embeddings tied to the un-embedding (tie_word_embeddings), stored once.
A GPT-2-shaped model trained with bias=False exports with zero biases, which compute the same.

The folder is written into a temporary folder beside the output and renamed into place. Before
that, the tokenizer is checked against SentencePiece (model/hf_tokenizer.py) and, when
transformers is installed, the folder is loaded back and its logits compared with ours.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from model.gpt import GPT, GPTConfig
from model.gpt2_interop import GPT2_ARCH, export_gpt2
from model.hf_tokenizer import write_hf_tokenizer
from model.tokenizer import SentencePieceTokenizer, load_tokenizer
from model.training import load_model
from pipeline.atomic import atomic_write_text, temp_path
from pipeline.errors import CheckpointError, ExportError

LLAMA_ARCH = dict(positions="rope", norm="rmsnorm", mlp="swiglu")
GPT2_SHAPE = {k: v for k, v in GPT2_ARCH.items() if k != "bias"}  # bias=False exports as zero biases
# our logits against transformers' on the same ids, fp32 on CPU, relative to the largest logit:
# both sum the same terms in different orders (~1e-7 relative on small models); a wrong mapping is off by O(1)
LOGIT_TOLERANCE = 1e-4


def _shape_text(shape: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in shape.items())


def target_architecture(config: GPTConfig, arch: str = "gpt") -> str:
    """ "gpt2" or "llama"; ExportError naming the options that have no transformers equivalent.
    The positions decide which of the two the model is closest to; the other options must follow."""
    if arch != "gpt":
        raise ExportError(f"train.arch={arch} has no transformers equivalent; only the GPT exports")
    name, family, shape = (
        ("Llama", "llama", LLAMA_ARCH) if config.positions == "rope" else ("GPT-2", "gpt2", GPT2_SHAPE)
    )
    off = [f"train.{key}={getattr(config, key)}" for key, want in shape.items() if getattr(config, key) != want]
    if off:
        raise ExportError(
            f"{' and '.join(off)} with train.positions={config.positions} {'has' if len(off) == 1 else 'have'} no "
            f"transformers equivalent ({name}, the architecture with {config.positions} positions, needs "
            f"{_shape_text({k: v for k, v in shape.items() if k != 'positions'})}). "
            f"Exportable: GPT-2 ({_shape_text(GPT2_SHAPE)}) and Llama ({_shape_text(LLAMA_ARCH)})"
        )
    return family


# --------------------------------------------------------------------------- GPT-2


def with_zero_biases(model: GPT) -> GPT:
    """The same model with bias=True and every bias zero (what GPT-2's layers always have)."""
    if model.config.bias:
        return model
    biased = GPT(GPTConfig.from_dict({**model.config.to_dict(), "bias": True}))
    missing, unexpected = biased.load_state_dict(model.state_dict(), strict=False)
    assert not unexpected and all(k.endswith(".bias") for k in missing), (missing, unexpected)
    with torch.no_grad():
        for key in missing:
            biased.get_parameter(key).zero_()
    return biased.eval()


# --------------------------------------------------------------------------- Llama


def rotate_half_order(n_head: int, head_size: int) -> torch.Tensor:
    """Row order that turns our interleaved rotary pairs into Llama's halves: per head 0,2,4,...,1,3,5,..."""
    within = torch.cat([torch.arange(0, head_size, 2), torch.arange(1, head_size, 2)])
    return torch.cat([h * head_size + within for h in range(n_head)])


def to_llama_state_dict(model: GPT) -> dict[str, torch.Tensor]:
    """transformers `LlamaForCausalLM` state dict of our rope + rmsnorm + swiglu GPT (lm_head tied, left out)."""
    cfg = model.config
    C = cfg.n_embd
    order = rotate_half_order(cfg.n_head, C // cfg.n_head)
    ours = {k: v.detach() for k, v in model.state_dict().items()}
    out = {
        "model.embed_tokens.weight": ours["transformer.wte.weight"],
        "model.norm.weight": ours["transformer.ln_f.weight"],
    }
    kinds = ("weight", "bias") if cfg.bias else ("weight",)
    for i in range(cfg.n_layer):
        src, dst = f"transformer.h.{i}.", f"model.layers.{i}."
        out[dst + "input_layernorm.weight"] = ours[src + "ln_1.weight"]
        out[dst + "post_attention_layernorm.weight"] = ours[src + "ln_2.weight"]
        for kind in kinds:
            q, k, v = ours[src + f"attn.c_attn.{kind}"].split(C, dim=0)  # (C, C) or (C,) each
            out[dst + f"self_attn.q_proj.{kind}"] = q[order]
            out[dst + f"self_attn.k_proj.{kind}"] = k[order]
            out[dst + f"self_attn.v_proj.{kind}"] = v
            out[dst + f"self_attn.o_proj.{kind}"] = ours[src + f"attn.c_proj.{kind}"]
            gate, up = ours[src + f"mlp.c_fc.{kind}"].chunk(2, dim=0)  # (hidden, C) or (hidden,) each
            out[dst + f"mlp.gate_proj.{kind}"] = gate
            out[dst + f"mlp.up_proj.{kind}"] = up
            out[dst + f"mlp.down_proj.{kind}"] = ours[src + f"mlp.c_proj.{kind}"]
    return {k: v.clone().contiguous() for k, v in out.items()}


def llama_config(model: GPT) -> dict[str, Any]:
    """config.json for transformers' LlamaConfig, read off the model (hidden size, eps) where it can be."""
    cfg = model.config
    hidden = model.transformer.h[0].mlp.c_proj.weight.shape[1]
    return {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.n_embd,
        "intermediate_size": hidden,
        "num_hidden_layers": cfg.n_layer,
        "num_attention_heads": cfg.n_head,
        "num_key_value_heads": cfg.n_head,
        "head_dim": cfg.n_embd // cfg.n_head,
        "hidden_act": "silu",
        "max_position_embeddings": cfg.block_size,
        "rms_norm_eps": model.transformer.ln_f.eps,
        # transformers 5 reads rope_parameters, 4.x rope_theta; both say the same
        "rope_theta": cfg.rope_base,
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_base},
        "attention_bias": cfg.bias,
        "mlp_bias": cfg.bias,
        "attention_dropout": 0.0,
        "tie_word_embeddings": True,
        "initializer_range": 0.02,
    }


def export_llama(model: GPT, folder: Path) -> None:
    from safetensors.torch import save_file

    save_file(to_llama_state_dict(model), str(folder / "model.safetensors"), metadata={"format": "pt"})
    atomic_write_text(folder / "config.json", json.dumps(llama_config(model), indent=1))


# --------------------------------------------------------------------------- the folder


def special_ids(state: dict[str, Any], tokenizer: dict[str, Any], where: Path) -> dict[str, int]:
    """The ids transformers' generate() needs: stop at <|endoftext|>, and start an empty prompt from
    it as our sampler does (it separates documents in training); pad is the tokenizer's."""
    eot = state.get("eot_id")
    if eot is None or eot != tokenizer["eos_id"]:
        raise CheckpointError(
            f"{where}: state.json's eot_id {eot} is not the tokenizer's end-of-text id {tokenizer['eos_id']}"
        )
    return {
        "bos_token_id": eot,
        "eos_token_id": eot,
        "pad_token_id": tokenizer["pad_id"] if tokenizer["pad_id"] >= 0 else eot,
    }


def _write_model(model: GPT, family: str, folder: Path, ids: dict[str, int]) -> None:
    if family == "gpt2":
        export_gpt2(with_zero_biases(model), folder)
    else:
        export_llama(model, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(ids, torch_dtype="float32")
    atomic_write_text(folder / "config.json", json.dumps(config, indent=1))
    atomic_write_text(folder / "generation_config.json", json.dumps(ids, indent=1))


def check_with_transformers(model: GPT, folder: Path) -> float | None:
    """Load the folder with transformers (offline) and return the largest logit difference from ours on
    one block of ids, relative to the largest logit; None when transformers is not installed."""
    try:
        from transformers import AutoModelForCausalLM
        from transformers.utils import logging as hf_logging
    except ImportError:
        return None
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # one check, not a download: no "Loading weights" bar in the CLI's output
    try:
        theirs = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).eval()  # fp32, as config.json says
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    length = min(model.config.block_size, 64)
    ids = torch.randint(0, model.config.vocab_size, (2, length), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours, _ = model.eval()(ids)
        diff = (theirs(ids).logits.float() - ours).abs().max().item() / max(1.0, ours.abs().max().item())
    if not diff <= LOGIT_TOLERANCE:
        raise ExportError(
            f"transformers' {type(theirs).__name__} loaded from {folder} gives logits {diff:.3g} (relative) "
            f"away from ours, more than {LOGIT_TOLERANCE}; not exported (please report this checkpoint)"
        )
    return diff


def _model_card(ckpt: Path, state: dict[str, Any], family: str, summary: dict[str, Any]) -> str:
    cfg = state["model_config"]
    return (
        f"# crawl2gpt model, {family}\n\nExported by `crawl2gpt export` from `{ckpt}` (step {state.get('step')}).\n"
        f"{cfg['n_layer']} layers, {cfg['n_head']} heads, width {cfg['n_embd']}, context {cfg['block_size']}, "
        f"vocabulary {cfg['vocab_size']} (SentencePiece BPE with byte fallback, converted to tokenizer.json).\n\n"
        "```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n"
        "tok = AutoTokenizer.from_pretrained(PATH)\nmodel = AutoModelForCausalLM.from_pretrained(PATH)\n"
        'ids = tok("The ", return_tensors="pt").input_ids\n'
        "print(tok.decode(model.generate(ids, max_new_tokens=40, do_sample=False)[0]))\n```\n\n"
        "No BOS token is added; documents were separated by `<|endoftext|>` in training, which is also where\n"
        'generation stops. A literal "<|endoftext|>" in text is encoded as text (split_special_tokens).\n\n'
        f"Checked at export: tokenizer ids equal SentencePiece's on {summary['tokenizer']['texts_checked']} texts; "
        + (
            f"largest logit difference from crawl2gpt's own forward pass {summary['max_logit_diff']:.2g} (relative).\n"
            if summary["max_logit_diff"] is not None
            else "logits not compared (transformers was not installed).\n"
        )
    )


def _readable_by_all(folder: Path) -> None:
    """safetensors writes its files owner-only (0600); a model folder is for serving tools that may run
    as another user, so every file gets the permissions the umask gives a new file."""
    umask = os.umask(0)
    os.umask(umask)
    for path in folder.iterdir():
        path.chmod(0o666 & ~umask)


def export_checkpoint(ckpt: str | Path, output: str | Path, force: bool = False, check: bool = True) -> dict[str, Any]:
    """Write `output`: config.json, model.safetensors, generation_config.json, tokenizer.json and its
    config, README.md. `ckpt` is a train folder, its checkpoints/ folder or one checkpoint."""
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise ExportError(f"{output} is a file; --output names the folder to write")
    if output.exists() and any(output.iterdir()) and not force:
        raise ExportError(f"{output} exists and is not empty; choose a new folder or pass --force to replace it")
    model, state, folder = load_model(ckpt, "cpu")
    family = target_architecture(model.config, state.get("arch", "gpt"))
    tokenizer = load_tokenizer(folder, state.get("tokenizer_sha256"))
    if not isinstance(tokenizer, SentencePieceTokenizer):
        raise ExportError(
            f"{folder} holds GPT-2's tokenizer: it was fine-tuned from GPT-2, and its fine-tuning run "
            "already wrote a folder transformers loads (gpt2/ beside checkpoints/)"
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(output)
    tmp.mkdir()
    try:
        summary: dict[str, Any] = {"checkpoint": str(folder), "step": state.get("step"), "architecture": family}
        summary["tokenizer"] = write_hf_tokenizer(tokenizer, tmp, model.config.block_size)
        if summary["tokenizer"]["vocab_size"] > model.config.vocab_size:
            raise CheckpointError(
                f"{tokenizer.path} has {summary['tokenizer']['vocab_size']} pieces, more than the "
                f"model's vocab_size {model.config.vocab_size}"
            )
        _write_model(model, family, tmp, special_ids(state, summary["tokenizer"], folder))
        summary["max_logit_diff"] = check_with_transformers(model, tmp) if check else None
        atomic_write_text(tmp / "README.md", _model_card(folder, state, family, summary))
        _readable_by_all(tmp)
        if output.exists():
            shutil.rmtree(output)
        tmp.rename(output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary["output"] = str(output)
    return summary


def summary_text(summary: dict[str, Any]) -> str:
    """One line for the CLI: what was written and what was checked."""
    diff = summary["max_logit_diff"]
    checked = (
        f"transformers' logits within {diff:.1e} (relative) of ours"
        if diff is not None
        else "logits not compared (install transformers to check them)"
    )
    return (
        f"{summary['output']}: {summary['architecture']} from {summary['checkpoint']} (step {summary['step']}); "
        f"tokenizer ids equal SentencePiece's on {summary['tokenizer']['texts_checked']} texts; {checked}"
    )
