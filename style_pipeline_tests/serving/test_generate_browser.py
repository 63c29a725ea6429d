"""The /generate page in Debian's chromium (Playwright): generate, move the slider, get a new
image, make the strip. The server is real uvicorn on a loopback port; the LoRAs are tiny.

Set ``STYLE_PIPELINE_SAVE_SCREENSHOTS=1`` to refresh ``docs/images/generate.png``.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from style_pipeline.serving.app import create_app
from style_pipeline.settings import load_settings
from style_pipeline_tests.serving.lora_fixtures import publish_two_versions
from style_pipeline_tests.serving.test_generate import copy_store

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "images" / "generate.png"


@pytest.fixture()
def base_url(tmp_path_factory, tmp_path, monkeypatch):
    """The app under uvicorn on 127.0.0.1 (a free port), stopped after the test."""
    import uvicorn

    monkeypatch.delenv("STYLE_PIPELINE_API_TOKEN", raising=False)
    published = publish_two_versions(tmp_path_factory.mktemp("published"))
    store = copy_store(published, tmp_path, published.first.version)
    settings = load_settings(storage=str(tmp_path / "unused"))
    app = create_app(settings, store)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_move_the_slider_and_get_a_new_image(base_url):
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        page.goto(f"{base_url}/generate")
        page.fill("#steps", "2")
        page.fill("#width", "64")
        page.fill("#height", "64")
        page.click("#run")
        caption = page.locator("#image-caption")
        playwright.expect(caption).to_contain_text("scale 1.0", timeout=30_000)
        first_src = page.get_attribute("#image", "src")
        slider = page.locator("#lora_scale")
        box = slider.bounding_box()
        assert box is not None
        slider.click(position={"x": 2, "y": box["height"] / 2})  # the far left: scale 0
        playwright.expect(page.locator("#lora_scale_value")).to_have_text("0.00")
        playwright.expect(caption).to_contain_text("scale 0.0", timeout=30_000)
        assert page.get_attribute("#image", "src") != first_src
        page.click("#strip")
        strip_caption = page.locator("#strip-caption")
        playwright.expect(strip_caption).to_contain_text("0.0,0.5,1.0", timeout=30_000)
        width = page.evaluate("document.getElementById('strip-image').naturalWidth")
        assert width == 3 * 64
        assert "done" in page.locator("#status").inner_text()
        if os.environ.get("STYLE_PIPELINE_SAVE_SCREENSHOTS") == "1":
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        browser.close()
