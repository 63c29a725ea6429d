"""Captioning contracts: captioner backends, endpoint, BLIP generation and fine-tune config."""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from style_pipeline.contracts.caption_checks import CaptionCheckConfig
from style_pipeline.contracts.captioning_vlm import VlmCaptionConfig
from style_pipeline.contracts.models import BlipModelConfig
from style_pipeline.contracts.sections import Section
from style_pipeline.redaction import has_userinfo, redact

DEFAULT_TRIGGER = "sps_style"
DEFAULT_CONDITIONAL = "a photo in the style of {trigger}, "
DEFAULT_INSTRUCTION = (
    "Write one short training caption (at most {max_words} words, lowercase, no full stop) "
    "describing this image. Use only these words where possible:\n{vocabulary}\n"
    "Plain function words (a, the, of, with, in, on) are fine. Do not name the style."
)


def conditional_prompt(trigger: str, template: str = DEFAULT_CONDITIONAL) -> str:
    """The BLIP prompt for ``trigger``; the template must contain ``{trigger}``."""
    if "{trigger}" not in template:
        raise ValueError(f"prompt template has no {{trigger}} placeholder: {template!r}")
    if not trigger.strip():
        raise ValueError("trigger word must not be empty")
    return template.format(trigger=trigger.strip())


Backend = Literal["blip", "vlm", "openai", "template", "auto"]


class EndpointConfig(Section):
    """An OpenAI-compatible chat-completions endpoint with vision input (vLLM, Ollama, ...)."""

    base_url: str | None = Field(
        None, description="e.g. http://127.0.0.1:8000/v1; no user:password@ (use api_key_env)"
    )
    model: str | None = Field(None, description="model name sent in the request")
    api_key_env: str | None = Field(
        "OPENAI_API_KEY", description="NAME of the environment variable holding the key"
    )
    timeout_s: float = Field(60.0, gt=0)
    max_attempts: int = Field(5, ge=1, le=20, description="attempts per image, first included")
    backoff_base_s: float = Field(1.0, ge=0, description="delay scale: base * 2**retry")
    backoff_max_s: float = Field(30.0, ge=0, description="cap of one delay (Retry-After too)")
    max_image_edge: int = Field(768, ge=32, description="images are downscaled to this edge")
    temperature: float = Field(0.0, ge=0, le=2)
    cache: bool = Field(True, description="cache answers per (image, prompt, model) in the store")
    prompt_style: Literal["instruction", "joycaption"] = Field(
        "instruction",
        description="instruction: captioning.caption.instruction with the ontology terms; "
        "joycaption: a descriptive-caption request as JoyCaption models are prompted "
        "(system + user turn; tags or sentence per captioning.caption.style)",
    )
    caption_words: int = Field(40, ge=1, description="caption length asked of the model")

    @model_validator(mode="before")
    @classmethod
    def _mask_userinfo(cls, data: Any) -> Any:
        # pydantic prints a refused field's input in the error, and the error reaches logs
        # and the event log: mask the credentials here so only the redacted URL is refused.
        if isinstance(data, dict) and isinstance(url := data.get("base_url"), str):
            if has_userinfo(url):
                return {**data, "base_url": redact(url)}
        return data

    @field_validator("base_url")
    @classmethod
    def _no_userinfo(cls, value: str | None) -> str | None:
        if value is not None and has_userinfo(value):
            raise PydanticCustomError(
                "credentials_in_url",
                "endpoint.base_url must not contain user info (user:password@host): a URL "
                "is shown in logs and metadata, and httpx would send it as Basic auth "
                "instead of the bearer key; put the key in an environment variable and name "
                "that variable in endpoint.api_key_env",
            )
        return value

    def configured(self) -> bool:
        return bool(self.base_url and self.model)


class BlipCaptionConfig(Section):
    """Local BLIP captioning: model profile, generation settings, optional PEFT adapter."""

    model: BlipModelConfig = BlipModelConfig()
    batch_size: int = Field(8, ge=1)
    num_beams: int = Field(3, ge=1)
    max_new_tokens: int = Field(40, ge=1)
    adapter_dir: str | None = Field(None, description="PEFT adapter dir; None: newest version")
    use_latest_adapter: bool = Field(True, description="use the newest caption_model version")


CaptionStyle = Literal["sentence", "tags"]


class CaptionConfig(Section):
    """Everything the ``captions`` asset needs to turn images into training captions.

    ``max_tokens`` is the text encoder's limit for the final caption (77 for CLIP, start
    and end tokens included); generation lengths live in ``blip.max_new_tokens`` and
    ``generation_max_tokens`` (for the endpoint).
    """

    backend: Backend = "auto"
    trigger_word: str = Field("sps_style", min_length=1, max_length=64)
    max_tokens: int = Field(77, ge=8)
    generation_max_tokens: int = Field(60, ge=1)
    style_tags: tuple[str, ...] = ()
    conditional_prompt: str = DEFAULT_CONDITIONAL
    instruction: str = DEFAULT_INSTRUCTION
    similarity_cutoff: float = Field(0.8, gt=0, le=1, description="validation repair cut-off")
    style: CaptionStyle = Field(
        "sentence",
        description="sentence: '<trigger>, a woman in a red coat on a street'; tags: "
        "'<trigger>, woman, red coat, street' (a comma-separated tag list)",
    )
    token_counter: Literal["encoder", "approx"] = Field(
        "encoder",
        description="encoder: the real tokenizers of the training preset's text encoders "
        "(CLIP; both for SDXL) with their limits; approx: a CLIP-like estimate and max_tokens",
    )
    check: CaptionCheckConfig = CaptionCheckConfig()
    blip: BlipCaptionConfig = BlipCaptionConfig()
    endpoint: EndpointConfig = EndpointConfig()
    vlm: VlmCaptionConfig = VlmCaptionConfig()

    @field_validator("trigger_word")
    @classmethod
    def _trigger(cls, value: str) -> str:
        value = value.strip()
        if not value or any(c in value for c in ",\n\t"):
            raise ValueError("trigger word must be non-empty and contain no comma or newline")
        return value

    @field_validator("conditional_prompt")
    @classmethod
    def _has_trigger(cls, value: str) -> str:
        if "{trigger}" not in value:
            raise ValueError("conditional_prompt must contain the {trigger} placeholder")
        return value


class CaptionFinetuneConfig(BaseModel):
    """LoRA hyper-parameters and the prompt the captioner will use at inference."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rank: int = Field(8, ge=1)
    alpha: float = Field(16.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: tuple[str, ...] = ("query", "value")
    lr: float = Field(1e-4, gt=0)
    steps: int = Field(200, ge=1)
    batch_size: int = Field(4, ge=1)
    max_length: int = Field(64, ge=8)
    seed: int = 0
    num_threads: int | None = Field(
        None, ge=1, description="torch CPU threads while training (None: unchanged); fix it "
        "for bit-identical adapters across machines; 1 is fastest for tiny models",
    )  # fmt: skip
    trigger_word: str = DEFAULT_TRIGGER
    prompt_template: str = DEFAULT_CONDITIONAL

    def prompt(self) -> str:
        return conditional_prompt(self.trigger_word, self.prompt_template)

    def fingerprint(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


class CaptioningSettings(BaseModel):
    """``captioning:`` section of configs/base.yml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    caption: CaptionConfig = CaptionConfig()
    finetune: CaptionFinetuneConfig = CaptionFinetuneConfig()
    seed_captions_dir: str = Field("data/seed_captions", description="image + .txt pairs")


class CaptionRecord(BaseModel):
    """One row of ``captions``: the final caption of a kept frame and how it was made."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    frame_id: str
    path: str = Field(description="store key of the frame JPEG")
    caption: str = Field(description="post-processed caption with the trigger word")
    raw: str = Field(description="the captioner's answer before post-processing")
    source: str = Field(description="captioner backend: blip, openai or template")
    model: str
    cached: bool = Field(description="the endpoint answer came from the store cache")
    valid: bool = Field(description="passed ontology validation (after repairs)")
    violations: list[str]
    repairs: list[str]
    characters: list[str] = Field(
        default_factory=list,
        description="matched characters the caption names (their trigger words follow the "
        "style trigger), largest face first; tables written before characters lack it",
    )
    caption_mismatch: bool = Field(
        False, description="the first caption failed the image-caption agreement check"
    )
    still_mismatched: bool = Field(False, description="the kept caption fails the check too")
    clip_similarity: float | None = Field(
        None, description="CLIP cosine of the frame and the kept caption (None: not checked)"
    )
    clip_margin: float | None = Field(
        None, description="clip_similarity minus the mean of the other captions on this frame"
    )
    itm_score: float | None = Field(None, description="BLIP ITM match probability (0..1)")
    recaption_attempts: int = Field(0, description="re-captions tried for this frame")
    first_caption: str | None = Field(
        None, description="the flagged first caption when a re-caption replaced it"
    )
    first_clip_similarity: float | None = None
    first_itm_score: float | None = None
    token_count: int | None = Field(
        None, description="most tokens over the target text encoders, special tokens included"
    )
    token_counts: list[int] = Field(
        default_factory=list, description="tokens per target text encoder, in token_encoders order"
    )
    truncated: bool = Field(False, description="tags or words were cut to fit the token limit")


class CaptionModelDocument(BaseModel):
    """``caption_model/<partition>.json``: the caption-model version the day uses.

    ``key`` is the version's folder in the store; the other fields repeat its
    ``metadata.json``; ``trained`` says whether this run trained it or reused it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str
    key: str
    trained: bool
    created_at: str
    base_model: str
    base_source: str
    base_profile: str
    data_hash: str
    num_pairs: int
    config_hash: str
    config: dict[str, Any]
    prompt: str
    steps: int
    final_loss: float
    losses: list[float]
    adapter_sha256: str
    files: list[str]
