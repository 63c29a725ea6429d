"""Caption checks: does a caption agree with its image (CLIP, BLIP ITM), and re-captioning.

Scores (see :mod:`style_pipeline.captioning.agreement` for how they are computed):

* ``clip_similarity``: cosine of the frame's CLIP image vector and the caption's text
  vector (trigger words left out: they are made-up tokens);
* ``clip_margin``: that similarity minus the mean similarity of the same image with the
  other captions of the day (``clip_mode: relative``, the default);
* ``itm_score``: BLIP image-text-matching probability (0..1) that the caption fits.

A caption fails when a score it has is below its threshold; a failed caption is flagged
``caption_mismatch`` and re-captioned up to ``recaption_attempts`` times, keeping the
caption that agrees best.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from style_pipeline.contracts.models import BlipModelConfig
from style_pipeline.contracts.sections import Section

BLIP_ITM_ID = "Salesforce/blip-itm-base-coco"

CheckMode = Literal["auto", "on", "off"]


class CaptionCheckConfig(Section):
    """``captioning.caption.check``: image-caption agreement and re-captioning."""

    enabled: CheckMode = Field(
        "auto",
        description="auto: only with pretrained CLIP weights (a random-init CLIP's "
        "similarities mean nothing); on: always (tests, a CLIP of your own); off: never",
    )
    clip_mode: Literal["relative", "absolute"] = Field(
        "relative",
        description="relative: flag a caption scoring on its own image below the mean of the "
        "other captions of the day (+ min_clip_margin); absolute: flag clip_similarity < "
        "min_clip_similarity",
    )
    min_clip_similarity: float = Field(
        0.18,
        ge=-1,
        le=1,
        description="absolute floor of the CLIP cosine (ViT-B-32: matching captions ~0.3, "
        "unrelated ~0.15); relative mode uses it when fewer than min_references other "
        "distinct captions exist",
    )
    min_clip_margin: float = Field(
        0.0,
        ge=-1,
        le=1,
        description="relative mode: the own caption must beat the mean of the other "
        "captions on this image by at least this much",
    )
    min_references: int = Field(
        1, ge=1, description="relative mode: other distinct captions needed for a comparison"
    )
    use_itm: CheckMode = Field(
        "auto",
        description="BLIP image-text matching: auto only when the pretrained ITM weights are "
        "on disk (never tiny, never downloaded); on: itm_model's profile (tiny allowed)",
    )
    min_itm: float = Field(0.3, ge=0, le=1, description="lowest ITM match probability")
    itm_model: BlipModelConfig = BlipModelConfig(pretrained=BLIP_ITM_ID)
    recaption_attempts: int = Field(
        1, ge=0, le=5, description="re-captions of a flagged caption (0: flag only)"
    )
    recaption_prompts: tuple[str, ...] = Field(
        (),
        description="prompts of the re-caption attempts, in turn ({prompt}: the first "
        "prompt); empty: per backend (blip: unconditional, florence-2: its other caption tasks, "
        "endpoint/chat vlm: the prompt plus a look-again note; template: no re-caption)",
    )
    batch_size: int = Field(32, ge=1, description="images (or texts) per scoring forward")
