"""One typed config for a whole run: ingest, filters, dedup, tokenizer, shards, training.

Defaults are the published choices, each cited next to its field:
  - Gopher: Rae et al. 2021, "Scaling Language Models: Methods, Analysis & Insights from
    Training Gopher", appendix A.1.1 (quality filters) and table A1 (repetition filters).
  - C4: Raffel et al. 2020, "Exploring the Limits of Transfer Learning...", section 2.2.
  - FineWeb: Penedo et al. 2024, "The FineWeb Datasets", section 3 and its datatrove recipe
    (LanguageFilter 0.65, MinHash 14 bands x 8 rows on 5-grams, FineWebQualityFilter).

A config is read from YAML (`RunConfig.from_yaml`) and overridden on the command line with
dotted `section.field=value` pairs (`RunConfig.with_overrides`). Unknown keys are an error,
so a typo never silently falls back to a default.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.errors import ConfigError


class Section(BaseModel):
    """Base of every config section: strict keys, validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------- ingest


class ExtractConfig(Section):
    """WARC reading, HTML extraction (trafilatura) and text normalization."""

    max_page_bytes: int = Field(2_000_000, gt=0, description="Skip HTML payloads larger than this (counted as 'too_large').")
    keep_truncated: bool = Field(False, description="Keep payloads marked WARC-Truncated (cut short by the crawler).")
    favor_precision: bool = Field(
        False,
        description="trafilatura favor_precision. Off by measurement (benchmarks/extraction_quality.py, docs/benchmarks-ingest.md): "
        "with the boilerplate-line cleanup, the balanced setting scores higher F1 at much higher recall.",
    )
    favor_recall: bool = Field(False, description="trafilatura favor_recall.")
    include_tables: bool = Field(True, description="Keep text inside <table> elements.")
    include_comments: bool = Field(False, description="trafilatura include_comments: reader comments are not main text.")
    deduplicate: bool = Field(False, description="trafilatura deduplicate (drops repeated text segments within a page).")
    fast: bool = Field(False, description="trafilatura fast mode: skip its readability/jusText fallback comparison.")
    fallback_on_empty: bool = Field(True, description="Retry with the recall-oriented setting when the precise pass returns nothing.")
    min_extracted_chars: int = Field(1, ge=0, description="Documents with fewer characters after extraction are skipped ('empty_text').")
    extraction_timeout_s: float = Field(30.0, gt=0, description="Per-document time limit for extraction.")
    remove_boilerplate_lines: bool = Field(True, description="Drop leftover navigation/boilerplate lines during normalization.")
    fix_mojibake: bool = Field(True, description="Repair mojibake with ftfy during normalization.")
    max_gzip_member_bytes: int = Field(64_000_000, gt=0, description="Decompression cap per WARC record (bomb guard).")


# --------------------------------------------------------------------------- filters


class GopherQualityConfig(Section):
    """Gopher quality filter, Rae et al. 2021, appendix A.1.1."""

    enabled: bool = True
    min_doc_words: int = Field(50, description="Gopher: documents need 50..100,000 words.")
    max_doc_words: int = Field(100_000)
    min_avg_word_length: float = Field(3.0, description="Gopher: mean word length 3..10 characters.")
    max_avg_word_length: float = Field(10.0)
    max_symbol_word_ratio: float = Field(0.1, description="Gopher: at most 0.1 '#' or '...' per word.")
    max_bullet_lines_ratio: float = Field(0.9, description="Gopher: at most 90% of lines start with a bullet.")
    max_ellipsis_lines_ratio: float = Field(0.3, description="Gopher: at most 30% of lines end with an ellipsis.")
    max_non_alpha_words_ratio: float = Field(0.8, description="Gopher: at least 80% of words contain a letter (datatrove's name).")
    min_stop_words: int = Field(2, description="Gopher: at least 2 of the 8 English stop words.")
    stop_words: list[str] = Field(default_factory=lambda: ["the", "be", "to", "of", "and", "that", "have", "with"])
    stop_words_by_language: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Stop-word lists for other languages (FineWeb-2 uses per-language lists); "
        "a kept language without a list skips the stop-word rule, 'en' uses stop_words.",
    )


class GopherRepetitionConfig(Section):
    """Gopher repetition filter, Rae et al. 2021, table A1."""

    enabled: bool = True
    dup_line_frac: float = Field(0.3, description="Gopher: duplicate lines / lines.")
    dup_para_frac: float = Field(0.3, description="Gopher: duplicate paragraphs / paragraphs.")
    dup_line_char_frac: float = Field(0.2, description="Gopher: characters in duplicate lines / characters.")
    dup_para_char_frac: float = Field(0.2, description="Gopher: characters in duplicate paragraphs / characters.")
    top_n_grams: list[tuple[int, float]] = Field(default_factory=lambda: [(2, 0.2), (3, 0.18), (4, 0.16)])
    dup_n_grams: list[tuple[int, float]] = Field(
        default_factory=lambda: [(5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10)]
    )


class C4Config(Section):
    """C4 rules, Raffel et al. 2020, section 2.2 (as in datatrove's C4QualityFilter)."""

    enabled: bool = True
    filter_no_terminal_punct: bool = Field(True, description="C4: drop lines not ending in terminal punctuation.")
    min_words_per_line: int = Field(3, description="C4: drop lines with fewer than 3 words.")
    max_word_length: int = Field(1000, description="C4: drop lines with a word longer than 1000 characters.")
    min_num_sentences: int = Field(5, description="C4: drop pages with fewer than 5 sentences (after line removal).")
    filter_javascript: bool = Field(True, description="C4: drop lines containing 'javascript'.")
    filter_policy: bool = Field(True, description="C4: drop lines with 'terms of use', 'privacy policy', cookie notices.")
    filter_lorem_ipsum: bool = Field(True, description="C4: drop pages containing 'lorem ipsum'.")
    filter_curly_bracket: bool = Field(True, description="C4: drop pages containing '{' (code).")
    remove_citations: bool = Field(True, description="C4: remove wikipedia-style [1] citation markers.")
    badwords: bool = Field(False, description="Drop pages with a word from the badwords list (optional in C4).")
    badwords_file: str | None = Field(
        None, description="One bad word per line (C4 used LDNOOBW's list); required when badwords is on."
    )
    rewrite_text: bool = Field(
        True, description="C4 and datatrove's C4QualityFilter keep only the lines that pass the line rules."
    )


class FineWebConfig(Section):
    """FineWeb's own quality rules, Penedo et al. 2024, section 3.3."""

    enabled: bool = True
    line_punct_thr: float = Field(0.12, description="FineWeb: at least 12% of lines end in punctuation.")
    line_punct_exclude_zero: bool = False
    short_line_thr: float = Field(0.67, description="FineWeb: at most 67% of lines shorter than 30 chars.")
    short_line_length: int = 30
    char_duplicates_ratio: float = Field(0.01, description="FineWeb: at most 1% of characters in duplicated lines.")
    new_line_ratio: float = Field(0.3, description="FineWeb: at most 0.3 newlines per word.")


class LanguageConfig(Section):
    """fastText lid.176 language identification (FineWeb keeps English with score >= 0.65)."""

    enabled: bool = True
    languages: list[str] = Field(default_factory=lambda: ["en"], description="ISO 639-1 codes to keep; empty keeps all.")
    min_score: float = Field(0.65, ge=0, le=1, description="FineWeb: fastText English score >= 0.65.")
    partition_by_language: bool = Field(False, description="Write kept documents into one folder per language.")
    second_opinion_below: float = Field(
        0.9, ge=0, le=1,
        description="Consult lingua when fastText is less sure than this (0.9: 0.960 macro at ~2,000 sentences/s "
        "per core vs 0.959 at 0.8, benchmarks/langid_quality.py).",
    )
    second_opinion: bool = Field(True, description="Use lingua (offline models) as the second detector.")
    max_chars: int = Field(
        10_000, gt=0, description="Characters of a document given to the detectors (the opening is enough; bounds cost)."
    )


class PIIConfig(Section):
    """FineWeb masks e-mail addresses and public IP addresses."""

    enabled: bool = True
    email_replacement: str = "email@example.com"
    ip_replacement: str = "0.0.0.0"
    only_public_ips: bool = Field(True, description="FineWeb/datatrove mask only global IPs (private ones are not PII).")


class FilterConfig(Section):
    gopher_quality: GopherQualityConfig = Field(default_factory=GopherQualityConfig)
    gopher_repetition: GopherRepetitionConfig = Field(default_factory=GopherRepetitionConfig)
    c4: C4Config = Field(default_factory=C4Config)
    fineweb: FineWebConfig = Field(default_factory=FineWebConfig)
    language: LanguageConfig = Field(default_factory=LanguageConfig)
    pii: PIIConfig = Field(default_factory=PIIConfig)


# --------------------------------------------------------------------------- dedup


class DedupConfig(Section):
    """Exact hash dedup, then MinHash-LSH near-dup (FineWeb: 14 bands x 8 rows, word 5-grams)."""

    exact: bool = True
    near: bool = True
    ngram: int = Field(5, ge=1, description="FineWeb: word 5-gram shingles.")
    bands: int = Field(14, ge=1, description="FineWeb: 14 buckets ...")
    rows: int = Field(8, ge=1, description="... of 8 hashes = 112 permutations.")
    seed: int = 1
    backend: Literal["memory", "redis"] = "memory"
    redis_host: str = "127.0.0.1"
    redis_port: int = 6379
    redis_prefix: str = "crawl2gpt"
    verify: Literal["none", "signature", "exact"] = Field(
        "exact",
        description="Check LSH candidate pairs before merging: 'none' = FineWeb (a shared band merges, S-curve knee "
        "~0.72), 'signature' = estimated Jaccard, 'exact' = Jaccard of the stored shingle sets. The issue asks for "
        "precision >= 0.98 at J >= 0.8, which plain banding misses (docs/benchmarks-dedup.md).",
    )
    verify_threshold: float = Field(0.8, ge=0, le=1, description="Jaccard a verified pair needs (the issue's 0.8).")

    @property
    def num_perm(self) -> int:
        return self.bands * self.rows


# --------------------------------------------------------------------------- tokenizer and shards


class TokenizerConfig(Section):
    """SentencePiece BPE trained on a deterministic sample of the deduplicated text."""

    vocab_size: int = Field(32_000, ge=64, description="GPT-2 scale vocabularies are 32k-50k.")
    sample_bytes: int = Field(200_000_000, gt=0, description="Bytes of text drawn (by doc hash) for training.")
    input_sentence_size: int = Field(2_000_000, ge=0, description="SentencePiece input_sentence_size (0 = all).")
    character_coverage: float = Field(0.9995, gt=0, le=1)
    byte_fallback: bool = True
    normalization_rule_name: str = Field("identity", description="NFC is applied upstream; 'identity' keeps text byte-exact.")
    reuse: str | None = Field(None, description="Path to an existing tokenizer.model to reuse instead of training.")
    threads: int = Field(0, ge=0, description="0 = all cores.")
    seed: int = Field(1, description="SentencePiece random seed (input_sentence_size subsampling), for reproducible models.")
    split_digits: bool = Field(
        True, description="LLaMA (Touvron et al. 2023, sec. 2.1): numbers split into single digits. "
        "Costs ~3% more tokens on web text (docs/benchmarks-shards.md).",
    )


class ShardsConfig(Section):
    target_shard_tokens: int = Field(50_000_000, gt=0, description="Start a new shard past this many tokens.")
    val_fraction: float = Field(0.01, ge=0, lt=1, description="Documents whose id hash falls below this go to validation.")
    append_eot: bool = Field(True, description="Append <|endoftext|> after each document.")


# --------------------------------------------------------------------------- training


class TrainConfig(Section):
    """GPT pretraining. Defaults are GPT-2 small (124M) as in nanoGPT."""

    n_layer: int = Field(12, ge=1)
    n_head: int = Field(12, ge=1)
    n_embd: int = Field(768, ge=1)
    block_size: int = Field(1024, ge=2)
    dropout: float = Field(0.0, ge=0, lt=1)
    bias: bool = True
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    mlp: Literal["gelu", "swiglu"] = "gelu"
    positions: Literal["learned", "rope"] = "learned"
    attention: Literal["fused", "manual"] = "fused"
    residual: Literal["fp32", "bf16"] = Field(
        "bf16", description="Residual stream dtype under BF16 autocast: bf16 (Megatron-LM's default, "
        "fp32_residual_connection=False; llm.c) or fp32 (nanoGPT, transformers). bf16 moves half the bytes "
        "through every norm and add; weights stay fp32 and the loss matched fp32 within seed noise "
        "(docs/benchmarks-train.md).")
    fused_loss: bool = Field(
        True, description="On a GPU, fuse the un-embedding matmul and cross-entropy so the logits are read "
        "once and never kept (model/fused_loss.py); CPU and evaluation use F.cross_entropy.")
    arch: Literal["gpt", "lstm"] = "gpt"

    batch_size: int = Field(16, ge=1, description="Micro-batch size per device.")
    grad_accum_steps: int = Field(1, ge=1)
    max_steps: int = Field(5000, ge=1)
    learning_rate: float = Field(6e-4, gt=0)
    min_lr: float = Field(6e-5, ge=0)
    warmup_steps: int = Field(200, ge=0)
    weight_decay: float = Field(0.1, ge=0)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.95, ge=0, lt=1)
    grad_clip: float = Field(1.0, ge=0, description="0 = no clipping.")
    eval_interval: int = Field(250, ge=1)
    eval_batches: int = Field(20, ge=1)
    checkpoint_interval: int = Field(500, ge=1)
    sample_tokens: int = Field(64, ge=0)
    sample_prompt: str = ""
    precision: Literal["bf16", "fp16", "fp32"] = "bf16"
    compile: bool = False
    device: str = "auto"
    seed: int = 1337
    tf32: bool = Field(True, description="TF32 matmuls on CUDA (Ampere+), as nanoGPT enables.")
    parallel: Literal["ddp", "fsdp"] = Field("ddp", description="Under torchrun: DDP replicas or FSDP2 sharding.")
    nproc_per_node: int = Field(1, ge=1, description="Processes (one per GPU) the train stage launches through torchrun; 1 trains in-process.")
    keep_checkpoints: int = Field(2, ge=1, description="Newest checkpoints kept in checkpoints/.")
    sample_temperature: float = Field(0.8, ge=0, description="Sampling temperature of the sample at each eval (nanoGPT's sample.py default).")
    sample_top_k: int = Field(200, ge=0, description="Top-k of the sample at each eval (nanoGPT's sample.py default); 0 = off.")


# --------------------------------------------------------------------------- fine-tuning


class LoRAConfig(Section):
    """LoRA adapters (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models")."""

    rank: int = Field(8, ge=1, description="r = 8 as in alpaca-lora (tloen/alpaca-lora finetune.py defaults).")
    alpha: float = Field(16.0, gt=0, description="Update scaled by alpha / r; alpaca-lora uses alpha 16 with r 8.")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the adapter's input; alpaca-lora uses 0.05.")
    target_modules: list[str] = Field(
        default_factory=lambda: ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"],
        description="Linear layers (by name suffix) that get adapters: attention and MLP projections "
        "(Hu et al. adapt attention only; QLoRA, Dettmers et al. 2023, finds all linear layers are needed to match full FT).",
    )
    learning_rate: float = Field(3e-4, gt=0, description="alpaca-lora's learning rate (adapters need a larger step than full FT).")


class ClassifyConfig(Section):
    """Classification fine-tuning: the LM head replaced by a linear head over pooled hidden states."""

    pooling: Literal["last", "mean"] = Field(
        "last", description="'last': hidden state of the last real token (the only one that saw the whole text in a "
        "causal model, as GPT-1's classifier, Radford et al. 2018, section 3.3); 'mean': mean over real tokens.",
    )
    train_blocks: int = Field(-1, ge=-1, description="Transformer blocks trained, counted from the top; -1 = all, 0 = head only.")
    max_tokens: int = Field(128, ge=2, description="Texts are cut to this many tokens (counted as 'truncated').")
    learning_rate: float = Field(1e-4, gt=0, description="AdamW learning rate of the classifier run.")
    max_steps: int = Field(300, ge=1)
    batch_size: int = Field(32, ge=1)
    max_examples_per_class: int = Field(0, ge=0, description="Cap per label (balanced subsets for quick runs); 0 = all.")
    labels: list[str] = Field(default_factory=list, description="Keep only these labels; empty keeps all.")
    val_fraction: float = Field(0.2, gt=0, lt=1, description="Texts whose hash falls below this are the held-out split.")


class FinetuneConfig(Section):
    """Supervised fine-tuning (SFT) and classification fine-tuning of a pretrained GPT."""

    method: Literal["full", "lora"] = Field("full", description="Train every weight, or only LoRA adapters.")
    lora: LoRAConfig = Field(default_factory=LoRAConfig)
    classify: ClassifyConfig = Field(default_factory=ClassifyConfig)
    learning_rate: float = Field(3e-5, gt=0, description="Full fine-tuning rate, nanoGPT's config/finetune_shakespeare.py.")
    warmup_steps: int = Field(10, ge=0, description="Linear warmup, then cosine decay to min_lr_ratio x the rate.")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="Chinchilla/nanoGPT decay to 10% of the peak rate.")
    weight_decay: float = Field(0.0, ge=0, description="nanoGPT fine-tunes without weight decay on small data.")
    grad_clip: float = Field(1.0, ge=0)
    max_steps: int = Field(200, ge=1)
    batch_size: int = Field(8, ge=1, description="Sequences (padding) or packed rows (packing) per step.")
    block_size: int = Field(0, ge=0, description="Longest sequence; 0 = the base model's context length.")
    packing: bool = Field(
        False, description="Pack several examples per row with a block-diagonal attention mask and positions "
        "restarting per example (no cross-example attention), instead of padding each example alone.",
    )
    overlong: Literal["drop", "truncate"] = Field(
        "drop", description="Examples longer than block_size: 'drop' them (counted 'too_long'), or 'truncate' the "
        "response end (counted 'truncated'; dropped when not one response token fits).",
    )
    val_fraction: float = Field(0.05, gt=0, lt=1, description="Examples whose text hash falls below this are held out.")
    eval_interval: int = Field(50, ge=1)
    eval_prompts: int = Field(5, ge=0, description="Held-out prompts answered (greedy) into answers.jsonl after training.")
    max_new_tokens: int = Field(64, ge=1)
    seed: int = 1337
    device: str = Field("auto", description="'auto' = cuda when available, else cpu.")
    precision: Literal["bf16", "fp32"] = Field("bf16", description="bf16 autocast on CUDA; CPU always runs fp32.")


# --------------------------------------------------------------------------- the run


class RunConfig(Section):
    """Everything one run uses. `crawl2gpt run` writes it to RUN_DIR/config.yaml."""

    name: str = "crawl2gpt"
    workers: int = Field(0, ge=0, description="Processes for per-part work; 0 = all cores.")
    task_runner: Literal["processes", "threads", "dask", "ray"] = Field(
        "processes",
        description="Where Prefect runs per-part tasks: 'processes' (task threads feeding a local process pool; "
        "starts in a second), 'threads' (in-process, for I/O-bound parts), 'dask' (prefect-dask: a LocalCluster, "
        "or the cluster at dask_address), 'ray' (prefect-ray, if installed).",
    )
    dask_address: str | None = Field(None, description="tcp://host:8786 of a running Dask scheduler; empty starts a LocalCluster.")
    extract: ExtractConfig = Field(default_factory=ExtractConfig)
    filter: FilterConfig = Field(default_factory=FilterConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)
    shards: ShardsConfig = Field(default_factory=ShardsConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)

    @model_validator(mode="after")
    def _check_consistency(self) -> "RunConfig":
        if self.train.n_embd % self.train.n_head:
            raise ValueError(f"train.n_embd ({self.train.n_embd}) must be divisible by train.n_head ({self.train.n_head})")
        return self

    # -- loading and saving ---------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> "RunConfig":
        try:
            return cls.model_validate(data or {})
        except ValidationError as err:
            raise ConfigError(f"invalid {source}:\n{err}") from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> "RunConfig":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping at top level")
        return cls.from_dict(data, source=str(path))

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: list[str] | None = None) -> "RunConfig":
        cfg = cls.from_yaml(path) if path else cls()
        return cfg.with_overrides(overrides or [])

    def with_overrides(self, overrides: list[str]) -> "RunConfig":
        """Apply `a.b.c=value` strings; values are parsed as YAML (so 0.7, true, [en, de] work)."""
        data = self.model_dump(mode="json")
        for item in overrides:
            key, sep, raw = item.partition("=")
            if not sep or not key:
                raise ConfigError(f"override {item!r} must look like section.field=value")
            node = data
            parts = key.strip().split(".")
            for part in parts[:-1]:
                if not isinstance(node.get(part), dict):
                    raise ConfigError(f"override {item!r}: no config section {part!r}")
                node = node[part]
            if parts[-1] not in node:
                raise ConfigError(f"override {item!r}: unknown config key {key!r}")
            node[parts[-1]] = yaml.safe_load(raw)
        return type(self).from_dict(data, source="config overrides")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)

    def write(self, path: str | Path) -> None:
        from pipeline.atomic import atomic_write_text

        atomic_write_text(Path(path), self.to_yaml())


def config_slice(cfg: RunConfig, stage: str) -> dict[str, Any]:
    """The part of the config a stage's output depends on (what its manifest fingerprints)."""
    slices = {
        "extract": {"extract": cfg.extract},
        "filter": {"filter": cfg.filter},
        "dedup": {"dedup": cfg.dedup},
        "tokenizer": {"tokenizer": cfg.tokenizer},
        "shards": {"shards": cfg.shards},
        "train": {"train": cfg.train},
        "finetune": {"finetune": cfg.finetune},
    }
    if stage not in slices:
        raise ConfigError(f"unknown stage {stage!r}; stages are {', '.join(slices)}")
    # Where the LSH index lives does not change which documents survive, so moving it to
    # Redis must not invalidate a finished dedup stage.
    not_output_relevant = {"backend", "redis_host", "redis_port", "redis_prefix"}
    return {
        k: v.model_dump(mode="json", exclude=not_output_relevant if k == "dedup" else None)
        for k, v in slices[stage].items()
    }
