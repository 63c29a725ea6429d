"""The BLIP captioner: :func:`load_blip` obtains it for a profile through ``profiles.py``.

``pretrained`` loads a hub id (default ``Salesforce/blip-image-captioning-base``) or a
local directory with ``local_files_only=True``: it never downloads. ``tiny`` builds a
small random-init :class:`BlipForConditionalGeneration` from a seed and a word list (a
WordPiece vocabulary written offline: special tokens, the given words, and single
characters so that any text tokenizes), saves model and processor with
``save_pretrained`` and loads them back with ``from_pretrained``, the production path.
``auto`` is pretrained when loadable offline, else tiny, with the reason recorded (the
shared resolver in ``profiles.py`` decides; this module only builds and loads).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from style_pipeline.contracts.models import BlipModelConfig, TinyBlipArch
from style_pipeline.models.cache import building_dir, sha256_of
from style_pipeline.models.device import pick_device
from style_pipeline.models.loaded import ProfileFacts, pretrained_source, with_fallback_note
from style_pipeline.models.profiles import PretrainedUnavailable, offline, resolve_profile
from style_pipeline.models.registry import blip_entry, pull

if TYPE_CHECKING:  # transformers is imported lazily (heavy)
    from transformers import BlipForConditionalGeneration, BlipProcessor, PreTrainedModel

log = logging.getLogger(__name__)

WEIGHTS_NAME = "model.safetensors"
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]")
_CHARS = string.ascii_lowercase + string.digits
_BERT_PIECES = re.compile(r"\w+|[^\w\s]")  # BERT's basic split: words and punctuation


@dataclass
class LoadedBlip(ProfileFacts):
    """A BLIP model in eval mode with its processor, and what was asked for vs. what ran."""

    model: BlipForConditionalGeneration
    processor: BlipProcessor
    device: torch.device

    def metadata(self) -> dict[str, str]:
        """Flat facts for asset metadata (``fallback_reason`` is '' when none)."""
        return self.profile_metadata("caption")


def tiny_vocabulary(words: Iterable[str]) -> list[str]:
    """WordPiece vocabulary: special tokens, the words (split like BERT: ``bird's`` -> ``bird``,
    ``'``, ``s``), then single characters and ``##`` pieces so any text tokenizes."""
    vocab = list(SPECIAL_TOKENS)
    pieces = [w for text in words for w in _BERT_PIECES.findall(text.lower())]
    pieces += list(_CHARS) + [f"##{c}" for c in _CHARS] + list(string.punctuation)
    seen = set(vocab)
    for piece in pieces:
        if piece not in seen:
            seen.add(piece)
            vocab.append(piece)
    return vocab


def tiny_fingerprint(arch: TinyBlipArch, vocab: list[str]) -> str:
    """Content key of a tiny BLIP: architecture, seed, vocabulary and library version."""
    import transformers

    payload = {"arch": arch.model_dump(), "vocab": vocab, "transformers": transformers.__version__}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def build_tiny_blip(
    out_dir: Path,
    arch: TinyBlipArch,
    vocab: list[str],
    model_class: type[PreTrainedModel] | None = None,
    label: str = "BLIP",
) -> Path:
    """Build the random-init model + processor from ``arch`` and ``vocab``; save atomically.

    The model is the captioner unless ``model_class`` names another head on the same
    config (the ITM model of :mod:`style_pipeline.models.blip_itm`).
    """
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    if (out_dir / WEIGHTS_NAME).is_file():
        return out_dir
    tokenizer = BertTokenizer(
        vocab={token: i for i, token in enumerate(vocab)}, bos_token="[DEC]", do_lower_case=True
    )
    image_processor = BlipImageProcessor(size={"height": arch.image_size, "width": arch.image_size})
    processor = BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)
    text = dict(
        vocab_size=len(vocab), hidden_size=arch.text_hidden, encoder_hidden_size=arch.vision_hidden,
        intermediate_size=arch.intermediate, num_hidden_layers=arch.text_layers,
        num_attention_heads=arch.text_heads, max_position_embeddings=arch.max_positions,
        bos_token_id=tokenizer.bos_token_id, pad_token_id=tokenizer.pad_token_id,
        sep_token_id=tokenizer.sep_token_id,
    )  # fmt: skip
    if model_class is None:  # the captioner generates until [SEP]
        text["eos_token_id"] = tokenizer.sep_token_id
    vision = dict(
        hidden_size=arch.vision_hidden, intermediate_size=arch.intermediate,
        num_hidden_layers=arch.vision_layers, num_attention_heads=arch.vision_heads,
        image_size=arch.image_size, patch_size=arch.patch_size,
    )  # fmt: skip
    config = BlipConfig(text_config=text, vision_config=vision, projection_dim=arch.text_hidden)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(arch.seed)
        model = (model_class or BlipForConditionalGeneration)(config)
    with building_dir(out_dir, WEIGHTS_NAME) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
    log.info("saved tiny %s to %s", label, out_dir)
    return out_dir


def load_blip_dir(
    path: str | Path,
    device: torch.device,
    cache_dir: str | None = None,
    model_class: type[PreTrainedModel] | None = None,
) -> tuple[Any, BlipProcessor]:
    """Model (eval mode, on ``device``) and processor from a directory or a cached hub id.

    The model is the captioner unless ``model_class`` names another BLIP head.
    """
    from transformers import BlipForConditionalGeneration, BlipProcessor

    with offline():
        processor = BlipProcessor.from_pretrained(
            str(path), local_files_only=True, cache_dir=cache_dir
        )
        model = (model_class or BlipForConditionalGeneration).from_pretrained(
            str(path), local_files_only=True, cache_dir=cache_dir
        )
    # transformers wraps PreTrainedModel.to in a decorator whose stub drops ``self``.
    return model.to(device).eval(), processor  # type: ignore[arg-type]


def load_blip_pretrained_dir(
    config: BlipModelConfig,
    device: torch.device,
    model_class: type[PreTrainedModel] | None = None,
    label: str = "BLIP",
) -> tuple[Any, BlipProcessor, str]:
    """Model, processor and source of ``config.pretrained``, from local files only.

    Raises :class:`PretrainedUnavailable` when it is neither a directory nor cached.
    """
    source, _ = pretrained_source(config.pretrained)
    try:
        model, processor = load_blip_dir(source, device, config.hf_cache_dir, model_class)
    except (OSError, ValueError) as exc:
        raise PretrainedUnavailable(
            f"{label} {config.pretrained!r} is neither a local model directory nor in the "
            f"Hugging Face cache (offline lookup only): {exc}"
        ) from exc
    return model, processor, source


def load_blip_tiny(
    config: BlipModelConfig,
    words: Iterable[str] | None = None,
    *,
    fallback_reason: str | None = None,
) -> LoadedBlip:
    """Build-or-reuse the tiny BLIP (vocabulary from ``words``) and load it back from disk.

    Without ``words`` the vocabulary holds only special tokens and single characters (any
    text still tokenizes); the captioning layer passes the ontology's caption words.
    """
    vocab = tiny_vocabulary(words or ())
    arch = config.tiny
    out_dir = config.cache_path() / "tiny" / f"{arch.name}-{tiny_fingerprint(arch, vocab)}"
    path = build_tiny_blip(out_dir, arch, vocab)
    device = pick_device(config.device)
    model, processor = load_blip_dir(path, device)
    digest = sha256_of(path / WEIGHTS_NAME)[:16]
    return LoadedBlip(
        model, processor, device, model_id=f"{arch.name}@sha256:{digest}", source=str(path),
        profile_requested=config.profile, profile_used="tiny", fallback_reason=fallback_reason,
    )  # fmt: skip


def load_blip_pretrained(config: BlipModelConfig) -> LoadedBlip:
    """Pretrained BLIP from local files only; raises :class:`PretrainedUnavailable`."""
    device = pick_device(config.device)
    model, processor, source = load_blip_pretrained_dir(config, device)
    return LoadedBlip(
        model, processor, device, model_id=config.pretrained, source=source,
        profile_requested=config.profile, profile_used="pretrained", fallback_reason=None,
    )  # fmt: skip


def load_blip(
    config: BlipModelConfig | None = None, words: Iterable[str] | None = None
) -> LoadedBlip:
    """The BLIP captioner for ``config.profile``; ``auto`` falls back to tiny, loudly."""
    config = config or BlipModelConfig()
    resolved = resolve_profile(
        "BLIP",
        config.profile,
        pretrained=lambda: load_blip_pretrained(config),
        tiny=lambda: load_blip_tiny(config, words),
        download=lambda: pull(blip_entry(config)),
        pull_name="blip",
    )
    return with_fallback_note(resolved, "BLIP", config.pretrained)
