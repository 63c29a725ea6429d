"""Pick and build the captioner for a :class:`CaptionConfig`, saying why.

``auto`` prefers an OpenAI-compatible endpoint when one is configured and its key is
set, then the local VLM (``vlm``: Florence-2, Qwen2-VL class, BLIP-2) when its
pretrained weights are on this machine (never downloaded for ``auto``), then BLIP
(pretrained when loadable offline, or tiny when the BLIP profile asks for it
explicitly), then the template fallback; the reason says what was chosen and why each
earlier choice was not. The endpoint's prompt is the ontology instruction or, with
``endpoint.prompt_style: joycaption``, a JoyCaption-style request. BLIP uses the newest
``caption_model`` version from the store when it was trained on the same base model.
Reasons and metadata name the endpoint through :func:`style_pipeline.redaction.redact`:
no credentials in them.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import httpx

from style_pipeline.captioning.captioners import BlipCaptioner, Captioner, TemplateCaptioner
from style_pipeline.captioning.finetune import (
    adapter_local_dir,
    latest_caption_model,
    read_caption_model_metadata,
)
from style_pipeline.captioning.remote import OpenAICompatibleCaptioner
from style_pipeline.captioning.templates import (
    JOYCAPTION_SYSTEM,
    instruction_prompt,
    joycaption_prompt,
)
from style_pipeline.captioning.vlm import VlmCaptioner
from style_pipeline.captioning.vocabulary import caption_words, load_default_ontology
from style_pipeline.contracts.captioning import CaptionConfig, conditional_prompt
from style_pipeline.models.blip import load_blip
from style_pipeline.models.clip import PretrainedUnavailable
from style_pipeline.models.profiles import pull_hint
from style_pipeline.models.vlm import LoadedVlm, load_vlm, load_vlm_pretrained
from style_pipeline.redaction import redact
from style_pipeline.storage.store import Store

log = logging.getLogger(__name__)


@dataclass
class SelectedCaptioner:
    """The captioner to run, the prompt to give it, and why it was chosen."""

    captioner: Captioner
    backend: str
    prompt: str
    reason: str
    model_facts: dict[str, str]
    secret_env: str | None = None  # the endpoint's api_key_env: its value is masked too

    def metadata(self) -> dict[str, str]:
        """Facts for asset metadata, every value redacted (they persist in the instance)."""
        facts = {
            "caption_backend": self.backend,
            "caption_reason": self.reason,
            "caption_prompt": self.prompt,
            **self.model_facts,
        }
        return {k: redact(v, [self.secret_env]) for k, v in facts.items()}


def endpoint_ready(config: CaptionConfig) -> tuple[bool, str]:
    """Whether the endpoint is configured and its API key (if any) is in the environment."""
    ep = config.endpoint
    if not ep.configured():
        return False, "no endpoint configured (endpoint.base_url / endpoint.model)"
    if ep.api_key_env and not os.environ.get(ep.api_key_env):
        return False, f"endpoint configured but ${ep.api_key_env} is not set"
    return True, redact(f"endpoint {ep.base_url} model {ep.model}", [ep.api_key_env])


def _openai(config, categories, store, transport, sleep, reason) -> SelectedCaptioner:
    ep = config.endpoint
    system = None
    if ep.prompt_style == "joycaption":
        prompt = joycaption_prompt(categories, config.style, ep.caption_words)
        system = JOYCAPTION_SYSTEM
    else:
        prompt = instruction_prompt(categories, config.instruction, ep.caption_words)
    captioner = OpenAICompatibleCaptioner(
        ep, max_tokens=config.generation_max_tokens, default_prompt=prompt,
        system_prompt=system, store=store, transport=transport, sleep=sleep,
    )  # fmt: skip
    facts = {"caption_model_id": captioner.model_id, "caption_prompt_style": ep.prompt_style}
    secret_env = config.endpoint.api_key_env
    reason = redact(reason, [secret_env])
    return SelectedCaptioner(captioner, "openai", prompt, reason, facts, secret_env)


def _template(categories, reason) -> SelectedCaptioner:
    captioner = TemplateCaptioner(category_order=list(categories))
    return SelectedCaptioner(captioner, "template", "", reason, {"caption_model_id": "template"})


def vlm_prompt(config: CaptionConfig, family: str, categories: Mapping[str, Sequence[str]]) -> str:
    """The VLM's prompt: Florence-2's task token, a chat VLM's ontology instruction, or
    BLIP-2's prefix (``vlm.prompt`` overrides the last two)."""
    vlm = config.vlm
    if family == "florence2":
        return vlm.task
    if vlm.prompt is not None:
        return vlm.prompt
    if family == "qwen2_vl":
        return instruction_prompt(categories, config.instruction)
    return ""


def _vlm(config: CaptionConfig, loaded: LoadedVlm, categories, reason: str) -> SelectedCaptioner:
    settings = config.vlm
    prompt = vlm_prompt(config, loaded.family, categories)
    captioner = VlmCaptioner(
        loaded, default_prompt=prompt, batch_size=settings.batch_size,
        max_new_tokens=settings.max_new_tokens, num_beams=settings.num_beams,
        max_image_edge=settings.max_image_edge,
    )  # fmt: skip
    reason += f"; VLM {loaded.model_id} ({loaded.family}, {loaded.profile_used})"
    if loaded.fallback_reason:
        reason += f"; {loaded.fallback_reason}"
    return SelectedCaptioner(captioner, "vlm", prompt, reason, loaded.metadata())


def _blip(config: CaptionConfig, store: Store | None, words, reason: str) -> SelectedCaptioner:
    settings = config.blip
    if words is None:  # the tiny BLIP's vocabulary: the project ontology's caption words
        words = caption_words(load_default_ontology())
    loaded = load_blip(settings.model, words)
    prompt = conditional_prompt(config.trigger_word, config.conditional_prompt)
    make = functools.partial(
        BlipCaptioner, loaded, batch_size=settings.batch_size,
        max_new_tokens=settings.max_new_tokens, num_beams=settings.num_beams,
        default_prompt=prompt,
    )  # fmt: skip
    if settings.adapter_dir:
        captioner = make(adapter_dir=settings.adapter_dir)
        reason += f"; adapter {settings.adapter_dir}"
    elif settings.use_latest_adapter and store is not None and (key := latest_caption_model(store)):
        meta = read_caption_model_metadata(store, key)
        if meta["base_model"] != loaded.model_id:
            captioner = make()
            reason += f"; {key} skipped: trained on {meta['base_model']}, not {loaded.model_id}"
        else:
            with adapter_local_dir(store, key) as adapter:
                captioner = make(adapter_dir=adapter)
            prompt = captioner.default_prompt = meta["prompt"]
            reason += f"; fine-tuned adapter {key}"
    else:
        captioner = make()
    if loaded.fallback_reason:
        reason += f"; {loaded.fallback_reason}"
    facts = {**loaded.metadata(), "caption_model_id": captioner.model_id}
    return SelectedCaptioner(captioner, "blip", prompt, reason, facts)


def make_captioner(
    config: CaptionConfig,
    *,
    categories: Mapping[str, Sequence[str]],
    store: Store | None = None,
    words: Iterable[str] | None = None,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> SelectedCaptioner:
    """The captioner for ``config.backend``.

    ``categories`` (ontology category -> terms) feeds the endpoint and chat-VLM
    instructions and the template order; ``words`` is the tiny BLIP's and tiny VLM's
    vocabulary (None: the ontology's).
    """
    backend = config.backend
    if backend == "template":
        return _template(categories, "backend template requested")
    if backend == "openai":
        return _openai(config, categories, store, transport, sleep, "backend openai requested")
    if backend == "blip":
        return _blip(config, store, words, "backend blip requested")
    if backend == "vlm":
        if words is None:  # the tiny VLM's tokenizer learns the ontology's caption words
            words = caption_words(load_default_ontology())
        loaded = load_vlm(config.vlm, words)
        return _vlm(config, loaded, categories, "backend vlm requested")
    ready, why = endpoint_ready(config)
    if ready:
        return _openai(config, categories, store, transport, sleep, f"auto: {why}")
    loaded_vlm, why_not = _vlm_if_present(config)
    if loaded_vlm is not None:
        return _vlm(config, loaded_vlm, categories, f"auto: {why}; {why_not}")
    why = f"{why}; {why_not}"
    try:
        if config.blip.model.profile == "tiny":
            return _blip(config, store, words, f"auto: {why}; BLIP profile tiny requested")
        pretrained = config.blip.model.model_copy(update={"profile": "pretrained"})
        blip = config.blip.model_copy(update={"model": pretrained})
        return _blip(config.model_copy(update={"blip": blip}), store, words, f"auto: {why}")
    except PretrainedUnavailable as err:
        reason = f"auto: FELL BACK TO TEMPLATE captions: {why}; {err}"
        log.warning(reason)
        return _template(categories, reason)


def _vlm_if_present(config: CaptionConfig) -> tuple[LoadedVlm | None, str]:
    """The pretrained VLM when its weights are here (``auto`` never downloads it), and why."""
    vlm = config.vlm
    if vlm.profile == "tiny":
        return None, "VLM skipped: its profile is tiny (random weights; ask backend vlm for it)"
    try:
        loaded = load_vlm_pretrained(vlm)
    except PretrainedUnavailable as err:
        return None, f"VLM not used: {err}; {pull_hint(vlm.pull_name())}"
    return loaded, f"VLM {vlm.pretrained} present offline"
