"""``/v1/loras``, ``/v1/generate`` (+ strip), ``/v1/queue`` and the ``/generate`` page over
TestClient, on two tiny LoRA versions published by the real trainer."""

from __future__ import annotations

import base64
import io
import shutil
import threading
import time

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from style_pipeline.contracts.training import LiveLora, MetricsDocument
from style_pipeline.models.diffusion import load_pipeline
from style_pipeline.serving import generate as generate_routes
from style_pipeline.serving.app import create_app
from style_pipeline.settings import load_settings
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline_tests.serving.lora_fixtures import PARTITION, publish_two_versions

TOKEN = "t0ken-for-tests-only"
BODY = {"prompt": "sks style, a picture", "seed": 0, "steps": 2, "width": 64, "height": 64}


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    return publish_two_versions(tmp_path_factory.mktemp("published"))


def copy_store(published, tmp_path, live: str | None) -> Store:
    """The published versions in a fresh store, with ``live`` promoted (None: none live)."""
    shutil.copytree(
        published.store.local_path(layout.LORA_WEIGHTS), tmp_path / "s" / "lora_weights"
    )
    store = Store(tmp_path / "s")
    if live is not None:
        doc = LiveLora(version=live, sha256=None)
        store.put_bytes(doc.model_dump_json().encode(), layout.live_lora_key())
    return store


def make_client(store: Store, tmp_path, **serving) -> TestClient:
    settings = load_settings(
        storage=str(tmp_path / "unused"),
        serving={"max_body_bytes": 4096, "max_prompt_chars": 80, "max_generation_steps": 4,
                 "max_generation_edge": 128, **serving},
        training={"model_cache_dir": str(tmp_path / "models")},
    )  # fmt: skip
    app = create_app(settings, store)
    if not any(getattr(r, "path", "") == "/v1/generate" for r in app.routes):
        app.include_router(generate_routes.router)  # until create_app includes it
    return TestClient(app)


@pytest.fixture()
def client(published, tmp_path, monkeypatch):
    monkeypatch.delenv("STYLE_PIPELINE_API_TOKEN", raising=False)
    return make_client(copy_store(published, tmp_path, published.first.version), tmp_path)


def png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(np.int16)


def test_loras_lists_versions_newest_first_with_live_and_metrics(published, client):
    store = client.app.state.store
    doc = MetricsDocument(
        lora_version=published.second.version, metrics={"clip_score": 21.5},
        previous_partition=None, regressions=[], compared=[],
    )  # fmt: skip
    store.put_bytes(doc.model_dump_json().encode(), layout.document_key(layout.METRICS, PARTITION))
    answer = client.get("/v1/loras").json()
    assert answer["live"] == published.first.version
    assert [v["version"] for v in answer["versions"]] == [
        published.second.version, published.first.version,
    ]  # fmt: skip
    second, first = answer["versions"]
    assert first["live"] and not second["live"]
    assert first["sha256"] == published.first.metadata["sha256"] and first["date"] == PARTITION
    assert first["model_profile"] == "tiny" and first["metrics"] is None
    assert second["metrics"]["metrics"] == {"clip_score": 21.5}


def test_generate_png_uses_the_live_version_and_reports_parameters(published, client):
    response = client.post("/v1/generate", json=BODY)
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    headers = response.headers
    assert headers["x-lora-version"] == published.first.version
    assert headers["x-lora-sha256"] == published.first.metadata["sha256"]
    assert (headers["x-seed"], headers["x-steps"], headers["x-lora-scale"]) == ("0", "2", "1.0")
    assert headers["x-queue-position"] == "0" and float(headers["x-generation-ms"]) > 0
    assert png(response.content).shape == (64, 64, 3)


def test_generate_json_matches_the_png_and_scale_zero_is_the_base_model(published, client):
    as_png = client.post("/v1/generate", json={**BODY, "version": published.second.version})
    answer = client.post(
        "/v1/generate", json={**BODY, "version": published.second.version, "format": "json"}
    ).json()
    assert answer["parameters"]["sha256"] == published.second.metadata["sha256"]
    assert (
        answer["parameters"]["scales"] == [1.0] and answer["parameters"]["prompt"] == BODY["prompt"]
    )
    image = png(base64.b64decode(answer["images_png_base64"][0]))
    assert np.array_equal(image, png(as_png.content))
    zero = client.post("/v1/generate", json={**BODY, "lora_scale": 0, "format": "json"}).json()
    pipe = load_pipeline(published.model.path)
    pipe.set_progress_bar_config(disable=True)
    base = pipe(
        BODY["prompt"], num_inference_steps=2, guidance_scale=7.5, width=64, height=64,
        generator=torch.Generator("cpu").manual_seed(0),
    ).images[0]  # fmt: skip
    assert np.array_equal(png(base64.b64decode(zero["images_png_base64"][0])), np.asarray(base))
    assert not np.array_equal(image, np.asarray(base))


def test_pipeline_is_loaded_once_across_requests_and_versions(published, client):
    for version in (published.first.version, published.second.version, published.first.version):
        assert client.post("/v1/generate", json={**BODY, "version": version}).status_code == 200
    engine = client.app.state.generation.engine
    assert engine.loads == 1 and engine.adapter_loads == 2


def test_strip_at_0_05_1_side_by_side(client):
    strip = client.post("/v1/generate/strip", json=BODY)
    assert strip.status_code == 200 and strip.headers["x-lora-scale"] == "0.0,0.5,1.0"
    pixels = png(strip.content)
    assert pixels.shape == (64, 192, 3)
    zero = png(client.post("/v1/generate", json={**BODY, "lora_scale": 0}).content)
    assert np.array_equal(pixels[:, :64], zero)
    answer = client.post("/v1/generate/strip", json={**BODY, "format": "json"}).json()
    assert len(answer["images_png_base64"]) == 3 and len(answer["generation_ms"]) == 3


def test_seed_is_drawn_and_reported_when_absent(client):
    body = {k: v for k, v in BODY.items() if k != "seed"}
    response = client.post("/v1/generate", json=body)
    seed = int(response.headers["x-seed"])
    again = client.post("/v1/generate", json={**body, "seed": seed})
    assert np.array_equal(png(response.content), png(again.content))


def test_token_is_required_when_configured(client, monkeypatch):
    monkeypatch.setenv("STYLE_PIPELINE_API_TOKEN", TOKEN)
    refused = client.post("/v1/generate", json=BODY)
    assert refused.status_code == 401 and TOKEN not in refused.text
    wrong = client.post("/v1/generate/strip", json=BODY, headers={"Authorization": "Bearer no"})
    assert wrong.status_code == 401
    ok = client.post("/v1/generate", json=BODY, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200
    page = client.get("/generate")
    assert page.status_code == 200 and TOKEN not in page.text


def test_unknown_version_is_404(client):
    response = client.post("/v1/generate", json={**BODY, "version": "2031-01-01.001"})
    assert response.status_code == 404 and response.json()["code"] == "unknown_version"


@pytest.mark.parametrize("live", [False, True], ids=["nothing_published", "none_live"])
def test_no_lora_yet_is_409(published, tmp_path, monkeypatch, live):
    monkeypatch.delenv("STYLE_PIPELINE_API_TOKEN", raising=False)
    store = copy_store(published, tmp_path, None) if live else Store(tmp_path / "empty")
    response = make_client(store, tmp_path).post("/v1/generate", json=BODY)
    assert response.status_code == 409 and response.json()["code"] == "no_lora"
    assert ("promote" if live else "no LoRA version is published") in response.json()["detail"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"prompt": "x" * 81}, "prompt"),
        ({"negative_prompt": "x" * 81}, "negative_prompt"),
        ({"prompt": ""}, "prompt"),
        ({"steps": 5}, "steps"),
        ({"steps": 0}, "steps"),
        ({"width": 100}, "width"),
        ({"height": 136}, "height"),
        ({"lora_scale": 1.55}, "lora_scale"),
        ({"lora_scale": -0.1}, "lora_scale"),
        ({"version": "../../etc/passwd"}, "version"),
        ({"version": "/tmp/x.safetensors"}, "version"),
        ({"format": "gif"}, "format"),
        ({"ticket": "a b"}, "ticket"),
        ({"model_path": "/tmp"}, "model_path"),
    ],
)
def test_bad_input_is_422_naming_the_field(client, change, field):
    response = client.post("/v1/generate", json={**BODY, **change})
    assert response.status_code == 422 and field in response.text


def test_strip_scales_out_of_range_is_422(client):
    response = client.post("/v1/generate/strip", json={**BODY, "scales": [0, 2]})
    assert response.status_code == 422 and "scales" in response.text


def test_body_over_the_cap_is_413(client):
    response = client.post("/v1/generate", json={**BODY, "prompt": "x" * 5000})
    assert response.status_code == 413


def test_full_queue_is_429_and_clears(published, tmp_path, monkeypatch):
    monkeypatch.delenv("STYLE_PIPELINE_API_TOKEN", raising=False)
    store = copy_store(published, tmp_path, published.first.version)
    client = make_client(store, tmp_path, max_queue=1)
    assert client.get("/v1/queue").json() == {"running": False, "waiting": 0, "max_waiting": 1}
    queue = client.app.state.generation.queue
    release = threading.Event()
    holders = [
        threading.Thread(target=queue.run, args=("hold", lambda: release.wait(10))),
        threading.Thread(target=queue.run, args=("next", lambda: None)),
    ]
    holders[0].start()
    _wait_for(lambda: queue.position("hold") == 0)
    holders[1].start()
    _wait_for(lambda: queue.position("next") == 1)
    assert client.get("/v1/queue?ticket=next").json()["position"] == 1
    refused = client.post("/v1/generate", json=BODY)
    assert refused.status_code == 429 and refused.json()["code"] == "queue_full"
    assert refused.headers["retry-after"] == "5"
    release.set()
    for thread in holders:
        thread.join(10)
    assert client.post("/v1/generate", json=BODY).status_code == 200


def test_page_has_the_slider_versions_and_script(published, client):
    page = client.get("/generate")
    assert page.status_code == 200
    text = page.text
    assert 'id="lora_scale" type="range" min="0" max="1.5" step="0.05"' in text
    assert f'value="{published.first.version}" selected' in text
    assert 'maxlength="80"' in text and 'id="token" type="password"' in text
    script = client.get("/generate/static/generate.js")
    assert script.status_code == 200 and "sessionStorage" in script.text


def _wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)
