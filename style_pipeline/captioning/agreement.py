"""Image-caption agreement: does a caption describe its own image? CLIP and BLIP ITM scores.

Scores per caption (the trigger words are left out of the text: they are made-up tokens
that only add noise to a text embedding):

* ``clip_similarity``: cosine of the image's CLIP vector and the caption's text vector;
* ``clip_margin`` (``clip_mode: relative``): ``clip_similarity`` minus the mean similarity
  of the same image with the other distinct captions of the day;
* ``itm_score``: BLIP's image-text-matching head, P(match) in 0..1 (when a model is given).

Why relative by default: a raw CLIP cosine has no fixed scale. It depends on the model
(ViT-B-32 puts matching captions near 0.3, a random-init or fine-tuned CLIP anywhere), on
the image (some images score high with every text) and on caption length, so one absolute
threshold misfires on a new model or a new kind of footage. Comparing a caption with the
other captions *on the same image* cancels the image's offset and the model's scale: a
caption matched to the wrong image scores lower on its own image than the average caption
of the day does, whatever the absolute numbers. It needs references: with fewer than
``min_references`` other distinct captions (a one-frame day, every frame captioned the
same) the absolute ``min_clip_similarity`` decides instead. On a day of near-identical
frames the margins are small either way; a false flag there only costs a re-caption, as
the better-agreeing caption is kept (usually the first). ITM is a trained binary
classifier, calibrated enough for an absolute threshold (``min_itm``).

A caption fails when any score it has fails (CLIP and ITM are independent evidence).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from style_pipeline.contracts.caption_checks import CaptionCheckConfig
from style_pipeline.contracts.captioning_vlm import FLORENCE2_TASKS
from style_pipeline.curation.embeddings import embed_images, embed_texts
from style_pipeline.models.blip_itm import LoadedItm
from style_pipeline.models.clip import LoadedModel

# Re-caption prompt of the endpoint and VLM captioners: the first prompt plus this note.
LOOK_AGAIN = (
    "\nA previous caption did not match this image. Look again and describe only what is "
    "visible in it."
)
# BLIP re-captions: unconditional (no prompt), then a neutral prefix.
BLIP_RETRY_PROMPTS = ("", "a picture of ")


@dataclass(frozen=True)
class Agreement:
    """The scores of one caption on its image and the checks it failed (none: it agrees)."""

    clip_similarity: float | None = None
    clip_margin: float | None = None
    itm_score: float | None = None
    failures: tuple[str, ...] = ()

    @property
    def mismatch(self) -> bool:
        return bool(self.failures)

    def rank(self) -> tuple[int, float]:
        """Higher is better: fewer failed checks, then ITM, else the CLIP margin, else the
        CLIP similarity (the most calibrated score available)."""
        for value in (self.itm_score, self.clip_margin, self.clip_similarity):
            if value is not None:
                return (-len(self.failures), value)
        return (-len(self.failures), 0.0)


def clip_text(caption: str, lead: Sequence[str]) -> str:
    """The caption without its trigger words (``lead``), for the text encoder."""
    for word in lead:
        caption = re.sub(rf"(?<![\w-]){re.escape(word)}(?![\w-])", " ", caption, flags=re.I)
    return re.sub(r"(?:\s*,\s*)+", ", ", " ".join(caption.split())).strip(" ,") or caption


def reference_columns(texts: Sequence[str], own: int, text: str) -> list[int]:
    """Columns of the other distinct captions (first of each text) to compare ``text`` with
    on image ``own``: not ``own``'s, and none equal to ``text``."""
    seen = {text}
    out = []
    for j, other in enumerate(texts):
        if j != own and other not in seen:
            seen.add(other)
            out.append(j)
    return out


class AgreementChecker:
    """Scores captions against their images with CLIP (and BLIP ITM when given).

    Methods take ``image_vectors``: the frames' CLIP vectors when already computed (e.g.
    read from the embeddings cache), unit length, one row per image; None: embedded here.
    """

    def __init__(
        self,
        clip: LoadedModel,
        config: CaptionCheckConfig,
        itm: LoadedItm | None = None,
    ):
        self.clip = clip
        self.config = config
        self.itm = itm

    def image_vectors(self, images: Sequence[Image.Image]) -> np.ndarray:
        return embed_images(self.clip, images, self.config.batch_size)

    def text_vectors(self, texts: Sequence[str]) -> np.ndarray:
        return embed_texts(self.clip, texts, self.config.batch_size)

    def _judge(self, similarity: float, margin: float | None, itm: float | None) -> Agreement:
        cfg = self.config
        failures = []
        if margin is not None:
            if margin < cfg.min_clip_margin:
                failures.append(f"clip margin {margin:.3f} < {cfg.min_clip_margin}")
        elif similarity < cfg.min_clip_similarity:
            failures.append(f"clip similarity {similarity:.3f} < {cfg.min_clip_similarity}")
        if itm is not None and itm < cfg.min_itm:
            failures.append(f"itm {itm:.3f} < {cfg.min_itm}")
        return Agreement(similarity, margin, itm, tuple(failures))

    def _margin(self, row: np.ndarray, own_similarity: float, columns: list[int]) -> float | None:
        if self.config.clip_mode != "relative" or len(columns) < self.config.min_references:
            return None
        return own_similarity - float(np.mean(row[columns]))

    def score(
        self,
        images: Sequence[Image.Image],
        texts: Sequence[str],
        image_vectors: np.ndarray | None = None,
    ) -> tuple[list[Agreement], np.ndarray]:
        """Each image's own caption text (``texts[i]``) scored; also the image x text
        similarity matrix, which :meth:`rescore` compares re-captions against."""
        if len(images) != len(texts):
            raise ValueError(f"{len(images)} images for {len(texts)} captions")
        vectors = self.image_vectors(images) if image_vectors is None else image_vectors
        matrix = vectors @ self.text_vectors(texts).T
        itm = self._itm(images, texts)
        out = []
        for i, text in enumerate(texts):
            own = float(matrix[i, i])
            margin = self._margin(matrix[i], own, reference_columns(texts, i, text))
            out.append(self._judge(own, margin, itm[i]))
        return out, matrix

    def rescore(
        self,
        images: Sequence[Image.Image],
        indices: Sequence[int],
        new_texts: Sequence[str],
        texts: Sequence[str],
        matrix: np.ndarray,
        image_vectors: np.ndarray,
    ) -> list[Agreement]:
        """New caption texts of images ``indices``, compared with the day's first captions
        (``texts``, ``matrix`` from :meth:`score`) like the first ones were."""
        new = self.text_vectors(new_texts)
        itm = self._itm([images[i] for i in indices], new_texts)
        out = []
        for k, (i, text) in enumerate(zip(indices, new_texts, strict=True)):
            own = float(image_vectors[i] @ new[k])
            margin = self._margin(matrix[i], own, reference_columns(texts, i, text))
            out.append(self._judge(own, margin, itm[k]))
        return out

    def _itm(self, images: Sequence[Image.Image], texts: Sequence[str]) -> list[float | None]:
        if self.itm is None or not texts:
            return [None] * len(texts)
        probs = self.itm.match_probabilities(images, texts, self.config.batch_size)
        return [p if math.isfinite(p) else None for p in probs]

    def metadata(self) -> dict[str, str]:
        facts = {
            "check_clip_model": self.clip.model_id,
            "check_clip_profile": self.clip.profile_used,
            "check_clip_mode": self.config.clip_mode,
        }
        return {**facts, **(self.itm.metadata() if self.itm else {"itm_model_id": ""})}


def retry_prompts(
    backend: str, prompt: str, attempts: int, configured: Sequence[str] = ()
) -> list[str] | None:
    """The prompts of re-caption attempts 1..``attempts``; None: this captioner cannot
    give another caption (the template captioner has no prompt to vary).

    ``configured`` (``recaption_prompts``) are used in turn, ``{prompt}`` replaced by the
    first prompt; else BLIP goes unconditional then ``a picture of``, and the endpoint and
    VLM captioners get the first prompt plus a look-again note.
    """
    if attempts <= 0:
        return []
    if configured:
        return [
            configured[k % len(configured)].replace("{prompt}", prompt) for k in range(attempts)
        ]
    if backend == "template":
        return None
    if backend == "blip" or not prompt.strip():  # prefix-conditioned (BLIP, BLIP-2)
        choices = [p for p in BLIP_RETRY_PROMPTS if p != prompt] or [""]
        return [choices[k % len(choices)] for k in range(attempts)]
    if prompt.strip() in FLORENCE2_TASKS:  # Florence-2 reads only its task token
        tasks = [t for t in FLORENCE2_TASKS if t != prompt.strip()]
        return [tasks[k % len(tasks)] for k in range(attempts)]
    return [prompt + LOOK_AGAIN] * attempts


@dataclass
class Checked:
    """One image's caption after the check: the kept attempt and what happened before."""

    index: int
    first: Agreement
    kept: Agreement
    attempts: int = 0
    replaced: bool = False


Recaption = Callable[[list[int], list[str]], list[str]]  # (image indices, prompts) -> captions


def check_and_recaption(
    checker: AgreementChecker,
    images: Sequence[Image.Image],
    captions: list[str],
    lead: Sequence[Sequence[str]],
    recaption: Recaption | None,
    prompts: list[str] | None,
    image_vectors: np.ndarray | None = None,
) -> tuple[list[str], list[Checked], list[str]]:
    """Score every caption; re-caption the mismatched ones with ``prompts`` (one per
    attempt, all flagged images of an attempt in one batch) and keep, per image, the
    caption that agrees best. ``recaption(indices, prompts)`` returns finished captions.

    Returns the kept captions, what happened per image, and the first captions.
    """
    vectors = checker.image_vectors(images) if image_vectors is None else image_vectors
    texts = [clip_text(c, lead[i]) for i, c in enumerate(captions)]
    first, matrix = checker.score(images, texts, vectors)
    results = [Checked(i, a, a) for i, a in enumerate(first)]
    kept = list(captions)
    for prompt in prompts or []:
        pending = [r.index for r in results if r.kept.mismatch]
        if recaption is None or not pending:
            break
        new = recaption(pending, [prompt] * len(pending))
        new_texts = [clip_text(c, lead[i]) for i, c in zip(pending, new, strict=True)]
        scores = checker.rescore(images, pending, new_texts, texts, matrix, vectors)
        for i, caption, agreement in zip(pending, new, scores, strict=True):
            results[i].attempts += 1
            if agreement.rank() > results[i].kept.rank():
                results[i].kept, results[i].replaced, kept[i] = agreement, True, caption
    return kept, results, list(captions)
