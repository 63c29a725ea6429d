"""Captioning: templates, captioners, post-processing, validation, caption-model fine-tune."""

from style_pipeline.captioning.captioners import (
    BlipCaptioner,
    Captioner,
    CaptionResult,
    TemplateCaptioner,
)
from style_pipeline.captioning.factory import SelectedCaptioner, make_captioner
from style_pipeline.captioning.finetune import (
    finetune_caption_model,
    latest_caption_model,
    load_seed_pairs,
)
from style_pipeline.captioning.pipeline import CaptionRow, caption_images, finish_caption
from style_pipeline.captioning.postprocess import postprocess_caption
from style_pipeline.captioning.remote import CaptionEndpointError, OpenAICompatibleCaptioner
from style_pipeline.captioning.validation import ValidationResult, Vocabulary, validate_caption
from style_pipeline.contracts.captioning import (
    BlipCaptionConfig,
    CaptionConfig,
    CaptionFinetuneConfig,
    EndpointConfig,
)

__all__ = [
    "BlipCaptionConfig",
    "BlipCaptioner",
    "CaptionConfig",
    "CaptionEndpointError",
    "CaptionFinetuneConfig",
    "CaptionResult",
    "CaptionRow",
    "Captioner",
    "EndpointConfig",
    "OpenAICompatibleCaptioner",
    "SelectedCaptioner",
    "TemplateCaptioner",
    "ValidationResult",
    "Vocabulary",
    "caption_images",
    "finetune_caption_model",
    "finish_caption",
    "latest_caption_model",
    "load_seed_pairs",
    "make_captioner",
    "postprocess_caption",
    "validate_caption",
]
