"""Serving fixtures: a synthetic day in a tmp Store, the app over it, a live uvicorn server
on 127.0.0.1, and a Playwright page driving Debian's chromium (skipped when missing)."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from style_pipeline.serving.app import create_app
from style_pipeline.settings import load_settings
from style_pipeline.storage.store import Store
from style_pipeline_tests.serving.synthetic_day import write_day

DAY = "2026-11-10"
TOKEN = "t0ken-for-tests-only"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture()
def roots(tmp_path, monkeypatch):
    """(storage Store, overrides Store) under tmp, with no API token configured."""
    monkeypatch.delenv("STYLE_PIPELINE_API_TOKEN", raising=False)
    overrides = tmp_path / "overrides"
    overrides.mkdir()
    monkeypatch.setenv("STYLE_PIPELINE_CURATION__OVERRIDES_ROOT", str(overrides))
    return Store(str(tmp_path / "storage")), Store(str(overrides))


@pytest.fixture()
def synthetic_app(roots):
    """The app over a 40-frame synthetic day; ``app.state.day_ids`` lists its frames."""
    store, overrides = roots
    ids = write_day(store, DAY, 40)
    app = create_app(load_settings(), store, overrides_store=overrides)
    app.state.day_ids = ids
    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """uvicorn serving ``app`` on 127.0.0.1 in a thread."""

    def __init__(self, app, port: int | None = None) -> None:
        import uvicorn

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture()
def live_server():
    """Call with an app: a context manager serving it on a free loopback port."""
    return LiveServer


@pytest.fixture()
def page():
    """A Playwright page in headless Debian chromium."""
    if not CHROMIUM.exists() or shutil.which(str(CHROMIUM)) is None:
        pytest.skip(
            "Debian's chromium is not installed (/usr/bin/chromium): apt-get install chromium"
        )
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright ([dev])")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()


class FakeDagsterGraphQL:
    """A real HTTP server on 127.0.0.1 that answers like Dagster's GraphQL endpoint.

    Every document is parsed and validated against Dagster's own schema
    (``dagster_graphql.schema.create_schema``); launches are recorded and answered with a
    backfill id, status queries with the status the test sets (``statuses``).
    """

    def __init__(self) -> None:
        import json
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from dagster_graphql.schema import create_schema
        from graphql import parse, validate

        schema = create_schema().graphql_schema
        self.launches: list[dict] = []
        self.statuses: dict[str, str] = {}
        self.fail_launch: str | None = None
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                document = parse(body["query"])
                errors = validate(schema, document)
                if errors:
                    answer: dict = {"errors": [{"message": str(e)} for e in errors]}
                else:
                    answer = {"data": fake.answer(body["query"], body.get("variables") or {})}
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/graphql"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, query: str, variables: dict) -> dict:
        if "launchPartitionBackfill" in query:
            if self.fail_launch:
                return {"launchPartitionBackfill": {"__typename": "PythonError",
                                                    "message": self.fail_launch}}  # fmt: skip
            backfill_id = f"bf{len(self.launches) + 1:04d}"
            self.launches.append(variables["params"])
            self.statuses.setdefault(backfill_id, "REQUESTED")
            return {"launchPartitionBackfill": {"__typename": "LaunchBackfillSuccess",
                                                "backfillId": backfill_id,
                                                "launchedRunIds": []}}  # fmt: skip
        backfill_id = variables["id"]
        if backfill_id not in self.statuses:
            message = f"no backfill {backfill_id}"
            missing = {"__typename": "BackfillNotFoundError", "message": message}
            return {"partitionBackfillOrError": missing}
        return {"partitionBackfillOrError": {"__typename": "PartitionBackfill",
                                             "id": backfill_id,
                                             "status": self.statuses[backfill_id]}}  # fmt: skip

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def dagster_graphql():
    fake = FakeDagsterGraphQL()
    yield fake
    fake.close()


@pytest.fixture()
def graphql_app(roots, dagster_graphql, monkeypatch):
    """The app over a synthetic day, launching re-runs through the GraphQL server."""
    monkeypatch.setenv("STYLE_PIPELINE_SERVING__DAGSTER_GRAPHQL_URL", dagster_graphql.url)
    dagster_graphql.launches.clear()
    dagster_graphql.fail_launch = None
    store, overrides = roots
    ids = write_day(store, DAY, 12)
    app = create_app(load_settings(), store, overrides_store=overrides)
    app.state.day_ids = ids
    return app
