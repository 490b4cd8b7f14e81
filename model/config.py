"""The model's config sections: pretraining (`train`) and fine-tuning (`finetune`).

They sit next to the model because only the model reads them; the data pipeline's sections are
in pipeline/config.py, and crawl2gpt/config.py puts both into the one run config a run writes.
Defaults are GPT-2 small as nanoGPT trains it, and alpaca-lora's LoRA settings, each cited.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any, Literal, Protocol, get_type_hints

from pydantic import ConfigDict, Field, create_model, model_validator

from model.gpt_config import GPTConfig
from pipeline.config import ConfigBase
from pipeline.config_section import Section

# --------------------------------------------------------------------------- training


def _architecture_fields() -> dict[str, Any]:
    """GPTConfig's fields as pydantic fields (type with bounds, default, description), less
    vocab_size, which the shards' tokenizer gives."""
    types = get_type_hints(GPTConfig, include_extras=True)
    return {
        f.name: (types[f.name], Field(f.default, **f.metadata)) for f in fields(GPTConfig) if f.name != "vocab_size"
    }


# The `train` section's architecture keys (train.n_layer, train.rope_base, ...): generated from
# model/gpt_config.py, the one place they are listed.
ArchitectureSection = create_model("ArchitectureSection", __base__=Section, **_architecture_fields())


class OptimizerSection(Section):
    """AdamW's settings, the same keys in `train` and `finetune`: both build their optimizer with
    model/training.py's make_optimizer. Betas as nanoGPT (GPT-3 paper, appendix B)."""

    weight_decay: float = Field(0.1, ge=0)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.95, ge=0, lt=1)
    grad_clip: float = Field(1.0, ge=0, description="0 = no clipping.")


# (Bases in this order: a written config lists the architecture keys first.)
# Fields are declarations (type, default, bounds, the reason for the default), so they look alike by nature.
class TrainConfig(OptimizerSection, ArchitectureSection):
    """GPT pretraining: the architecture (GPTConfig's fields) and how to train it. Defaults are
    GPT-2 small (124M) as in nanoGPT."""

    arch: Literal["gpt", "lstm"] = "gpt"

    batch_size: int = Field(16, ge=1, description="Micro-batch size per device.")
    grad_accum_steps: int = Field(1, ge=1)
    max_steps: int = Field(5000, ge=1)
    learning_rate: float = Field(6e-4, gt=0)
    min_lr: float = Field(6e-5, ge=0)
    warmup_steps: int = Field(200, ge=0)
    eval_interval: int = Field(250, ge=1)
    eval_batches: int = Field(20, ge=1)
    checkpoint_interval: int = Field(500, ge=1)
    sample_tokens: int = Field(64, ge=0)
    sample_prompt: str = ""
    optimizer: Literal["adamw", "muon"] = Field(
        "muon",
        description="'muon': torch.optim.Muon for the transformer blocks' 2-D weights and AdamW "
        "(train.learning_rate, weight_decay, beta1/2) for the embedding, tied head, norms and biases, as "
        "modded-nanogpt splits them (model/optimizers.py); 'adamw' for every weight. Muon is the default since "
        "benchmarks/time_to_loss.py (GPT-2 124M, 491k tokens of the shared WARCs, 2 seeds, H100) ended at "
        "validation loss 6.79 against AdamW's 7.46 (seed spread 0.06). FSDP2 shards the matrices Muon needs "
        "whole: use train.optimizer=adamw with train.parallel=fsdp.",
    )
    muon_lr: float = Field(
        0.02,
        gt=0,
        description="Muon's peak rate (Keller Jordan's Muon and modded-nanogpt's GPT-2 124M runs use "
        "0.02-0.05), scaled per matrix by sqrt(max(1, rows / cols)); it follows the same warmup and cosine decay.",
    )
    muon_momentum: float = Field(0.95, ge=0, lt=1, description="Muon's Nesterov momentum (its published default).")
    muon_weight_decay: float = Field(
        0.0, ge=0, description="Decoupled weight decay on the Muon matrices (modded-nanogpt's first Muon records: 0)."
    )
    precision: Literal["bf16", "fp16", "fp32"] = "bf16"
    compile: Literal["auto"] | bool = Field(
        "auto",
        description="torch.compile the model: 'auto' compiles on CUDA (GPT-2 124M on an H200: 625k tokens/s "
        "compiled vs 512k eager) and not on CPU, where compiling costs more than it saves on short runs.",
    )
    compile_scope: Literal["auto", "model", "blocks"] = Field(
        "auto",
        description="What torch.compile covers: 'model' (one graph with the loss; fusions across blocks), "
        "'blocks' (each Block alone, compiled once and reused: faster to compile, and FSDP2's hooks stay between "
        "graphs); 'auto' = blocks under FSDP, model otherwise.",
    )
    fp8: bool = Field(
        False,
        description="FP8 matmuls in the transformer blocks' linear layers (torchao's float8 training, "
        "tensorwise scaling; needs torchao and a GPU of compute capability >= 8.9, e.g. Hopper). The embedding "
        "and lm_head stay in bf16. Off until its loss is shown to match BF16's (docs/benchmarks-train.md).",
    )
    device: str = "auto"
    seed: int = 1337
    tf32: bool = Field(True, description="TF32 matmuls on CUDA (Ampere+), as nanoGPT enables.")
    parallel: Literal["ddp", "fsdp"] = Field("ddp", description="Under torchrun: DDP replicas or FSDP2 sharding.")
    fsdp_param_dtype: Literal["bf16", "fp32"] = Field(
        "bf16",
        description="FSDP2 with bf16 precision: 'bf16' gathers the weights as bf16 and reduces gradients "
        "in fp32 (MixedPrecisionPolicy, autocast off: half the all-gather bytes, no casts per step); 'fp32' gathers "
        "fp32 weights and lets autocast cast them, as DDP does.",
    )
    fsdp_reshard_after_forward: Literal["auto"] | bool = Field(
        "auto",
        description="FSDP2: free each block's gathered weights after its forward (true: ZeRO-3, least "
        "memory, a second all-gather in backward) or keep them until backward (false). The last block is never "
        "resharded (backward needs it first). 'auto' = false while the model has under 1B parameters (its bf16 "
        "copy is under 2 GiB a GPU), true above.",
    )
    fsdp_prefetch: int = Field(
        1,
        ge=0,
        description="FSDP2: blocks whose all-gather is issued ahead of time, in forward and backward "
        "(explicit prefetching); 0 leaves FSDP2's implicit prefetching alone.",
    )
    fsdp_unit: Literal["auto", "block", "model"] = Field(
        "auto",
        description="FSDP2's sharding groups: 'block' (one per transformer block plus the root: each "
        "block's weights can be freed after use, ZeRO-3) or 'model' (one group: the weights are gathered once "
        "before forward and kept until backward ends, gradients reduce-scattered once: few hooks and collectives, "
        "ZeRO-2's memory). 'auto' = model under 1B parameters (GPT-2 124M on 2 H200s: 1.00x DDP's tokens/s vs "
        "0.61x with blocks), block from 1B.",
    )
    profile_steps: int = Field(
        0,
        ge=0,
        description="Trace this many training steps (after the third) with torch.profiler, CPU and CUDA, "
        "into OUT/profile/: trace.json.gz, table.txt and the GPU's idle time per step (model/profiling.py).",
    )
    nproc_per_node: int = Field(
        1, ge=1, description="Processes (one per GPU) the train stage launches through torchrun; 1 trains in-process."
    )
    keep_checkpoints: int = Field(2, ge=1, description="Newest checkpoints kept in checkpoints/.")
    sample_temperature: float = Field(
        0.8, ge=0, description="Sampling temperature of the sample at each eval (nanoGPT's sample.py default)."
    )
    sample_top_k: int = Field(
        200, ge=0, description="Top-k of the sample at each eval (nanoGPT's sample.py default); 0 = off."
    )

    def gpt_config(self, vocab_size: int) -> GPTConfig:
        """The architecture this section trains, for a tokenizer of vocab_size pieces."""
        architecture = {name: getattr(self, name) for name in ArchitectureSection.model_fields}
        return GPTConfig(vocab_size=vocab_size, **architecture)

    @model_validator(mode="after")
    def _check_consistency(self) -> TrainConfig:
        if self.n_embd % self.n_head:
            raise ValueError(f"train.n_embd ({self.n_embd}) must be divisible by train.n_head ({self.n_head})")
        if self.positions == "rope" and self.arch == "gpt" and (self.n_embd // self.n_head) % 2:
            # RoPE rotates channel pairs: an odd head size fails at the first forward pass (model/gpt.py)
            raise ValueError(
                f"train.positions=rope needs an even head size, train.n_embd / train.n_head = "
                f"{self.n_embd} / {self.n_head} = {self.n_embd // self.n_head}; change either, or use "
                "train.positions=learned"
            )
        if self.min_lr > self.learning_rate:
            raise ValueError(f"train.min_lr ({self.min_lr}) is above train.learning_rate ({self.learning_rate})")
        return self


# --------------------------------------------------------------------------- fine-tuning


class LoRAConfig(Section):
    """LoRA adapters (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models")."""

    rank: int = Field(8, ge=1, description="r = 8 as in alpaca-lora (tloen/alpaca-lora finetune.py defaults).")
    alpha: float = Field(16.0, gt=0, description="Update scaled by alpha / r; alpaca-lora uses alpha 16 with r 8.")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the adapter's input; alpaca-lora uses 0.05.")
    target_modules: list[str] = Field(
        default_factory=lambda: ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"],
        description="Linear layers (by name suffix) that get adapters: attention and MLP projections "
        "(Hu et al. adapt attention only; QLoRA, Dettmers et al. 2023, "
        "finds all linear layers are needed to match full FT).",
    )
    learning_rate: float = Field(
        3e-4, gt=0, description="alpaca-lora's learning rate (adapters need a larger step than full FT)."
    )


class ClassifyConfig(Section):
    """Classification fine-tuning: the LM head replaced by a linear head over pooled hidden states."""

    pooling: Literal["last", "mean"] = Field(
        "last",
        description="'last': hidden state of the last real token (the only one that saw the whole text in a "
        "causal model, as GPT-1's classifier, Radford et al. 2018, section 3.3); 'mean': mean over real tokens.",
    )
    train_blocks: int = Field(
        -1, ge=-1, description="Transformer blocks trained, counted from the top; -1 = all, 0 = head only."
    )
    max_tokens: int = Field(128, ge=2, description="Texts are cut to this many tokens (counted as 'truncated').")
    learning_rate: float = Field(1e-4, gt=0, description="AdamW learning rate of the classifier run.")
    max_steps: int = Field(300, ge=1)
    batch_size: int = Field(32, ge=1)
    max_examples_per_class: int = Field(
        0, ge=0, description="Cap per label (balanced subsets for quick runs); 0 = all."
    )
    labels: list[str] = Field(default_factory=list, description="Keep only these labels; empty keeps all.")
    val_fraction: float = Field(
        0.2, gt=0, lt=1, description="Texts whose hash falls below this are the held-out split."
    )


class FinetuneConfig(OptimizerSection):
    """Supervised fine-tuning (SFT) and classification fine-tuning of a pretrained GPT."""

    method: Literal["full", "lora"] = Field("full", description="Train every weight, or only LoRA adapters.")
    lora: LoRAConfig = Field(default_factory=LoRAConfig)
    classify: ClassifyConfig = Field(default_factory=ClassifyConfig)
    learning_rate: float = Field(
        3e-5, gt=0, description="Full fine-tuning rate, nanoGPT's config/finetune_shakespeare.py."
    )
    warmup_steps: int = Field(10, ge=0, description="Linear warmup, then cosine decay to min_lr_ratio x the rate.")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="Chinchilla/nanoGPT decay to 10% of the peak rate.")
    weight_decay: float = Field(0.0, ge=0, description="nanoGPT fine-tunes without weight decay on small data.")
    max_steps: int = Field(200, ge=1)
    batch_size: int = Field(8, ge=1, description="Sequences (padding) or packed rows (packing) per step.")
    block_size: int = Field(0, ge=0, description="Longest sequence; 0 = the base model's context length.")
    packing: bool = Field(
        False,
        description="Pack several examples per row with a block-diagonal attention mask and positions "
        "restarting per example (no cross-example attention), instead of padding each example alone.",
    )
    overlong: Literal["drop", "truncate"] = Field(
        "drop",
        description="Examples longer than block_size: 'drop' them (counted 'too_long'), or 'truncate' the "
        "response end (counted 'truncated'; dropped when not one response token fits).",
    )
    val_fraction: float = Field(0.05, gt=0, lt=1, description="Examples whose text hash falls below this are held out.")
    eval_interval: int = Field(50, ge=1)
    eval_prompts: int = Field(
        5, ge=0, description="Held-out prompts answered (greedy) into answers.jsonl after training."
    )
    max_new_tokens: int = Field(64, ge=1)
    seed: int = 1337
    device: str = Field("auto", description="'auto' = cuda when available, else cpu.")
    precision: Literal["bf16", "fp32"] = Field("bf16", description="bf16 autocast on CUDA; CPU always runs fp32.")


class ModelSections(ConfigBase):
    """The model's part of a run config file. Reading a whole run config with it ignores the data
    sections, so `python -m model.train --config RUN/config.yaml` needs nothing above model/."""

    model_config = ConfigDict(extra="ignore", validate_assignment=True)

    train: TrainConfig = Field(default_factory=TrainConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)


class ModelRun(Protocol):
    """What model code reads of a run's config: its own sections. Both `ModelSections` and the full
    run config (crawl2gpt/config.py) have them."""

    train: TrainConfig
    finetune: FinetuneConfig

    def write(self, path: str | Path) -> None: ...
