"""Local vision-language captioners (Florence-2, Qwen2-VL class, BLIP-2): which model, how.

``captioning.caption.vlm`` of configs/base.yml. The model comes through the shared
``pretrained | tiny | auto`` resolver; ``family`` says how to prompt it and is read from
the model's ``config.json`` (``model_type``) when left on ``auto``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from style_pipeline.contracts.models import DevicePreference, Profile
from style_pipeline.contracts.sections import Section
from style_pipeline.paths import DEFAULT_MODEL_DIR, resolve_local

# Florence-2 in transformers' own classes (no trust_remote_code): the florence-community
# conversions; microsoft/Florence-2-* hold remote code that this project never runs.
FLORENCE2_BASE_ID = "florence-community/Florence-2-base"
QWEN2_VL_2B_ID = "Qwen/Qwen2-VL-2B-Instruct"
BLIP2_OPT_ID = "Salesforce/blip2-opt-2.7b"
# `style-pipeline models pull NAME` names of the known VLMs (registry.py, fallback hints)
VLM_CATALOG = {"florence2": FLORENCE2_BASE_ID, "qwen2-vl": QWEN2_VL_2B_ID, "blip2": BLIP2_OPT_ID}

VlmFamily = Literal["florence2", "qwen2_vl", "blip2"]
FLORENCE2_TASKS = ("<CAPTION>", "<DETAILED_CAPTION>", "<MORE_DETAILED_CAPTION>")


class TinyVlmArch(BaseModel):
    """Shape of the random-init test VLMs (a few hundred thousand parameters each)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("tiny-vlm", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    hidden: int = Field(32, gt=0, description="width of the vision and text towers")
    layers: int = Field(1, gt=0, description="layers per tower")
    heads: int = Field(2, gt=0)
    vocab_size: int = Field(
        512, ge=300, description="byte-level BPE trained offline on the ontology words"
    )
    seed: int = 0


class VlmCaptionConfig(Section):
    """An image-text-to-text captioner run locally through transformers."""

    profile: Profile = "auto"
    pretrained: str = Field(
        FLORENCE2_BASE_ID,
        description="hub id (loaded from the Hugging Face cache only) or a local directory; "
        "florence-community/Florence-2-base, Qwen/Qwen2-VL-2B-Instruct, Salesforce/blip2-opt-2.7b",
    )
    family: VlmFamily | Literal["auto"] = Field(
        "auto",
        description="how the model is prompted: florence2 (a task token), qwen2_vl (any "
        "chat-template VLM: an ontology instruction as a chat message), blip2 (a text "
        "prefix); auto: from the model's config.json (tiny: guessed from `pretrained`)",
    )
    task: str = Field(
        "<MORE_DETAILED_CAPTION>",
        description="Florence-2 task token: <CAPTION>, <DETAILED_CAPTION>, <MORE_DETAILED_CAPTION>",
    )
    prompt: str | None = Field(
        None,
        description="chat VLMs: the instruction (None: built from the ontology with "
        "captioning.caption.instruction); BLIP-2: the text the caption continues (None: none)",
    )
    max_new_tokens: int = Field(60, ge=1)
    max_image_edge: int = Field(
        768, ge=32, description="images are downscaled to this edge first (Qwen2-VL's own "
        "limit is ~3584 px: a 1080p frame would be ~2600 image tokens)",
    )  # fmt: skip
    batch_size: int = Field(4, ge=1)
    num_beams: int = Field(3, ge=1)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="auto: bfloat16 on CUDA, float32 elsewhere"
    )
    device: DevicePreference = "auto"
    cache_dir: str = Field(DEFAULT_MODEL_DIR, description="where tiny models are saved")
    hf_cache_dir: str | None = Field(None, description="Hugging Face cache (None: default)")
    tiny: TinyVlmArch = TinyVlmArch()

    def cache_path(self) -> Path:
        return resolve_local(self.cache_dir)

    def pull_name(self) -> str:
        """The ``models pull`` name of the configured model (``vlm`` when not in the catalog)."""
        return next((k for k, v in VLM_CATALOG.items() if v == self.pretrained), "vlm")
