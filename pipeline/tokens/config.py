"""The `tokenizer:` and `shards:` sections of the config: SentencePiece training and the token shards."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pipeline.config_section import Section

# With byte fallback, SentencePiece needs 256 byte pieces + <|pad|>, <unk>, <|endoftext|> + every character
# the corpus covers: any corpus has one, so below this no corpus can train (how many more is the data's to say).
BYTE_FALLBACK_MIN_VOCAB = 260


class TokenizerConfig(Section):
    """SentencePiece BPE trained on a deterministic sample of the deduplicated text."""

    vocab_size: int = Field(32_000, ge=64, description="GPT-2 scale vocabularies are 32k-50k.")
    sample_bytes: int = Field(200_000_000, gt=0, description="Bytes of text drawn (by doc hash) for training.")
    input_sentence_size: int = Field(2_000_000, ge=0, description="SentencePiece input_sentence_size (0 = all).")
    character_coverage: float = Field(0.9995, gt=0, le=1)
    byte_fallback: bool = True
    normalization_rule_name: Literal["identity", "nfkc", "nmt_nfkc", "nfkc_cf", "nmt_nfkc_cf"] = Field(
        "identity",
        description="NFC is applied upstream; 'identity' keeps text byte-exact. The others are "
        "SentencePiece's built-in rules (any other name fails its training).",
    )
    reuse: str | None = Field(None, description="Path to an existing tokenizer.model to reuse instead of training.")
    threads: int = Field(0, ge=0, description="0 = all cores.")
    seed: int = Field(
        1, description="SentencePiece random seed (input_sentence_size subsampling), for reproducible models."
    )
    split_digits: bool = Field(
        True,
        description="LLaMA (Touvron et al. 2023, sec. 2.1): numbers split into single digits. "
        "Costs ~3% more tokens on web text (docs/benchmarks-shards.md).",
    )

    @model_validator(mode="after")
    def _check_room_for_bytes(self) -> TokenizerConfig:
        """With byte fallback SentencePiece reserves 256 byte pieces and our 3 special pieces before
        the first character or merge; a smaller vocabulary fails its training, after dedup."""
        if self.byte_fallback and self.vocab_size < BYTE_FALLBACK_MIN_VOCAB and not self.reuse:
            raise ValueError(
                f"tokenizer.vocab_size={self.vocab_size} leaves no room for learned pieces: byte_fallback "
                f"takes 256 ids and the special pieces 3; raise tokenizer.vocab_size (above "
                f"{BYTE_FALLBACK_MIN_VOCAB} plus the corpus's characters: 32000 is GPT-2 scale) or set "
                "tokenizer.byte_fallback=false"
            )
        return self


class ShardsConfig(Section):
    target_shard_tokens: int = Field(50_000_000, gt=0, description="Start a new shard past this many tokens.")
    val_fraction: float = Field(
        0.01, ge=0, lt=1, description="Documents whose id hash falls below this go to validation."
    )
    append_eot: bool = Field(True, description="Append <|endoftext|> after each document.")
