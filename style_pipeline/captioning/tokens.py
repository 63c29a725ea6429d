"""Token counts from the real tokenizers of the text encoders a LoRA trains against.

A diffusers pipeline folder names its tokenizers in ``model_index.json``: ``tokenizer``
(CLIP) for SD 1.x/2.x, ``tokenizer`` + ``tokenizer_2`` (two CLIPs) for SDXL, CLIP + T5
for FLUX. :func:`load_encoder_tokenizers` loads only those sub-folders (no UNet, no text
encoder weights); a :class:`TokenBudget` over them answers whether a caption fits every
encoder (special tokens included, each tokenizer against its own limit) and what each
one counts. :func:`style_pipeline.captioning.postprocess.fit_caption` cuts a caption at tag
boundaries until the budget accepts it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from style_pipeline.captioning.postprocess import (
    CLIP_TOKEN_LIMIT,
    SPECIAL_TOKENS,
    approx_token_count,
)

# A tokenizer whose model_max_length is this large has no real limit set (transformers' sentinel).
_NO_LIMIT = 10**6


@dataclass(frozen=True)
class EncoderTokenizer:
    """One text encoder's tokenizer and the most tokens (special ones included) it takes."""

    name: str  # the pipeline's component name: tokenizer, tokenizer_2, ... (or "approx")
    tokenizer: Any  # a Hugging Face tokenizer; None: the approximate CLIP counter
    limit: int
    enforced: bool = True  # False: counted only (FLUX's CLIP feeds just the pooled vector)

    def count(self, text: str) -> int:
        """Tokens of ``text`` with the tokenizer's start/end tokens."""
        if self.tokenizer is None:
            return approx_token_count(text) + SPECIAL_TOKENS
        ids = self.tokenizer(text, add_special_tokens=True, truncation=False, verbose=False)
        return len(ids["input_ids"])


class TokenBudget:
    """Whether a caption fits every target encoder; usable as a ``postprocess.Fits``."""

    def __init__(self, encoders: Sequence[EncoderTokenizer]):
        if not encoders:
            raise ValueError("a token budget needs at least one tokenizer")
        self.encoders = tuple(encoders)

    @classmethod
    def approximate(cls, max_tokens: int = CLIP_TOKEN_LIMIT) -> TokenBudget:
        """One approximate CLIP counter (:func:`approx_token_count`) with ``max_tokens``."""
        return cls([EncoderTokenizer("approx", None, max_tokens)])

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.encoders]

    def counts(self, text: str) -> list[int]:
        """Tokens per encoder, special tokens included, in :attr:`names` order."""
        return [e.count(text) for e in self.encoders]

    def __call__(self, text: str) -> bool:
        return all(e.count(text) <= e.limit for e in self.encoders if e.enforced)

    def describe(self) -> str:
        """``tokenizer (CLIPTokenizerFast, 77), tokenizer_2 (...)`` for metadata."""
        return ", ".join(
            f"{e.name} ({type(e.tokenizer).__name__ if e.tokenizer is not None else 'approx'}, "
            f"{e.limit}{'' if e.enforced else ', not enforced'})"
            for e in self.encoders
        )


def tokenizer_names(pipeline_dir: str | Path) -> list[str]:
    """The tokenizer components ``model_index.json`` lists, in name order."""
    index = json.loads((Path(pipeline_dir) / "model_index.json").read_text())
    return sorted(k for k, v in index.items() if k.startswith("tokenizer") and v and v[0])


def load_encoder_tokenizers(
    pipeline_dir: str | Path,
    limits: Mapping[str, int | None] | None = None,
) -> list[EncoderTokenizer]:
    """The pipeline's tokenizers (only their sub-folders are read) with their limits.

    A tokenizer's limit is ``limits[name]`` when given (e.g. FLUX schnell's T5 takes 256
    tokens, less than the tokenizer's 512), else its ``model_max_length``; a name mapped to
    None is counted but not enforced (see :func:`family_limits`).
    """
    from transformers import AutoTokenizer

    from style_pipeline.models.profiles import offline

    folder = Path(pipeline_dir)
    out = []
    for name in tokenizer_names(folder):
        with offline():
            tokenizer = AutoTokenizer.from_pretrained(folder / name, local_files_only=True)
        limits = limits or {}
        limit = limits.get(name) or int(tokenizer.model_max_length)
        if limit >= _NO_LIMIT:
            raise ValueError(f"{folder / name}: the tokenizer sets no model_max_length")
        enforced = name not in limits or limits[name] is not None
        out.append(EncoderTokenizer(name, tokenizer, limit, enforced))
    if not out:
        raise ValueError(f"{folder}: model_index.json names no tokenizer")
    return out


def family_limits(family: str, max_sequence_length: int | None = None) -> dict[str, int | None]:
    """Per-tokenizer limits of a model family beyond the tokenizers' own.

    FLUX: the T5 (``tokenizer_2``) takes ``max_sequence_length`` tokens and carries the
    caption; its CLIP (``tokenizer``) feeds only the pooled vector and the pipeline cuts it
    at 77 itself, so it is counted, not enforced (a FLUX caption may be longer than 77 CLIP
    tokens). SD and SDXL: every CLIP tokenizer's own limit (77) holds.
    """
    if family == "flux":
        return {"tokenizer": None, "tokenizer_2": max_sequence_length}
    return {}
