"""Caption augmentation per example and epoch, with kohya sd-scripts' semantics.

kohya's ``BaseDataset.process_caption`` does, per example: with ``caption_dropout_rate``
the whole caption becomes ``""`` (the example trains unconditionally); otherwise the
caption is split at commas into tags, the first ``keep_tokens`` stay where they are (here
the trigger word first, then the characters' trigger words), the rest are shuffled
(``shuffle_caption``) and then each of them is left out with ``caption_tag_dropout_rate``;
the tags are joined again with ``", "``. The same here, with one difference: every draw
comes from the seeded data generator of the training loop (``train_loop.epoch_jobs``), not
Python's ``random``, so a resumed run draws the same captions bit for bit.

Nothing is drawn when every option is off: the generator's sequence, and so the crops,
flips and batch order of existing configs, is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from style_pipeline.contracts.training import LoraTrainingConfig

SEPARATOR = ","


@dataclass(frozen=True)
class CaptionAugment:
    """The caption options of a run (``LoraTrainingConfig`` fields of the same names)."""

    caption_dropout_rate: float = 0.0
    caption_tag_dropout_rate: float = 0.0
    keep_tokens: int = 0
    shuffle_tags: bool = False

    @classmethod
    def from_config(cls, config: LoraTrainingConfig) -> CaptionAugment:
        return cls(
            config.caption_dropout_rate,
            config.caption_tag_dropout_rate,
            config.keep_tokens,
            config.shuffle_tags,
        )

    @property
    def active(self) -> bool:
        """Whether any option is on (otherwise :func:`augment_caption` draws nothing)."""
        return self.caption_dropout_rate > 0 or self.varies_tags

    @property
    def varies_tags(self) -> bool:
        """Whether the tags change from step to step (shuffle or tag dropout): the set of
        captions a run sees is then open, and a text cache cannot serve them."""
        return self.shuffle_tags or self.caption_tag_dropout_rate > 0


def split_tags(caption: str) -> list[str]:
    """The comma-separated tags of ``caption``, stripped (empty ones left out)."""
    return [tag.strip() for tag in caption.split(SEPARATOR) if tag.strip()]


def augment_caption(caption: str, options: CaptionAugment, generator: torch.Generator) -> str:
    """The caption one example trains on this epoch.

    Draws, in order: one uniform for the caption dropout (when its rate is above 0; a
    dropped caption draws nothing more), one permutation of the free tags (shuffle), one
    uniform per free tag (tag dropout). ``caption`` comes back unchanged when no option is
    on; when only the caption dropout is on, it is ``caption`` or ``""``.
    """
    if not options.active:
        return caption
    if options.caption_dropout_rate > 0:
        if float(torch.rand((), generator=generator)) < options.caption_dropout_rate:
            return ""
    if not options.varies_tags:
        return caption
    tags = split_tags(caption)
    kept, free = tags[: options.keep_tokens], tags[options.keep_tokens :]
    if options.shuffle_tags and len(free) > 1:
        order = torch.randperm(len(free), generator=generator).tolist()
        free = [free[i] for i in order]
    if options.caption_tag_dropout_rate > 0 and free:
        draws = torch.rand((len(free),), generator=generator).tolist()
        rate = options.caption_tag_dropout_rate
        free = [tag for tag, u in zip(free, draws, strict=True) if u >= rate]
    return ", ".join(kept + free)


def possible_captions(captions: list[str], options: CaptionAugment) -> list[str] | None:
    """Every caption a run can train on, when that set is closed (no option, or the
    caption dropout alone: the captions plus ``""``); ``None`` when tags vary per step."""
    if options.varies_tags:
        return None
    extra = [""] if options.caption_dropout_rate > 0 else []
    return sorted(set(captions) | set(extra))
