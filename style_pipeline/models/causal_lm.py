"""The causal LM the nightly LLM adapter trains on, through the ``pretrained|tiny|auto`` resolver.

``pretrained`` is ``llm.pretrained`` (a hub id found in the local Hugging Face cache, or a
local folder; e.g. ``Qwen/Qwen2.5-0.5B-Instruct``); it downloads only when
``models.allow_download`` is on (else ``style-pipeline models pull causal-lm``, entry
:func:`causal_lm_entry`). ``tiny`` builds a
random-init ``LlamaForCausalLM`` from ``llm.tiny`` with a byte-level BPE tokenizer trained
here and a ChatML chat template (the format Qwen2.5-Instruct uses), saved once under
``llm.model_cache_dir/tiny/<name>-<fingerprint>`` and loaded back through
``from_pretrained`` like a real model. The generation config of the tiny model suppresses
byte tokens that do not decode to printable ASCII, so its (random) answers stay readable.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch

from style_pipeline.contracts.llm import LlmSettings, TinyCausalLmArch
from style_pipeline.models.cache import building_dir, sha256_of
from style_pipeline.models.profiles import (
    PretrainedUnavailable,
    ProfileUsed,
    pull_hint,
    resolve_profile,
)
from style_pipeline.models.registry import ModelEntry, _looks_like_path, hub_snapshot, pull
from style_pipeline.models.vlm_tiny import _token_id, _unprintable, train_bpe
from style_pipeline.paths import resolve_local

log = logging.getLogger(__name__)

WEIGHTS_NAME = "model.safetensors"
PULL_NAME = "causal-lm"
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# ChatML, as Qwen2.5-Instruct writes it (minus tools): a system turn first when none given.
CHATML_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Words the tiny tokenizer learns, so chat text becomes a few tokens per word.
_WORDS = (
    "You are a helpful assistant. user assistant system what is the how do you why did "
    "when will can I we they he she it this that there here yes no thanks thank good great "
    "question answer chat stream game play video music today tomorrow tonight favorite "
    "think know like love want need really right now again later please hello hi everyone "
    "someone asked about said going back next last first time day night best new old "
)


@dataclass(frozen=True)
class CausalLm:
    """A resolved causal LM folder (``from_pretrained`` reads it) and how it was obtained."""

    path: Path
    model_id: str  # hub id / folder, or ``<tiny name>@sha256:<16 hex>``
    profile: ProfileUsed
    fallback_reason: str | None = None


def tiny_fingerprint(arch: TinyCausalLmArch) -> str:
    """Content key of the tiny model: architecture, seed, words and library versions."""
    import tokenizers
    import transformers

    payload = {
        "arch": arch.model_dump(), "words": _WORDS, "template": CHATML_TEMPLATE,
        "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
    }  # fmt: skip
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def build_tiny_causal_lm(out_dir: Path, arch: TinyCausalLmArch) -> Path:
    """Build the random-init Llama-style model + ChatML tokenizer; save atomically (reused)."""
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, Qwen2Tokenizer

    if (out_dir / WEIGHTS_NAME).is_file():
        return out_dir
    if arch.hidden % arch.heads:
        raise ValueError(f"llm.tiny: hidden {arch.hidden} is not a multiple of heads {arch.heads}")
    vocab, merges = train_bpe(_WORDS.split(), SPECIALS, arch.vocab_size)
    tok = Qwen2Tokenizer(vocab=vocab, merges=cast(Any, merges), padding_side="right")
    tok.add_special_tokens({"additional_special_tokens": SPECIALS[1:]})
    tok.eos_token = "<|im_end|>"
    tok.pad_token = "<|endoftext|>"
    tok.chat_template = CHATML_TEMPLATE
    tok.model_max_length = arch.max_positions
    eos, pad = _token_id(tok, "<|im_end|>"), _token_id(tok, "<|endoftext|>")
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=arch.hidden, intermediate_size=2 * arch.hidden,
        num_hidden_layers=arch.layers, num_attention_heads=arch.heads, num_key_value_heads=1,
        max_position_embeddings=arch.max_positions, bos_token_id=pad, eos_token_id=eos,
        pad_token_id=pad, tie_word_embeddings=True,
    )  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(arch.seed)
        model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=pad, eos_token_id=eos, pad_token_id=pad,
        suppress_tokens=_unprintable(tok, {eos}),
    )  # fmt: skip
    with building_dir(out_dir, WEIGHTS_NAME) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
    log.info("saved tiny causal LM to %s", out_dir)
    return out_dir


def _tiny(settings: LlmSettings) -> CausalLm:
    arch = settings.tiny
    root = resolve_local(settings.model_cache_dir) / "tiny"
    path = build_tiny_causal_lm(root / f"{arch.name}-{tiny_fingerprint(arch)}", arch)
    digest = sha256_of(path / WEIGHTS_NAME)[:16]
    return CausalLm(path, f"{arch.name}@sha256:{digest}", "tiny")


def _pretrained(settings: LlmSettings) -> CausalLm:
    local = resolve_local(settings.pretrained)
    if local.is_dir() and (local / "config.json").is_file():
        return CausalLm(local, settings.pretrained, "pretrained")
    try:
        snapshot = hub_snapshot(settings.pretrained, "config.json", settings.hf_cache_dir)
    except ValueError:  # not a repo id at all (a missing path)
        snapshot = None
    if snapshot is None:
        raise PretrainedUnavailable(
            f"causal LM {settings.pretrained!r} is neither a local model folder nor in the "
            "Hugging Face cache (offline lookup only)"
        )
    return CausalLm(snapshot, settings.pretrained, "pretrained")


def causal_lm_entry(settings: LlmSettings) -> ModelEntry:
    """The configured causal LM as a ``models list/pull`` entry (named ``causal-lm``)."""
    local = settings.pretrained if _looks_like_path(settings.pretrained) else None
    return ModelEntry(PULL_NAME, "transformers", settings.pretrained, settings.hf_cache_dir, local)


def resolve_causal_lm(settings: LlmSettings) -> CausalLm:
    """The base model folder for ``llm.profile``; ``auto`` falls back to tiny, loudly."""
    try:
        resolved = resolve_profile(
            "causal LM",
            settings.profile,
            pretrained=lambda: _pretrained(settings),
            tiny=lambda: _tiny(settings),
            download=lambda: pull(causal_lm_entry(settings)),
            pull_name=PULL_NAME,
        )
    except PretrainedUnavailable as err:  # profile pretrained: say how to get the weights
        raise PretrainedUnavailable(f"{err}; {pull_hint(PULL_NAME)}") from err
    value: CausalLm = resolved.value
    if resolved.fallback_reason is None:
        return value
    return CausalLm(value.path, value.model_id, value.profile, resolved.fallback_reason)


def load_causal_lm(path: Path, dtype: torch.dtype = torch.float32) -> tuple[Any, Any]:
    """(model in eval mode, tokenizer with a pad token) from a resolved folder, offline."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, dtype=dtype)
    model.eval()
    return model, tokenizer
