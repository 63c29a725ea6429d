"""LLM contracts: the ``llm`` config section (causal LM, LoRA SFT, evaluation gate) and the
documents of ``llm_adapter``, ``llm_eval`` and ``promoted_llm_adapter``."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from style_pipeline.contracts.models import Profile
from style_pipeline.contracts.training import PromotionEvent
from style_pipeline.paths import DEFAULT_MODEL_DIR

DEFAULT_CAUSAL_LM = "Qwen/Qwen2.5-0.5B-Instruct"


class TinyCausalLmArch(BaseModel):
    """The random-init Llama-style model the ``tiny`` profile builds (tests, CI, demo)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "tiny-llama"
    hidden: int = Field(32, ge=8, description="hidden size (a multiple of heads)")
    layers: int = Field(2, ge=1)
    heads: int = Field(4, ge=1)
    vocab_size: int = Field(600, ge=300, description="byte-level BPE: 256 bytes + merges")
    max_positions: int = Field(512, ge=32)
    seed: int = 0


class LlmTrainingConfig(BaseModel):
    """Everything that decides an adapter (hashed into its metadata as ``config_hash``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rank: int = Field(8, ge=1, le=1024)
    alpha: int = Field(16, ge=1, description="LoRA alpha (scale alpha / rank)")
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    learning_rate: float = Field(2e-4, gt=0)
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    warmup_steps: int = Field(0, ge=0)
    num_train_epochs: int = Field(1, ge=1)
    max_steps: int | None = Field(None, ge=1, description="overrides num_train_epochs")
    batch_size: int = Field(4, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_length: int = Field(512, ge=16, description="tokens per example (longer: cut at end)")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="bf16/fp16 mixed precision (bf16 also on CPU; fp16 CUDA only)"
    )
    gradient_checkpointing: bool = False
    seed: int = 0


class LlmEvalSettings(BaseModel):
    """``llm.eval``: the prompt suite, generation length and the regression tolerances."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompts: str = Field(
        "data/llm_eval/prompts.jsonl", description="fixed prompt suite (JSONL: id, prompt)"
    )
    max_new_tokens: int = Field(48, ge=1, le=2048)
    max_val_examples: int = Field(256, ge=1, description="validation rows scored (first n)")
    perplexity_tolerance: float = Field(
        0.05, ge=0, description="relative: new ppl > previous * (1 + tol) is a regression"
    )
    refusal_tolerance: float = Field(
        0.10, ge=0, le=1, description="absolute rise of the refusal rate that is a regression"
    )
    length_tolerance: float = Field(
        0.5, ge=0, description="relative change of the mean response length that is a regression"
    )
    refusal_phrases: tuple[str, ...] = (
        "i can't",
        "i cannot",
        "i'm sorry",
        "i am sorry",
        "as an ai",
        "i'm not able to",
        "i am not able to",
        "i won't",
    )


class LlmSettings(BaseModel):
    """``llm:``: the causal LM, the nightly LoRA SFT on ``sft_dataset`` and its gate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    profile: Profile = "auto"
    pretrained: str = Field(DEFAULT_CAUSAL_LM, description="hub id or local folder")
    tiny: TinyCausalLmArch = TinyCausalLmArch()
    model_cache_dir: str = Field(
        f"{DEFAULT_MODEL_DIR}/llm", description="where the tiny model is built"
    )
    hf_cache_dir: str | None = None
    training: LlmTrainingConfig = LlmTrainingConfig()
    keep_versions: int = Field(3, ge=1, description="newest adapter versions kept (+ live)")
    min_train_examples: int = Field(1, ge=1, description="fewer: no training that night")
    log_every_n_steps: int = Field(10, ge=1)
    allow_tiny_promotion: bool = Field(
        False, description="let an adapter trained on the tiny model go live (demo, tests)"
    )
    eval: LlmEvalSettings = LlmEvalSettings()

    def config_hash(self) -> str:
        """sha256 of what decides the weights: training config, base model, profile."""
        payload = {
            "training": self.training.model_dump(mode="json"),
            "pretrained": self.pretrained,
            "tiny": self.tiny.model_dump(mode="json"),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class LlmAdapterDocument(BaseModel):
    """``llm_adapter/<partition>.json``: the published adapter version (or why none)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trained: bool
    reason: str | None = Field(None, description="why nothing was trained (trained false)")
    version: str | None = Field(None, description="<partition>.<NNN>")
    prefix: str | None = Field(None, description="store folder of the version")
    sha256: str | None = Field(None, description="sha256 of adapter_model.safetensors")
    snapshot_id: str | None = Field(None, description="sft_dataset snapshot trained on")
    config_hash: str | None = None
    base_model: str | None = Field(None, description="hub id, folder or tiny@sha256")
    model_profile: Literal["pretrained", "tiny"] | None = None
    model_profile_reason: str | None = None
    examples: dict[str, int] = Field(default_factory=dict, description="rows by split")
    steps: int = 0
    final_loss: float | None = None
    losses: list[tuple[int, float]] = Field(default_factory=list, description="(step, loss)")
    pruned: list[str] = Field(default_factory=list)
    tracking_run: str | None = Field(None, description="MLflow run id (tracking on)")


class LlmEvalDocument(BaseModel):
    """``llm_eval/<partition>.json``: the adapter's scores, compared with the previous eval."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str | None
    evaluated: bool
    reason: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    previous_partition: str | None = None
    previous_version: str | None = None
    regressions: list[dict[str, Any]] = Field(default_factory=list)
    compared: list[str] = Field(default_factory=list)
    samples: list[dict[str, str]] = Field(
        default_factory=list, description="prompt id, prompt and response of the suite"
    )


class LiveLlmAdapter(BaseModel):
    """``promoted_llm_adapter/live.json``: the live adapter version and its history."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str | None = None
    sha256: str | None = None
    history: list[PromotionEvent] = Field(default_factory=list)


class PromotedLlmAdapterDocument(BaseModel):
    """``promoted_llm_adapter/<partition>.json``: what the nightly promotion decided."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    decision: Literal["promoted", "already_live", "newer_live", "blocked", "nothing_trained"]
    version: str | None
    sha256: str | None = None
    previous: str | None = None
    live: str | None = None
    at: dt.datetime | None = None
    reason: str = ""
