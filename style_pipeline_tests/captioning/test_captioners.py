"""Captioners: tiny BLIP, the template fallback, the OpenAI-compatible client, the factory."""

from __future__ import annotations

import json

import httpx
import pytest

from style_pipeline.captioning.captioners import (
    BlipCaptioner,
    Captioner,
    CaptionResult,
    TemplateCaptioner,
    per_image,
)
from style_pipeline.captioning.factory import make_captioner
from style_pipeline.captioning.pipeline import caption_images
from style_pipeline.captioning.remote import (
    CaptionEndpointError,
    OpenAICompatibleCaptioner,
    backoff_delay,
    image_sha256,
)
from style_pipeline.captioning.validation import Vocabulary
from style_pipeline.contracts.captioning import CaptionConfig, EndpointConfig
from style_pipeline.storage.store import Store

CATEGORIES = {"subject": ["woman", "tree"], "lighting": ["golden hour"], "setting": ["street"]}
LABELS = [{"subject": ["woman"], "lighting": ["golden hour"]}, {"setting": ["street"]}]
ENDPOINT = EndpointConfig(
    base_url="http://127.0.0.1:9/v1", model="vlm-test", api_key_env="SP_TEST_KEY",
    max_attempts=3, backoff_base_s=0.5, backoff_max_s=2.0,
)  # fmt: skip


def _ok(text: str) -> httpx.Response:
    return httpx.Response(200, json={"choices": [{"message": {"content": text}}]})


class Server:
    """A scripted MockTransport handler: pops one response (or exception) per request."""

    def __init__(self, *script):
        self.script = list(script)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, Exception):
            raise item
        return item


def _remote(server, monkeypatch, store=None, sleeps=None, endpoint=ENDPOINT):
    monkeypatch.setenv("SP_TEST_KEY", "sk-test")
    return OpenAICompatibleCaptioner(
        endpoint, store=store, transport=httpx.MockTransport(server),
        sleep=(sleeps.append if sleeps is not None else lambda s: None),
    )  # fmt: skip


def test_tiny_blip_captions_two_images(tiny_blip, images):
    captioner = BlipCaptioner(tiny_blip, batch_size=2, max_new_tokens=6, num_beams=1)
    assert isinstance(captioner, Captioner)
    results = captioner.caption(images, "a photo in the style of sps_style, ")
    assert len(results) == 2
    assert all(isinstance(r, CaptionResult) and isinstance(r.caption, str) for r in results)
    assert {r.source for r in results} == {"blip"}
    assert results[0].model.startswith("tiny-blip@sha256:")


def test_blip_batching_and_prompt_groups_keep_order(tiny_blip, images):
    captioner = BlipCaptioner(tiny_blip, batch_size=1, max_new_tokens=6, num_beams=2)
    one_by_one = captioner.caption(images, "a photo of ")
    captioner.batch_size = 4
    batched = captioner.caption(images, "a photo of ")
    assert [r.caption for r in one_by_one] == [r.caption for r in batched]
    mixed = captioner.caption(images, ["a photo of ", "a woman "])
    assert [r.prompt for r in mixed] == ["a photo of ", "a woman "]
    assert mixed[0].caption == batched[0].caption


def test_blip_rejects_a_non_peft_adapter_dir(tiny_blip, tmp_path):
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        BlipCaptioner(tiny_blip, adapter_dir=tmp_path)


def test_template_captioner_accepts_zero_shot_scores(images):
    labels = [{"subject": [("portrait", 0.31), ("person", 0.3)], "mood": [("calm", 0.2)]}] * 2
    results = TemplateCaptioner().caption(images, labels=labels)
    assert [r.caption for r in results] == ["portrait, person, calm"] * 2


def test_template_captioner_uses_per_image_labels(images):
    captioner = TemplateCaptioner(category_order=["setting", "subject", "lighting"])
    results = captioner.caption(images, labels=LABELS)
    assert [r.caption for r in results] == ["woman, golden hour", "street"]
    with pytest.raises(ValueError, match="labels for each of 2 images"):
        captioner.caption(images)


@pytest.mark.parametrize(
    ("prompts", "expected"),
    [(None, ["d", "d"]), ("p", ["p", "p"]), (["x", "y"], ["x", "y"])],
)
def test_per_image(prompts, expected):
    assert per_image(prompts, 2, "d") == expected


def test_per_image_length_mismatch():
    with pytest.raises(ValueError, match="3 prompts for 2 images"):
        per_image(["a", "b", "c"], 2, "d")


def test_openai_retries_then_succeeds(images, monkeypatch):
    server = Server(
        httpx.Response(503, text="busy"),
        httpx.Response(429, headers={"Retry-After": "1.5"}, text="slow down"),
        httpx.ReadTimeout("timed out"),
        _ok("a woman on a street"),
    )
    sleeps: list[float] = []
    endpoint = ENDPOINT.model_copy(update={"max_attempts": 4})
    captioner = _remote(server, monkeypatch, sleeps=sleeps, endpoint=endpoint)
    [result] = captioner.caption(images[:1], "describe")
    assert result.caption == "a woman on a street" and not result.cached
    assert len(server.requests) == captioner.requests_made == 4
    assert len(sleeps) == 3 and all(0 <= s <= 2.0 for s in sleeps)
    assert sleeps[1] >= 1.5  # Retry-After honoured
    request = server.requests[-1]
    assert request.url == "http://127.0.0.1:9/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test"
    body = json.loads(request.content)
    assert body["model"] == "vlm-test"
    content = body["messages"][0]["content"]
    assert content[0] == {"type": "text", "text": "describe"}
    assert content[1]["image_url"]["url"].startswith("data:image/jpeg;base64,")


def test_openai_gives_up_after_max_attempts(images, monkeypatch):
    server = Server(httpx.Response(500, text="boom"))
    sleeps: list[float] = []
    captioner = _remote(server, monkeypatch, sleeps=sleeps)
    with pytest.raises(CaptionEndpointError, match=r"gave up after 3 attempts.*HTTP 500: boom"):
        captioner.caption(images[:1], "describe")
    assert len(server.requests) == 3 and len(sleeps) == 2


def test_openai_client_errors_are_not_retried(images, monkeypatch):
    server = Server(httpx.Response(401, text="bad key"))
    with pytest.raises(CaptionEndpointError, match="HTTP 401: bad key"):
        _remote(server, monkeypatch).caption(images[:1])
    assert len(server.requests) == 1


def test_openai_malformed_answer_is_an_error(images, monkeypatch):
    server = Server(httpx.Response(200, json={"choices": []}))
    with pytest.raises(CaptionEndpointError, match="unexpected response shape"):
        _remote(server, monkeypatch).caption(images[:1])


def test_openai_cache_hit_makes_zero_requests(images, monkeypatch, tmp_path):
    store = Store(tmp_path / "storage")
    first = Server(_ok("a woman"))
    results = _remote(first, monkeypatch, store=store).caption(images, "describe")
    assert len(first.requests) == 2 and not any(r.cached for r in results)
    assert len(store.list("captions/cache")) == 2
    second = Server(httpx.Response(500))
    again = _remote(second, monkeypatch, store=store)
    cached = again.caption(images, "describe")
    assert second.requests == [] and again.requests_made == 0
    assert [r.caption for r in cached] == ["a woman", "a woman"] and all(r.cached for r in cached)
    third = Server(_ok("a tree"))
    assert (
        _remote(third, monkeypatch, store=store).caption(images[:1], "other")[0].caption == "a tree"
    )
    assert len(third.requests) == 1  # a different prompt is a different cache entry


def test_openai_requires_the_key_variable(monkeypatch):
    monkeypatch.delenv("SP_TEST_KEY", raising=False)
    with pytest.raises(ValueError, match="SP_TEST_KEY"):
        OpenAICompatibleCaptioner(ENDPOINT)
    with pytest.raises(ValueError, match="base_url"):
        OpenAICompatibleCaptioner(EndpointConfig())


@pytest.mark.parametrize("retry", [0, 1, 5, 20])
def test_backoff_delay_is_bounded(retry):
    import random

    rng = random.Random(retry)
    delays = [backoff_delay(retry, 0.5, 4.0, rng) for _ in range(50)]
    assert all(0 <= d <= min(4.0, 0.5 * 2**retry) for d in delays)
    assert backoff_delay(retry, 0.5, 4.0, rng, retry_after=100) == 4.0


def test_image_hash_depends_on_pixels_only(images):
    assert image_sha256(images[0]) == image_sha256(images[0].copy())
    assert image_sha256(images[0]) != image_sha256(images[1])


def test_factory_auto_without_endpoint_or_blip_falls_back_to_template(images, tmp_path):
    config = CaptionConfig(
        backend="auto", blip={"model": {"pretrained": str(tmp_path / "none"), "device": "cpu"}}
    )
    selected = make_captioner(config, categories=CATEGORIES)
    assert selected.backend == "template"
    assert "FELL BACK TO TEMPLATE" in selected.reason and "no endpoint" in selected.reason
    vocab = Vocabulary.build(["woman", "tree", "golden hour", "street"])
    rows = caption_images(selected, images, config, vocab, labels=LABELS)
    assert [r.caption for r in rows] == ["sps_style, woman, golden hour", "sps_style, street"]
    assert all(r.valid and r.source == "template" for r in rows)


def test_factory_auto_prefers_a_ready_endpoint(images, monkeypatch):
    monkeypatch.setenv("SP_TEST_KEY", "k")
    server = Server(_ok("There is a womn on a street."))
    config = CaptionConfig(backend="auto", endpoint=ENDPOINT, style_tags=("film grain",))
    selected = make_captioner(config, categories=CATEGORIES, transport=httpx.MockTransport(server))
    assert selected.backend == "openai" and "vlm-test" in selected.reason
    assert "golden hour" in selected.prompt  # the instruction lists the ontology terms
    vocab = Vocabulary.build(["woman", "street", "film grain"])
    [row] = caption_images(selected, images[:1], config, vocab)
    assert row.caption == "sps_style, a woman on a street, film grain"
    assert row.valid and row.repairs == ("womn->woman",)


def test_factory_blip_tiny(images, tiny_blip_config):
    from style_pipeline_tests.captioning.conftest import WORDS

    config = CaptionConfig(backend="blip", blip={"model": tiny_blip_config, "max_new_tokens": 5})
    selected = make_captioner(config, categories=CATEGORIES, words=WORDS)
    assert selected.backend == "blip"
    assert selected.prompt == "a photo in the style of sps_style, "
    assert selected.metadata()["caption_profile_used"] == "tiny"
    rows = caption_images(selected, images, config, Vocabulary.build(WORDS))
    assert len(rows) == 2 and all(r.caption.startswith("sps_style") for r in rows)
