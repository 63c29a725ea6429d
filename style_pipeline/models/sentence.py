"""The sentence encoder of the alignment: :func:`load_sentence_encoder` for a profile.

transformers ``AutoModel`` + mean pooling over the attention mask + L2 normalisation,
which is what sentence-transformers does for ``all-MiniLM-L6-v2`` (the pretrained
default), without the sentence-transformers package. ``pretrained`` loads a hub id or a
local directory with ``local_files_only=True`` (never downloads); ``tiny`` builds a
random-init :class:`BertModel` (WordPiece vocabulary of single characters, written
offline), saves it and loads it back with ``from_pretrained``, the production path.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from style_pipeline.contracts.alignment import SentenceEncoderConfig, TinyBertArch
from style_pipeline.contracts.models import Profile
from style_pipeline.models.blip import tiny_vocabulary
from style_pipeline.models.cache import building_dir, sha256_of
from style_pipeline.models.device import pick_device
from style_pipeline.models.profiles import PretrainedUnavailable, offline, resolve_profile
from style_pipeline.models.registry import ModelEntry, named_entry, pull
from style_pipeline.paths import resolve_local

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

WEIGHTS_NAME = "model.safetensors"
PULL_NAME = "sentence-encoder"


def sentence_entry(config: SentenceEncoderConfig) -> ModelEntry:
    """The ``models list|pull`` entry of the configured encoder (``alignment.encoder``)."""
    return named_entry(PULL_NAME, config.pretrained, config.hf_cache_dir)


@dataclass
class SentenceEncoder:
    """A loaded encoder: :meth:`encode` gives unit vectors (float32, one row per text)."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    device: torch.device
    model_id: str
    profile_requested: Profile
    profile_used: Literal["pretrained", "tiny"]
    fallback_reason: str | None
    batch_size: int = 64
    max_length: int = 128

    @torch.inference_mode()
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Mean-pooled, L2-normalised embeddings of ``texts`` (shape ``(len(texts), dim)``)."""
        dim = int(self.model.config.hidden_size)
        if not texts:
            return np.zeros((0, dim), dtype=np.float32)
        out = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(
                list(texts[start : start + self.batch_size]),
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled.float(), dim=-1).cpu().numpy())
        return np.concatenate(out)

    def metadata(self) -> dict[str, str]:
        return {
            "encoder_model_id": self.model_id,
            "encoder_profile_requested": self.profile_requested,
            "encoder_profile_used": self.profile_used,
            "encoder_fallback_reason": self.fallback_reason or "",
        }


def tiny_fingerprint(arch: TinyBertArch, vocab: list[str]) -> str:
    import transformers

    payload = {"arch": arch.model_dump(), "vocab": vocab, "transformers": transformers.__version__}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def build_tiny_encoder(out_dir: Path, arch: TinyBertArch, vocab: list[str]) -> Path:
    """Random-init BERT + WordPiece tokenizer from ``arch``, saved atomically to ``out_dir``."""
    from transformers import BertConfig, BertModel, BertTokenizer

    if (out_dir / WEIGHTS_NAME).is_file():
        return out_dir
    with building_dir(out_dir, WEIGHTS_NAME) as tmp:
        tokenizer = BertTokenizer(
            vocab={token: i for i, token in enumerate(vocab)}, do_lower_case=True
        )
        config = BertConfig(
            vocab_size=len(vocab), hidden_size=arch.hidden, num_hidden_layers=arch.layers,
            num_attention_heads=arch.heads, intermediate_size=arch.intermediate,
            max_position_embeddings=arch.max_positions, pad_token_id=tokenizer.pad_token_id,
        )  # fmt: skip
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(arch.seed)
            model = BertModel(config)  # with its pooler, as AutoModel loads it (unused)
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    log.info("saved tiny sentence encoder to %s", out_dir)
    return out_dir


def _load_dir(
    path: str | Path, device: torch.device, cache_dir: str | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    from transformers import AutoModel, AutoTokenizer

    with offline():
        tokenizer = AutoTokenizer.from_pretrained(
            str(path), local_files_only=True, cache_dir=cache_dir
        )
        model = AutoModel.from_pretrained(str(path), local_files_only=True, cache_dir=cache_dir)
    return model.to(device).eval(), tokenizer  # type: ignore[arg-type]


def load_encoder_tiny(config: SentenceEncoderConfig) -> SentenceEncoder:
    """Build-or-reuse the tiny encoder and load it back from disk."""
    vocab = tiny_vocabulary(())
    arch = config.tiny
    out_dir = config.cache_path() / "tiny" / f"{arch.name}-{tiny_fingerprint(arch, vocab)}"
    path = build_tiny_encoder(out_dir, arch, vocab)
    device = pick_device(config.device)
    model, tokenizer = _load_dir(path, device)
    digest = sha256_of(path / WEIGHTS_NAME)[:16]
    return SentenceEncoder(
        model, tokenizer, device, f"{arch.name}@sha256:{digest}", config.profile, "tiny", None,
        config.batch_size, min(config.max_length, arch.max_positions),
    )  # fmt: skip


def load_encoder_pretrained(config: SentenceEncoderConfig) -> SentenceEncoder:
    """Pretrained encoder from local files only; raises :class:`PretrainedUnavailable`."""
    local = resolve_local(config.pretrained)
    source = str(local) if local.is_dir() else config.pretrained
    device = pick_device(config.device)
    try:
        model, tokenizer = _load_dir(source, device, config.hf_cache_dir)
    except (OSError, ValueError) as exc:
        raise PretrainedUnavailable(
            f"sentence encoder {config.pretrained!r} is neither a local model directory nor "
            f"in the Hugging Face cache (offline lookup only): {exc}"
        ) from exc
    return SentenceEncoder(
        model, tokenizer, device, config.pretrained, config.profile, "pretrained", None,
        config.batch_size, config.max_length,
    )  # fmt: skip


def load_sentence_encoder(config: SentenceEncoderConfig | None = None) -> SentenceEncoder:
    """The encoder for ``config.profile``; ``auto`` falls back to tiny, loudly."""
    config = config or SentenceEncoderConfig()
    resolved = resolve_profile(
        "sentence encoder",
        config.profile,
        pretrained=lambda: load_encoder_pretrained(config),
        tiny=lambda: load_encoder_tiny(config),
        download=lambda: pull(sentence_entry(config)),
        pull_name=PULL_NAME,
    )
    encoder = resolved.value
    encoder.profile_requested = config.profile
    encoder.fallback_reason = resolved.fallback_reason
    return encoder
