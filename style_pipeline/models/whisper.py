"""Whisper for the transcripts asset: :func:`load_whisper` obtains it for a profile.

``pretrained`` loads a hub id (default ``openai/whisper-small``) or a local directory with
``local_files_only=True``: it never downloads. ``tiny`` builds a small random-init
:class:`WhisperForConditionalGeneration` from a config, with everything a real checkpoint
ships built offline: a byte-level BPE tokenizer (256 byte tokens, ``<|endoftext|>``, then
Whisper's special tokens in Whisper's order: ``<|startoftranscript|>``, the 99 language
tokens, ``<|translate|>``, ``<|transcribe|>``, ``<|startoflm|>``, ``<|startofprev|>``,
``<|nospeech|>``, ``<|notimestamps|>``; the 1501 timestamp ids ``<|0.00|>``..``<|30.00|>``
follow in the model's vocabulary), a feature extractor and a generation config
(languages, tasks, timestamp ids, alignment heads) so that timestamped, word-timed
generation runs as it does on a pretrained model. It is saved with ``save_pretrained``
and loaded back with ``from_pretrained``, the production path.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch

from style_pipeline.contracts.models import Profile
from style_pipeline.contracts.speech import TinyWhisperArch, WhisperModelConfig
from style_pipeline.models.cache import building_dir, sha256_of
from style_pipeline.models.device import PRECISION_DTYPES, pick_device
from style_pipeline.models.profiles import PretrainedUnavailable, offline, resolve_profile
from style_pipeline.models.registry import ModelEntry, _looks_like_path, pull
from style_pipeline.paths import resolve_local

if TYPE_CHECKING:  # transformers is imported lazily (heavy)
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

log = logging.getLogger(__name__)

WEIGHTS_NAME = "model.safetensors"
TIMESTAMP_COUNT = 1501  # <|0.00|> .. <|30.00|> in steps of 0.02 s
EOT = "<|endoftext|>"
NO_SPEECH_TOKENS = ("<|nospeech|>", "<|nocaptions|>")  # v3 name, then tiny..large-v2's


@dataclass
class LoadedWhisper:
    """A Whisper model in eval mode with its processor, and what was asked for vs. what ran."""

    model: WhisperForConditionalGeneration
    processor: WhisperProcessor
    device: torch.device
    dtype: torch.dtype
    model_id: str
    source: str
    profile_requested: Profile
    profile_used: Literal["pretrained", "tiny"]
    fallback_reason: str | None

    def metadata(self) -> dict[str, str]:
        """Flat facts for asset metadata (``fallback_reason`` is '' when none)."""
        return {
            "whisper_model_id": self.model_id,
            "whisper_model_source": self.source,
            "whisper_profile_requested": self.profile_requested,
            "whisper_profile_used": self.profile_used,
            "whisper_fallback_reason": self.fallback_reason or "",
            "whisper_device": str(self.device),
            "whisper_dtype": str(self.dtype).removeprefix("torch."),
        }


def whisper_entry(config: WhisperModelConfig) -> ModelEntry:
    """The ``whisper`` entry of ``style-pipeline models list|pull``."""
    local = config.pretrained if _looks_like_path(config.pretrained) else None
    return ModelEntry("whisper", "transformers", config.pretrained, config.hf_cache_dir, local)


def _byte_tokens() -> list[str]:
    """GPT-2's byte -> printable unicode map, the byte-level BPE's 256 base tokens."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]  # fmt: skip
    chars, n = [], 0
    for b in range(256):
        if b in printable:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + n))
            n += 1
    return chars


def special_tokens() -> list[str]:
    """Whisper's special tokens after ``<|endoftext|>``, in the order of the real vocabulary."""
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    return [
        "<|startoftranscript|>",
        *[f"<|{code}|>" for code in LANGUAGES],
        "<|translate|>",
        "<|transcribe|>",
        "<|startoflm|>",
        "<|startofprev|>",
        "<|nospeech|>",
        "<|notimestamps|>",
    ]


def _token_id(tokenizer: Any, token: str) -> int:
    found = tokenizer.convert_tokens_to_ids(token)
    if not isinstance(found, int):
        raise RuntimeError(f"tiny Whisper tokenizer: no single id for {token!r}")
    return found


def tiny_fingerprint(arch: TinyWhisperArch) -> str:
    """Content key of a tiny Whisper: architecture, seed and library version."""
    import transformers

    payload = {"arch": arch.model_dump(), "transformers": transformers.__version__}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def build_tiny_whisper(out_dir: Path, arch: TinyWhisperArch) -> Path:
    """Build the random-init model, tokenizer, feature extractor, generation config; save."""
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )

    if (out_dir / WEIGHTS_NAME).is_file():
        return out_dir
    vocab = {token: i for i, token in enumerate(_byte_tokens())}
    vocab[EOT] = len(vocab)
    tokenizer = WhisperTokenizer(vocab=vocab, merges=[])
    specials = special_tokens()
    tokenizer.add_special_tokens({"additional_special_tokens": specials})
    ids = {token: _token_id(tokenizer, token) for token in [EOT, *specials]}
    no_timestamps = ids["<|notimestamps|>"]
    if tokenizer.all_special_ids[-1] != no_timestamps:  # the tokenizer's timestamp_begin - 1
        raise RuntimeError("tiny Whisper tokenizer: <|notimestamps|> is not the last special")
    features = WhisperFeatureExtractor(feature_size=arch.num_mel_bins)
    processor = WhisperProcessor(feature_extractor=features, tokenizer=tokenizer)
    eot, sot = ids[EOT], ids["<|startoftranscript|>"]
    config = WhisperConfig(
        vocab_size=no_timestamps + 1 + TIMESTAMP_COUNT, num_mel_bins=arch.num_mel_bins,
        d_model=arch.d_model, encoder_layers=arch.encoder_layers,
        decoder_layers=arch.decoder_layers, encoder_attention_heads=arch.attention_heads,
        decoder_attention_heads=arch.attention_heads, encoder_ffn_dim=arch.ffn_dim,
        decoder_ffn_dim=arch.ffn_dim, max_source_positions=1500,
        max_target_positions=arch.max_target_positions, pad_token_id=eot, bos_token_id=eot,
        eos_token_id=eot, decoder_start_token_id=sot, begin_suppress_tokens=[eot],
        suppress_tokens=[],
    )  # fmt: skip
    generation = GenerationConfig(
        decoder_start_token_id=sot, bos_token_id=eot, eos_token_id=eot, pad_token_id=eot,
        max_length=arch.max_target_positions, begin_suppress_tokens=[eot], suppress_tokens=[],
        is_multilingual=True, no_timestamps_token_id=no_timestamps,
        prev_sot_token_id=ids["<|startofprev|>"], max_initial_timestamp_index=50,
        lang_to_id={t: i for t, i in ids.items() if t in specials[1:100]},
        task_to_id={"translate": ids["<|translate|>"], "transcribe": ids["<|transcribe|>"]},
        alignment_heads=[[layer, head] for layer in range(arch.decoder_layers)
                         for head in range(arch.attention_heads)],
    )  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(arch.seed)
        model = WhisperForConditionalGeneration(config)
    model.generation_config = generation
    with building_dir(out_dir, WEIGHTS_NAME) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
    log.info("saved tiny Whisper to %s", out_dir)
    return out_dir


def load_whisper_dir(
    path: str | Path, device: torch.device, dtype: torch.dtype, cache_dir: str | None = None
) -> tuple[WhisperForConditionalGeneration, WhisperProcessor]:
    """Model (eval mode, on ``device`` in ``dtype``) and processor, local files only."""
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    with offline():
        processor = WhisperProcessor.from_pretrained(
            str(path), local_files_only=True, cache_dir=cache_dir
        )
        model = WhisperForConditionalGeneration.from_pretrained(
            str(path), local_files_only=True, cache_dir=cache_dir, dtype=dtype
        )
    # transformers wraps PreTrainedModel.to in a decorator whose stub drops ``self``.
    return model.to(device).eval(), processor  # type: ignore[arg-type]


def pick_dtype(config: WhisperModelConfig, device: torch.device) -> torch.dtype:
    """The configured precision; fp16 on a CPU runs as fp32 (CPU half kernels are slow)."""
    if device.type == "cpu" and config.precision == "fp16":
        return torch.float32
    return PRECISION_DTYPES[config.precision]


def load_whisper_tiny(
    config: WhisperModelConfig, *, fallback_reason: str | None = None
) -> LoadedWhisper:
    """Build-or-reuse the tiny Whisper and load it back from disk."""
    arch = config.tiny
    out_dir = config.cache_path() / "tiny" / f"{arch.name}-{tiny_fingerprint(arch)}"
    path = build_tiny_whisper(out_dir, arch)
    device = pick_device(config.device)
    dtype = pick_dtype(config, device)
    model, processor = load_whisper_dir(path, device, dtype)
    digest = sha256_of(path / WEIGHTS_NAME)[:16]
    return LoadedWhisper(
        model, processor, device, dtype, f"{arch.name}@sha256:{digest}", str(path),
        config.profile, "tiny", fallback_reason,
    )  # fmt: skip


def load_whisper_pretrained(config: WhisperModelConfig) -> LoadedWhisper:
    """Pretrained Whisper from local files only; raises :class:`PretrainedUnavailable`."""
    local = resolve_local(config.pretrained)
    source = str(local) if local.is_dir() else config.pretrained
    device = pick_device(config.device)
    dtype = pick_dtype(config, device)
    try:
        model, processor = load_whisper_dir(source, device, dtype, config.hf_cache_dir)
    except (OSError, ValueError) as exc:
        raise PretrainedUnavailable(
            f"Whisper {config.pretrained!r} is neither a local model directory nor in the "
            f"Hugging Face cache (offline lookup only): {exc}"
        ) from exc
    return LoadedWhisper(
        model, processor, device, dtype, config.pretrained, source, config.profile,
        "pretrained", None,
    )  # fmt: skip


def load_whisper(config: WhisperModelConfig | None = None) -> LoadedWhisper:
    """The Whisper model for ``config.profile``; ``auto`` falls back to tiny, loudly."""
    config = config or WhisperModelConfig()
    resolved = resolve_profile(
        "Whisper",
        config.profile,
        pretrained=lambda: load_whisper_pretrained(config),
        tiny=lambda: load_whisper_tiny(config),
        download=lambda: pull(whisper_entry(config)),
        pull_name="whisper",
    )
    if resolved.fallback_reason is None:
        return resolved.value
    reason = f"pretrained Whisper {config.pretrained} unavailable: {resolved.fallback_reason}"
    return replace(resolved.value, fallback_reason=reason)
