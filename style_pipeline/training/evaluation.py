"""Evaluate a LoRA: generate at fixed prompts and seeds, score, compare with the previous version.

Metrics (all from the registry's CLIP model unless noted; in fp16/bf16 too, the
inputs are cast to the weights' dtype and the vectors are float32 unit length, and
``clip_precision`` records which precision ran):

- ``clip_score``: 100 x mean of max(cos(image, prompt), 0), the torchmetrics definition.
- ``brand_score``: mean reward-model score of the generated images (needs the reward model
  trained on the same CLIP model).
- ``aesthetic_clip_proxy``: NOT a trained aesthetic predictor. CLIP-IQA-style antonym
  prompts: softmax(100 x [cos(img, "a beautiful, high quality photo"),
  cos(img, "an ugly, low quality photo")])[0], averaged. In [0, 1].
- ``fid``: against the reference set (the day's curated frames), labelled with
  ``fid_feature`` (``inception_v3_torchvision`` or ``clip``); see :mod:`.fid`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from style_pipeline.contracts.training import EvalConfig, Tolerance
from style_pipeline.curation.embeddings import embed_images, embed_texts
from style_pipeline.models import LoadedModel
from style_pipeline.training.fid import fid_between
from style_pipeline.training.lora_models import WEIGHT_NAME, pipeline_family
from style_pipeline.training.reward import RewardModel

AESTHETIC_PROMPTS = ("a beautiful, high quality photo", "an ugly, low quality photo")
HIGHER_IS_BETTER = ("clip_score", "brand_score", "aesthetic_clip_proxy")
LOWER_IS_BETTER = ("fid",)


DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "clip_score": Tolerance(absolute=0.5),
    "brand_score": Tolerance(absolute=0.02),
    "aesthetic_clip_proxy": Tolerance(absolute=0.02),
    "fid": Tolerance(absolute=1.0, relative=0.10),
}


@dataclass(frozen=True)
class Sample:
    prompt: str
    seed: int
    image: Image.Image


@dataclass(frozen=True)
class RegressionFlag:
    metric: str
    current: float
    previous: float
    delta: float
    allowed: float
    regressed: bool


def generate_samples(
    pipe, lora_dir: Path | None, config: EvalConfig, max_sequence_length: int | None = None
) -> list[Sample]:
    """One image per (prompt, seed); the LoRA in ``lora_dir`` is loaded first when given.

    SD/SDXL and FLUX pipelines alike (FLUX: ``guidance_scale`` feeds its guidance embedding,
    the LoRA scale goes through ``joint_attention_kwargs``, T5 reads ``max_sequence_length``
    tokens, the pipeline's 512 when None).
    """
    if lora_dir is not None:
        pipe.load_lora_weights(str(lora_dir), weight_name=WEIGHT_NAME)
    pipe.set_progress_bar_config(disable=True)
    size = {"height": config.resolution, "width": config.resolution} if config.resolution else {}
    flux = pipeline_family(pipe) == "flux"
    scale_kwarg = "joint_attention_kwargs" if flux else "cross_attention_kwargs"
    extra: dict = {scale_kwarg: {"scale": config.lora_scale}} if lora_dir else {}
    if flux and max_sequence_length is not None:
        extra["max_sequence_length"] = max_sequence_length
    samples = []
    for prompt in config.prompts:
        for seed in config.seeds:
            image = pipe(
                prompt,
                num_inference_steps=config.num_inference_steps,
                guidance_scale=config.guidance_scale,
                generator=torch.Generator("cpu").manual_seed(seed),
                **size,
                **extra,
            ).images[0]
            samples.append(Sample(prompt, seed, image))
    return samples


def clip_score(image_vecs: np.ndarray, text_vecs: np.ndarray) -> float:
    """100 x mean max(cos, 0) over matching rows of unit vectors."""
    cos = np.sum(np.asarray(image_vecs) * np.asarray(text_vecs), axis=1)
    return float(100.0 * np.maximum(cos, 0).mean())


def aesthetic_clip_proxy(image_vecs: np.ndarray, prompt_vecs: np.ndarray) -> float:
    """Mean softmax probability of the positive antonym prompt (see module docstring)."""
    logits = 100.0 * np.asarray(image_vecs) @ np.asarray(prompt_vecs).T
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return float(probs[:, 0].mean())


def score_samples(
    samples: Sequence[Sample],
    reference: Sequence[Image.Image],
    clip: LoadedModel,
    reward: RewardModel | None = None,
    inception_weights: Path | None = None,
) -> dict:
    """All metrics of generated ``samples`` against the ``reference`` images."""
    images = [s.image for s in samples]
    image_vecs = embed_images(clip, images)
    text_vecs = embed_texts(clip, [s.prompt for s in samples])
    metrics: dict = {
        "clip_score": clip_score(image_vecs, text_vecs),
        "aesthetic_clip_proxy": aesthetic_clip_proxy(
            image_vecs, embed_texts(clip, list(AESTHETIC_PROMPTS))
        ),
        "aesthetic_method": "clip_antonym_prompts",
        "brand_score": None,
        "clip_model": clip.model_id,
        "clip_precision": clip.precision,  # vectors are float32 unit length in any precision
        "n_samples": len(samples),
        "n_reference": len(reference),
    }
    if reward is not None:
        trained_on = reward.info.get("embedding_model")
        if trained_on and trained_on != clip.model_id:
            raise ValueError(f"reward model uses {trained_on}, evaluation uses {clip.model_id}")
        metrics["brand_score"] = float(reward.score(image_vecs).mean())
    ref_vecs = embed_images(clip, list(reference))
    fid, feature = fid_between(images, reference, (image_vecs, ref_vecs), inception_weights)
    metrics.update(fid=fid, fid_feature=feature)
    return metrics


def compare(
    current: Mapping,
    previous: Mapping | None,
    tolerances: Mapping[str, Tolerance] | None = None,
) -> list[RegressionFlag]:
    """One flag per metric present in both runs; FID only when both used the same features."""
    if previous is None:
        return []
    tolerances = {**DEFAULT_TOLERANCES, **(tolerances or {})}
    flags = []
    for metric in (*HIGHER_IS_BETTER, *LOWER_IS_BETTER):
        cur, prev = current.get(metric), previous.get(metric)
        if cur is None or prev is None:
            continue
        if metric == "fid" and current.get("fid_feature") != previous.get("fid_feature"):
            continue
        worse = (prev - cur) if metric in HIGHER_IS_BETTER else (cur - prev)
        allowed = tolerances[metric].allowed(prev)
        flags.append(
            RegressionFlag(
                metric, float(cur), float(prev), float(cur - prev), allowed, worse > allowed
            )
        )
    return flags


def regressions(flags: Sequence[RegressionFlag]) -> list[dict]:
    """The flags that regressed, as plain dicts (for metadata and asset checks)."""
    return [asdict(f) for f in flags if f.regressed]
