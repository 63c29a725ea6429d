"""Override -> re-run -> decision changed, on generated media with tiny models: ingest and
curation materialized for real, then the app re-runs ``curated_frames+`` in-process, and a
browser clicks exclude on a kept frame and sees it dropped after the run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from style_pipeline.defs.run import materialize_partition
from style_pipeline.demo.samples import make_photos
from style_pipeline.serving.app import create_app
from style_pipeline.settings import load_settings
from style_pipeline.storage.store import Store
from style_pipeline_tests.serving.conftest import DAY

pytestmark = pytest.mark.slow
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "images" / "review.png"


@pytest.fixture()
def curated_day(tiny_models, instance, tmp_path, monkeypatch):
    """A day of 6 generated photos through ingest and curation (budget 3)."""
    monkeypatch.delenv("STYLE_PIPELINE_API_TOKEN", raising=False)
    monkeypatch.setenv("STYLE_PIPELINE_CURATION__SELECTION__BUDGET", "3")
    # the tiny LoRA downstream may be promoted: else its blocking check fails the run
    monkeypatch.setenv("STYLE_PIPELINE_TRAINING__ALLOW_TINY_PROMOTION", "true")
    monkeypatch.setenv("STYLE_PIPELINE_CURATION__OVERRIDES_ROOT", str(tmp_path / "overrides"))
    settings = load_settings()
    make_photos(settings.drop_path() / DAY, 6, seed=1, size=(640, 480))
    summary = materialize_partition(DAY, "group:ingest or group:curation", instance)
    assert summary.success, summary.failed_steps
    app = create_app(settings, Store(settings.storage_root()), instance=instance)
    return app


def _kept(client: TestClient) -> str:
    frames = client.get(f"/v1/days/{DAY}").json()["frames"]
    return next(f["frame_id"] for f in frames if f["status"] == "kept")


def test_exclude_reruns_curation_and_drops_the_frame(curated_day):
    client = TestClient(curated_day)
    fid = _kept(client)
    response = client.post(f"/v1/days/{DAY}/overrides", json={"frame_id": fid, "action": "exclude"})
    assert response.status_code == 200, response.text
    run = response.json()["run"]
    assert run["backend"] == "in_process" and run["selection"] == "key:curated_frames+"
    curated_day.state.runs.wait(run["id"], timeout=600)
    done = client.get(f"/v1/runs/{run['id']}").json()
    assert done["status"] == "SUCCESS", done
    assert "curated_frames" in done["materialized"] and "captions" in done["materialized"]
    frame = next(f for f in client.get(f"/v1/days/{DAY}").json()["frames"] if f["frame_id"] == fid)
    assert frame["status"] == "dropped" and frame["code"] == "excluded"


def test_browser_exclude_then_see_it_dropped(curated_day, live_server, page):
    with live_server(curated_day) as server:
        page.goto(f"{server.url}/review/{DAY}")
        fid = _kept(TestClient(curated_day))
        card = page.locator(f"#f-{fid}")
        assert card.get_attribute("data-status") == "kept"
        card.locator("button[data-action=exclude]").click()
        page.wait_for_selector("#run-status[data-refreshed='1']", timeout=600_000)
        assert card.get_attribute("data-status") == "dropped"
        assert card.locator(".code").inner_text() == "excluded"
        assert "SUCCESS" in page.locator("#run-status").inner_text()
        page.select_option("#f-status", "dropped")
        assert card.is_visible()
        page.select_option("#f-status", "")
        card.locator("details.why summary").click()
        # the why-card was re-rendered too: a dropped frame has no role any more
        why = card.locator("details.why").inner_text()
        assert "role\tnone" in why or "role\nnone" in why or "role none" in why, why
        # STYLE_PIPELINE_SAVE_SCREENSHOTS=1 refreshes the README's picture; CI leaves it alone
        shot = SCREENSHOT if os.environ.get("STYLE_PIPELINE_SAVE_SCREENSHOTS") == "1" else None
        png = page.screenshot(path=str(shot) if shot else None, full_page=False)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
