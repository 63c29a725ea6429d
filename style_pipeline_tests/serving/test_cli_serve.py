"""``style-pipeline serve``: refuses a public bind without a token, serves on loopback, and
never prints the token."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

from typer.testing import CliRunner

from style_pipeline.cli import app
from style_pipeline_tests.serving.conftest import TOKEN, free_port


def test_public_host_without_token_is_refused(monkeypatch):
    monkeypatch.delenv("STYLE_PIPELINE_API_TOKEN", raising=False)
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "STYLE_PIPELINE_API_TOKEN" in result.output


def test_serve_answers_on_loopback_and_hides_the_token(tmp_path):
    port = free_port()
    env = {**os.environ, "STYLE_PIPELINE_API_TOKEN": TOKEN,
           "STYLE_PIPELINE_STORAGE": str(tmp_path / "storage")}  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "style_pipeline.cli", "serve", "--host", "127.0.0.1",
         "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert r.read() == b'{"status":"ok"}'
                    break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "no server"
                time.sleep(0.3)
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert f"http://127.0.0.1:{port}/review" in output and "required" in output
    assert TOKEN not in output
