"""The app shell: health, request-size cap, bearer token, refusing unsafe binds."""

from __future__ import annotations

import pytest
from fastapi import Depends
from fastapi.testclient import TestClient

from style_pipeline.contracts.serving import ServingSettings
from style_pipeline.serving.app import create_app
from style_pipeline.serving.auth import UnsafeBindError, check_bind, is_loopback, require_token
from style_pipeline.settings import load_settings

TOKEN = "t0ken-for-tests-only"


@pytest.fixture()
def app(tmp_path, monkeypatch):
    monkeypatch.delenv("STYLE_PIPELINE_API_TOKEN", raising=False)
    settings = load_settings(storage=str(tmp_path / "storage"))
    app = create_app(settings)

    @app.post("/echo", dependencies=[Depends(require_token)])
    def echo(payload: dict) -> dict:
        return payload

    return app


def test_healthz(app):
    assert TestClient(app).get("/healthz").json() == {"status": "ok"}


def test_body_over_the_cap_is_413(app):
    client = TestClient(app)
    limit = app.state.serving.max_body_bytes
    assert client.post("/echo", json={"a": "x" * 10}).json() == {"a": "x" * 10}
    response = client.post("/echo", content=b"{" + b" " * limit + b"}")
    assert response.status_code == 413 and "bytes" in response.json()["detail"]


def test_token_is_required_when_configured(app, monkeypatch):
    monkeypatch.setenv("STYLE_PIPELINE_API_TOKEN", TOKEN)
    client = TestClient(app)
    refused = client.post("/echo", json={})
    assert refused.status_code == 401 and TOKEN not in refused.text
    wrong = client.post("/echo", json={}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    ok = client.post("/echo", json={"k": 1}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.json() == {"k": 1}


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("localhost", True), ("::1", True), ("0.0.0.0", False),
     ("192.168.1.5", False), ("example.org", False)],
)  # fmt: skip
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_non_loopback_bind_needs_a_token(monkeypatch):
    monkeypatch.delenv("STYLE_PIPELINE_API_TOKEN", raising=False)
    settings = ServingSettings()
    check_bind(settings, "127.0.0.1")
    with pytest.raises(UnsafeBindError, match="STYLE_PIPELINE_API_TOKEN"):
        check_bind(settings, "0.0.0.0")
    monkeypatch.setenv("STYLE_PIPELINE_API_TOKEN", TOKEN)
    check_bind(settings, "0.0.0.0")
