"""The /loras page and its promote / rollback actions (the web side of `style-pipeline lora`)."""

from __future__ import annotations

import shutil

import pytest
from fastapi.testclient import TestClient

from style_pipeline.serving.app import create_app
from style_pipeline.settings import load_settings
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline.training.promotion import read_live
from style_pipeline_tests.serving.lora_fixtures import publish_two_versions

TOKEN = "t0ken-for-tests-only"


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    return publish_two_versions(tmp_path_factory.mktemp("published"))


@pytest.fixture()
def store(published, tmp_path) -> Store:
    source = published.store.local_path(layout.LORA_WEIGHTS)
    shutil.copytree(source, tmp_path / "s" / layout.LORA_WEIGHTS)
    return Store(tmp_path / "s")


@pytest.fixture()
def client(store, tmp_path, monkeypatch) -> TestClient:
    monkeypatch.delenv("STYLE_PIPELINE_API_TOKEN", raising=False)
    return TestClient(create_app(load_settings(storage=str(tmp_path / "unused")), store))


def test_page_lists_versions_and_says_none_is_live(client, published):
    page = client.get("/loras")
    assert page.status_code == 200
    for version in (published.first.version, published.second.version):
        assert f'data-version="{version}"' in page.text
    assert "none yet" in page.text and "No promotion yet." in page.text
    assert 'href="/loras"' in page.text  # the nav now points at the page, not the JSON


def test_promote_then_rollback_shows_live_and_history(client, store, published):
    first, second = published.first.version, published.second.version
    for version in (first, second):
        answer = client.post("/v1/loras/promote", json={"version": version, "by": "ana"})
        assert answer.status_code == 200 and answer.json()["version"] == version
    back = client.post("/v1/loras/rollback", json={"reason": "washed out skin"})
    assert back.status_code == 200 and back.json()["version"] == first
    live = read_live(store)
    assert live.version == first
    assert [(e.version, e.action, e.by) for e in live.history][:2] == [
        (first, "promote", "ana"),
        (second, "promote", "ana"),
    ]
    assert live.history[-1].action == "rollback" and live.history[-1].reason == "washed out skin"
    assert live.history[-1].by.startswith("loras page (")
    page = client.get("/loras").text
    assert f'<strong id="live">{first}</strong>' in page
    assert page.count("<li>") == 3 and "washed out skin" in page


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"version": "2099-01-01.001"}, 404, "unknown_version"),
        ({"version": "../../etc/passwd"}, 422, "invalid_request"),
        ({"version": "2026-01-01.001", "extra": 1}, 422, "invalid_request"),
        ({}, 422, "version_required"),
    ],
)
def test_promote_refusals_are_json_with_a_code(client, body, status, code):
    answer = client.post("/v1/loras/promote", json=body)
    assert answer.status_code == status and answer.json()["code"] == code


def test_promoting_the_live_version_again_is_a_conflict(client, published):
    version = published.first.version
    assert client.post("/v1/loras/promote", json={"version": version}).status_code == 200
    again = client.post("/v1/loras/promote", json={"version": version})
    assert again.status_code == 409 and again.json()["code"] == "already_live"


def test_rollback_without_history_is_a_conflict(client):
    answer = client.post("/v1/loras/rollback", json={})
    assert answer.status_code == 409 and answer.json()["code"] == "no_previous_live"


def test_actions_need_the_token_when_one_is_set(client, published, monkeypatch):
    monkeypatch.setenv("STYLE_PIPELINE_API_TOKEN", TOKEN)
    body = {"version": published.first.version}
    refused = client.post("/v1/loras/promote", json=body)
    assert refused.status_code == 401 and TOKEN not in refused.text
    assert TOKEN not in client.get("/loras").text  # the page works and never holds it
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert client.post("/v1/loras/promote", json=body, headers=headers).status_code == 200
