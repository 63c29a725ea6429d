"""Typed captioning configuration: backend choice, trigger word, token limit, endpoints."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from style_pipeline.captioning.templates import DEFAULT_CONDITIONAL, DEFAULT_INSTRUCTION
from style_pipeline.models.blip import BlipModelConfig

Backend = Literal["blip", "openai", "template", "auto"]


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EndpointConfig(_Config):
    """An OpenAI-compatible chat-completions endpoint with vision input (vLLM, Ollama, ...)."""

    base_url: str | None = Field(None, description="e.g. http://127.0.0.1:8000/v1")
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

    def configured(self) -> bool:
        return bool(self.base_url and self.model)


class BlipCaptionConfig(_Config):
    """Local BLIP captioning: model profile, generation settings, optional PEFT adapter."""

    model: BlipModelConfig = BlipModelConfig()
    batch_size: int = Field(8, ge=1)
    num_beams: int = Field(3, ge=1)
    max_new_tokens: int = Field(40, ge=1)
    adapter_dir: str | None = Field(None, description="PEFT adapter dir; None: newest version")
    use_latest_adapter: bool = Field(True, description="use the newest caption_model version")


class CaptionConfig(_Config):
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
    blip: BlipCaptionConfig = BlipCaptionConfig()
    endpoint: EndpointConfig = EndpointConfig()

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
