"""Captioner selection with the VLM backend, and the JoyCaption-style endpoint prompt.

``auto``: a ready endpoint, else the VLM when its pretrained weights are on this machine
(a saved tiny model in a local folder stands in for them), else BLIP, else the template;
the reason says what was chosen and why. The JoyCaption prompt is checked where it
matters: in the request a real HTTP server on 127.0.0.1 receives.
"""

from __future__ import annotations

import pytest

from style_pipeline.captioning.factory import make_captioner
from style_pipeline.captioning.pipeline import caption_images
from style_pipeline.captioning.templates import JOYCAPTION_SYSTEM
from style_pipeline.captioning.validation import Vocabulary
from style_pipeline.contracts.captioning import CaptionConfig
from style_pipeline.models.vlm import load_vlm
from style_pipeline_tests.curation.judge_server import Reply, chat_server_fixture  # noqa: F401

CATEGORIES = {"subject": ["woman", "tree"], "lighting": ["golden hour"], "setting": ["street"]}
WORDS = ["woman", "tree", "golden hour", "street"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("vlm_models"))


def _tiny(cache: str, family: str = "florence2", **kw) -> dict:
    return {"profile": "tiny", "family": family, "cache_dir": cache, "device": "cpu",
            "max_new_tokens": 4, "num_beams": 1, **kw}  # fmt: skip


def _missing_blip(tmp_path) -> dict:
    return {"model": {"pretrained": str(tmp_path / "no-blip"), "device": "cpu"}}


def _missing_vlm(tmp_path) -> dict:
    return {"pretrained": "florence-community/Florence-2-base", "hf_cache_dir": str(tmp_path),
            "device": "cpu"}  # fmt: skip


def test_backend_vlm_florence_uses_its_task_token(cache, images):
    config = CaptionConfig(backend="vlm", vlm=_tiny(cache, task="<DETAILED_CAPTION>"))
    selected = make_captioner(config, categories=CATEGORIES, words=WORDS)
    assert selected.backend == "vlm" and selected.prompt == "<DETAILED_CAPTION>"
    assert selected.reason.startswith("backend vlm requested; VLM tiny-vlm-florence2@")
    facts = selected.metadata()
    assert facts["caption_model_family"] == "florence2"
    assert facts["caption_model_id"].startswith("tiny-vlm-florence2@sha256:")
    assert facts["caption_profile_used"] == "tiny"
    rows = caption_images(selected, images, config, Vocabulary.build(WORDS))
    assert len(rows) == 2 and all(r.source == "vlm" for r in rows)


def test_backend_vlm_chat_model_gets_the_ontology_instruction(cache, images):
    config = CaptionConfig(backend="vlm", vlm=_tiny(cache, "qwen2_vl"))
    selected = make_captioner(config, categories=CATEGORIES, words=WORDS)
    assert "- lighting: golden hour" in selected.prompt  # captioning.caption.instruction
    assert [r.prompt for r in selected.captioner.caption(images)] == [selected.prompt] * 2
    blip2 = CaptionConfig(backend="vlm", vlm=_tiny(cache, "blip2", prompt="a photo of"))
    assert make_captioner(blip2, categories=CATEGORIES, words=WORDS).prompt == "a photo of"


def test_auto_uses_a_vlm_whose_weights_are_here(cache, tmp_path):
    folder = load_vlm(CaptionConfig(vlm=_tiny(cache)).vlm, WORDS).source
    config = CaptionConfig(
        backend="auto", vlm={"pretrained": folder, "device": "cpu"}, blip=_missing_blip(tmp_path)
    )
    selected = make_captioner(config, categories=CATEGORIES)
    assert selected.backend == "vlm"
    assert selected.reason.startswith("auto: no endpoint configured")
    assert f"VLM {folder} present offline" in selected.reason
    assert selected.metadata()["caption_profile_used"] == "pretrained"


def test_auto_without_vlm_weights_goes_on_to_blip_saying_why(tmp_path, tiny_blip_config):
    config = CaptionConfig(
        backend="auto", vlm=_missing_vlm(tmp_path), blip={"model": tiny_blip_config}
    )
    selected = make_captioner(config, categories=CATEGORIES, words=WORDS)
    assert selected.backend == "blip"
    assert "VLM not used" in selected.reason and "BLIP profile tiny requested" in selected.reason
    assert "style-pipeline models pull florence2" in selected.reason


def test_auto_with_nothing_here_falls_back_to_the_template(tmp_path):
    config = CaptionConfig(backend="auto", vlm=_missing_vlm(tmp_path), blip=_missing_blip(tmp_path))
    selected = make_captioner(config, categories=CATEGORIES)
    assert selected.backend == "template"
    assert "FELL BACK TO TEMPLATE" in selected.reason and "VLM not used" in selected.reason


def test_auto_skips_a_tiny_vlm_and_prefers_a_ready_endpoint(cache, tmp_path, monkeypatch):
    config = CaptionConfig(backend="auto", vlm=_tiny(cache), blip=_missing_blip(tmp_path))
    selected = make_captioner(config, categories=CATEGORIES)
    assert selected.backend == "template" and "VLM skipped: its profile is tiny" in selected.reason
    monkeypatch.setenv("SP_KEY", "k")
    endpoint = {"base_url": "http://127.0.0.1:9/v1", "model": "m", "api_key_env": "SP_KEY"}
    ready = config.model_copy(update={"endpoint": config.endpoint.model_validate(endpoint)})
    assert make_captioner(ready, categories=CATEGORIES).backend == "openai"


@pytest.mark.parametrize(("style", "request_start"), [
    ("tags", "Write a list of Booru-like tags for this image within 25 words."),
    ("sentence", "Write a descriptive caption for this image in a casual tone within 25 words."),
])  # fmt: skip
def test_joycaption_prompt_reaches_the_endpoint(chat_server, images, monkeypatch, style,
                                                request_start):  # fmt: skip
    monkeypatch.setenv("SP_JOY_KEY", "sk-joy")
    chat_server.script = [Reply(content="woman, street, golden hour")] * 2
    endpoint = {"base_url": chat_server.base_url, "model": "joycaption-beta-one",
                "api_key_env": "SP_JOY_KEY", "prompt_style": "joycaption", "caption_words": 25,
                "cache": False}  # fmt: skip
    config = CaptionConfig(backend="openai", endpoint=endpoint, style=style)
    selected = make_captioner(config, categories=CATEGORIES)
    assert selected.metadata()["caption_prompt_style"] == "joycaption"
    results = selected.captioner.caption(images)
    assert [r.caption for r in results] == ["woman, street, golden hour"] * 2
    assert len(chat_server.bodies) == 2
    for body in chat_server.bodies:
        system, user = body["messages"]
        assert system == {"role": "system", "content": JOYCAPTION_SYSTEM}
        text, image = user["content"]
        assert text["text"].startswith(request_start)
        assert "- lighting: golden hour" in text["text"] and "artistic style" in text["text"]
        assert image["image_url"]["url"].startswith("data:image/")
        assert body["model"] == "joycaption-beta-one"
    assert chat_server.authorizations == ["Bearer sk-joy"] * 2


def test_the_instruction_style_sends_no_system_turn(chat_server, images, monkeypatch):
    monkeypatch.setenv("SP_JOY_KEY", "k")
    endpoint = {"base_url": chat_server.base_url, "model": "m", "api_key_env": "SP_JOY_KEY",
                "cache": False}  # fmt: skip
    selected = make_captioner(CaptionConfig(backend="openai", endpoint=endpoint),
                              categories=CATEGORIES)  # fmt: skip
    selected.captioner.caption(images[:1])
    [message] = chat_server.bodies[0]["messages"]
    assert message["role"] == "user" and message["content"][0]["text"] == selected.prompt
