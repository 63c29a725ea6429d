"""Credentials never reach errors, tables, metadata or the instance (issue 17, item 4).

A real OpenAI-compatible server on 127.0.0.1 answers 401 with a body echoing the bearer
key (as many gateways do), or 200 with a caption that echoes it; the key must appear in
no raised error, captions table, asset metadata, log line or instance file. The caption
cache part covers item 6: an unreadable entry is a logged miss and is rewritten.
"""

from __future__ import annotations

import io
import json
import logging
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from PIL import Image
from pydantic import ValidationError

from style_pipeline.captioning.remote import CaptionEndpointError, OpenAICompatibleCaptioner
from style_pipeline.contracts.captioning import CaptionConfig, EndpointConfig
from style_pipeline.settings import load_settings
from style_pipeline.stages.captions import caption_partition
from style_pipeline.stages.ontology import snapshot_ontology
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline_tests.conftest import materialize_day

DAY = "2026-11-21"
KEY_ENV = "SP_SECRET_TEST_KEY"


class EndpointServer(ThreadingHTTPServer):
    """``POST /v1/chat/completions``: 401 echoing the Authorization header, or a caption."""

    mode = "refuse"  # "refuse": 401 with the key in the body; "echo": 200, key in the caption
    authorizations: list[str]

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.authorizations = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(BaseHTTPRequestHandler):
    server: EndpointServer

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        auth = self.headers.get("Authorization", "")
        self.server.authorizations.append(auth)
        if self.server.mode == "refuse":
            status, payload = 401, {"error": {"message": f"invalid api key: {auth}"}}
        else:
            caption = f"a woman on a street (you sent {auth})"
            status, payload = 200, {"choices": [{"message": {"content": caption}}]}
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:  # keep the test output quiet
        pass


@pytest.fixture
def server() -> Iterator[EndpointServer]:
    httpd = EndpointServer()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture
def key(monkeypatch) -> str:
    value = "sk-live-" + secrets.token_hex(16)
    monkeypatch.setenv(KEY_ENV, value)
    return value


def _endpoint(server: EndpointServer) -> EndpointConfig:
    return EndpointConfig(
        base_url=server.base_url, model="vlm-test", api_key_env=KEY_ENV, max_attempts=1
    )


def _image(seed: int) -> Image.Image:
    return Image.new("RGB", (64, 48), (seed * 40 % 256, 90, 200 - seed * 30))


def test_a_401_echoing_the_key_raises_an_error_without_it(server, key):
    captioner = OpenAICompatibleCaptioner(_endpoint(server))
    with pytest.raises(CaptionEndpointError) as raised:
        captioner.caption([_image(0)], "describe")
    assert server.authorizations == [f"Bearer {key}"]  # the key was really sent
    message = str(raised.value)
    assert "HTTP 401" in message and "invalid api key: Bearer ***" in message
    assert key not in message and key[8:] not in message


def test_an_answer_echoing_the_key_is_redacted_before_it_becomes_a_caption(server, key):
    server.mode = "echo"
    [result] = OpenAICompatibleCaptioner(_endpoint(server)).caption([_image(0)], "describe")
    assert result.caption == "a woman on a street (you sent Bearer ***)"


@pytest.mark.parametrize(
    "url",
    [
        "http://bob:hunter2@127.0.0.1:8000/v1",
        "https://bob@127.0.0.1/v1",
        "http://:hunter2@127.0.0.1/v1?x=1",
    ],
)
def test_a_url_with_user_info_is_refused_without_echoing_it(url):
    with pytest.raises(ValidationError) as raised:
        EndpointConfig(base_url=url, model="m")
    [error] = raised.value.errors()
    assert error["type"] == "credentials_in_url"
    assert "api_key_env" in str(raised.value)
    assert "hunter2" not in str(raised.value) and "bob" not in str(raised.value)


def test_settings_refuse_an_endpoint_url_with_user_info(monkeypatch):
    monkeypatch.setenv(
        "STYLE_PIPELINE_CAPTIONING__CAPTION__ENDPOINT__BASE_URL", "http://bob:hunter2@127.0.0.1/v1"
    )
    with pytest.raises(ValidationError, match="credentials_in_url") as raised:
        load_settings()
    assert "hunter2" not in str(raised.value)


def _write_day(store: Store, n: int = 2) -> pl.DataFrame:
    """A day's curated_frames table, frame JPEGs and ontology document in ``store``."""
    rows = []
    for i in range(n):
        frame_id = f"f{i}"
        buffer = io.BytesIO()
        _image(i).save(buffer, format="JPEG")
        path = store.put_bytes(buffer.getvalue(), layout.frame_key(DAY, frame_id))
        labels = [{"category": "subject", "term": "person", "score": 0.3}]
        rows.append({"frame_id": frame_id, "path": path, "keep": True, "labels": labels})
    label = pl.Struct({"category": pl.String(), "term": pl.String(), "score": pl.Float64()})
    schema = {"frame_id": pl.String, "path": pl.String, "keep": pl.Boolean}
    curated = pl.DataFrame(rows, schema={**schema, "labels": pl.List(label)})
    buffer = io.BytesIO()
    curated.write_parquet(buffer)
    store.put_bytes(buffer.getvalue(), layout.table_key("curated_frames", DAY))
    snapshot, _ = snapshot_ontology(load_settings().curation)
    document = json.dumps(snapshot.model_dump(mode="json")).encode()
    store.put_bytes(document, layout.document_key("ontology", DAY))
    return curated


def _files_holding(root: Path, needle: str) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


@pytest.mark.parametrize("mode", ["refuse", "echo"])
def test_captions_asset_keeps_the_key_out_of_the_instance(server, key, mode, monkeypatch, capfd):
    server.mode = mode
    for name, value in {
        "BACKEND": "openai",
        "ENDPOINT__BASE_URL": server.base_url,
        "ENDPOINT__MODEL": "vlm-test",
        "ENDPOINT__API_KEY_ENV": KEY_ENV,
        "ENDPOINT__MAX_ATTEMPTS": "1",
    }.items():
        monkeypatch.setenv(f"STYLE_PIPELINE_CAPTIONING__CAPTION__{name}", value)
    settings = load_settings()
    store = Store(settings.storage_root())
    _write_day(store)
    instance = dg.DagsterInstance.get()  # sqlite and compute logs under the test's DAGSTER_HOME
    result = materialize_day(DAY, "captions", instance=instance, raise_on_error=False)
    assert server.authorizations and all(a == f"Bearer {key}" for a in server.authorizations)

    records = instance.get_records_for_run(result.run_id).records
    texts = [json.dumps(r.event_log_entry.to_json()) for r in records]
    if mode == "refuse":
        assert not result.success
        [failure] = [e for e in result.all_events if e.is_step_failure]
        message = failure.step_failure_data.error.message
        assert "HTTP 401" in message and "Bearer ***" in message
    else:
        assert result.success
        table = pl.read_parquet(io.BytesIO(store.read_bytes(layout.table_key("captions", DAY))))
        assert table["raw"].to_list() == ["a woman on a street (you sent Bearer ***)"] * 2
        [materialization] = result.get_asset_materialization_events()
        metadata = materialization.materialization.metadata
        assert metadata["caption_backend"].value == "openai"
        assert key not in json.dumps({k: str(v.value) for k, v in metadata.items()})
        assert key not in str(table.to_dicts())
    assert any("bearer ***" in t.lower() for t in texts)  # the redacted text was stored
    assert not any(key in t for t in texts)
    home = Path(instance.root_directory)
    assert list(home.rglob("*.db")) and _files_holding(home, key) == []
    assert _files_holding(Path(settings.storage_root()), key) == []
    out, err = capfd.readouterr()
    assert key not in out and key not in err


def test_unreadable_caption_cache_entries_are_logged_misses_and_rewritten(
    server, key, tmp_path, caplog
):
    server.mode = "echo"
    store = Store(tmp_path / "cache_store")
    images = [_image(0), _image(1), _image(2)]
    clean = OpenAICompatibleCaptioner(_endpoint(server), store=store).caption(images, "describe")
    keys = sorted(store.list(layout.CAPTION_CACHE))
    assert len(keys) == 3 and len(server.authorizations) == 3
    whole = store.read_bytes(keys[0])
    store.put_bytes(whole[: len(whole) // 2], keys[0])  # a torn write
    store.put_bytes(b"\x89PNG garbage", keys[1])  # not even text
    caplog.set_level(logging.WARNING, logger="style_pipeline.captioning.remote")

    again = OpenAICompatibleCaptioner(_endpoint(server), store=store)
    results = again.caption(images, "describe")
    assert [r.caption for r in results] == [r.caption for r in clean]
    assert sorted(again.unreadable_cache_keys) == keys[:2] and again.requests_made == 2
    assert [r.cached for r in results].count(True) == 1
    for bad in keys[:2]:
        assert any(bad in r.getMessage() for r in caplog.records)
        assert json.loads(store.read_bytes(bad))["caption"] == clean[0].caption  # rewritten
    third = OpenAICompatibleCaptioner(_endpoint(server), store=store)
    assert all(r.cached for r in third.caption(images, "describe")) and third.requests_made == 0


def test_caption_stage_reports_rewritten_cache_entries(server, key, tmp_path):
    server.mode = "echo"
    store = Store(tmp_path / "stage_store")
    curated = _write_day(store)
    config = CaptionConfig(backend="openai", endpoint=_endpoint(server))
    ontology = snapshot_ontology(load_settings().curation)[0].ontology
    first, facts = caption_partition(curated, ontology, store, config)
    assert facts["cache_rewritten"] == 0
    [entry, *_] = sorted(store.list(layout.CAPTION_CACHE))
    store.put_bytes(b"{", entry)
    again, facts = caption_partition(curated, ontology, store, config)
    assert facts["cache_rewritten"] == 1 and facts["cache_rewritten_keys"] == entry
    assert again.drop("cached").equals(first.drop("cached"))
    assert again["cached"].to_list().count(False) == 1
