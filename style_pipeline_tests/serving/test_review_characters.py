"""Faces and characters on the review page: boxes with names over the thumbnails, counts per
character, a character filter; in the day JSON, in the HTML, and drawn by Debian's chromium.

Set ``STYLE_PIPELINE_SAVE_SCREENSHOTS=1`` to refresh ``docs/images/review_characters.png``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from style_pipeline.contracts.characters import CharacterRecord
from style_pipeline.serving.app import create_app
from style_pipeline.settings import load_settings
from style_pipeline.storage.tables import records_to_frame
from style_pipeline_tests.serving.character_day import SIZE, write_character_day, write_characters
from style_pipeline_tests.serving.conftest import DAY
from style_pipeline_tests.serving.synthetic_day import write_day

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "images" / "review_characters.png"


@pytest.fixture()
def character_app(roots):
    store, overrides = roots
    app = create_app(load_settings(), store, overrides_store=overrides)
    app.state.shown = write_character_day(store, DAY)
    return app


def _faces(fid: str, *labels: str | None) -> list[CharacterRecord]:
    return [
        CharacterRecord(
            frame_id=fid, face_index=k, label=label,
            matched=bool(label) and not label.startswith("unknown_"),
            confidence=0.5 if label else 0.0, x0=10 + 20 * k, y0=2, x1=26 + 20 * k, y1=20,
        )
        for k, label in enumerate(labels)
    ]  # fmt: skip


def test_day_json_has_faces_labels_and_counts(roots):
    store, overrides = roots
    ids = write_day(store, DAY, 10)  # 96 x 64 frames
    rows = [*_faces(ids[0], "ada", "unknown_10", None), *_faces(ids[3], "unknown_2", "ada")]
    edge = _faces(ids[4], "ada")[0].model_copy(update={"x0": -8, "y0": 50, "x1": 20, "y1": 80})
    rows.append(edge)  # past the frame's left and bottom edges: drawn clipped to the frame
    write_characters(store, DAY, records_to_frame(rows, CharacterRecord))
    client = TestClient(create_app(load_settings(), store, overrides_store=overrides))
    day = client.get(f"/v1/days/{DAY}").json()
    assert day["tables"]["characters"] == "ok"
    first, fourth = day["frames"][0], day["frames"][3]
    assert first["characters"] == ["ada", "unknown_10"] and fourth["characters"] == [
        "ada", "unknown_2"
    ]  # fmt: skip
    assert [f["label"] for f in first["faces"]] == ["ada", "unknown_10", None]
    assert first["faces"][0] == {"face_index": 0, "label": "ada", "matched": True,
                                 "confidence": 0.5, "box": [10, 2, 26, 20]}  # fmt: skip
    assert day["frames"][1]["faces"] == [] and day["frames"][1]["characters"] == []
    assert "face_boxes" not in first and "characters_attr" not in first  # page only
    summary = day["summary"]
    assert day["frames"][4]["faces"][0]["box"] == [-8, 50, 20, 80]  # as stored
    assert list(summary["characters"]) == ["ada", "unknown_2", "unknown_10"]
    kept = {f["frame_id"] for f in day["frames"] if f["status"] == "kept"}
    assert summary["characters"]["ada"] == {
        "frames": 3, "kept": len(kept & {ids[0], ids[3], ids[4]}), "matched": True
    }  # fmt: skip
    assert summary["faces"] == {"faces": 6, "labelled": 5, "frames_with_faces": 3}
    html = client.get(f"/review/{DAY}").text
    card = html[html.index(f'id="f-{ids[0]}"') :]
    card = card[: card.index("</article>")]
    assert 'data-characters="ada|unknown_10"' in card
    # boxes in % of the 96 x 64 frame; a face at the top edge gets its name inside
    assert (
        '<span class="face matched top" style="left:10.42%;top:3.12%;width:16.67%;'
        'height:28.12%" title="ada (confidence 0.50)"><span class="name">ada</span>'
    ) in card
    assert '<span class="face unknown top"' in card and ">unknown_10</span>" in card
    assert '<span class="face unlabelled top"' in card and '<span class="name">?</span>' in card
    assert '<option value="ada">ada (3)</option>' in html
    assert 'style="left:0.00%;top:78.12%;width:20.83%;height:21.88%"' in html
    assert '<tr data-character="unknown_2" class="unknown">' in html


def test_without_a_characters_table_nothing_is_drawn(synthetic_app):
    client = TestClient(synthetic_app)
    day = client.get(f"/v1/days/{DAY}").json()
    assert day["tables"]["characters"] == "not materialized"
    assert day["frames"][0]["faces"] is None and day["summary"]["characters"] == {}
    html = client.get(f"/review/{DAY}").text
    assert 'class="face ' not in html and 'id="f-character" disabled' in html
    assert '<dt>characters</dt><dd><span class="muted">not materialized</span>' in html


def test_a_characters_table_without_boxes_is_reported_not_fatal(roots):
    store, overrides = roots
    ids = write_day(store, DAY, 10)
    rows = records_to_frame(_faces(ids[0], "ada"), CharacterRecord).drop("x0", "y1")
    write_characters(store, DAY, rows)
    client = TestClient(create_app(load_settings(), store, overrides_store=overrides))
    assert client.get(f"/review/{DAY}").status_code == 200
    day = client.get(f"/v1/days/{DAY}").json()
    assert day["tables"]["characters"] == "invalid: no column(s) x0, y1"
    assert day["frames"][0]["faces"] is None


def test_browser_draws_boxes_and_names_over_the_thumbnails(character_app, live_server, page):
    shown = character_app.state.shown
    with live_server(character_app) as server:
        page.goto(f"{server.url}/review/{DAY}")
        page.wait_for_function(
            "[...document.querySelectorAll('#grid img')].every(i => i.complete && i.naturalWidth)"
        )
        eileen = page.locator(f"#f-{shown['eileen'][0]} .face")
        assert eileen.count() == 1 and eileen.is_visible()
        assert eileen.locator(".name").inner_text() == "eileen"
        # the box sits on the face: its place in the rendered thumbnail is the box's place
        # in the frame (dlib's detection, 131..199 x 57..125 of 384 x 256)
        img = page.locator(f"#f-{shown['eileen'][0]} img").bounding_box()
        box = eileen.bounding_box()
        assert img is not None and box is not None
        scale = img["width"] / SIZE[0]
        assert abs(img["height"] / SIZE[1] - scale) < 0.01
        assert abs(box["x"] - (img["x"] + 131 * scale)) <= 1.5
        assert abs(box["y"] - (img["y"] + 57 * scale)) <= 1.5
        assert abs(box["width"] - 68 * scale) <= 1.5 and abs(box["height"] - 68 * scale) <= 1.5
        border = eileen.evaluate("e => getComputedStyle(e).borderTopStyle")
        assert border == "solid"
        grace = page.locator(f"#f-{shown['unknown_0'][0]} .face")
        assert grace.locator(".name").inner_text() == "unknown_0"
        assert grace.evaluate("e => getComputedStyle(e).borderTopStyle") == "dashed"
        assert page.locator("#grid .face").count() == 4
        counts = page.locator("#character-counts").inner_text()
        assert "eileen\t2" in counts and "unknown_0\t2" in counts
        page.select_option("#f-character", "eileen")
        visible = [c for c in page.locator("#grid article.card").all() if c.is_visible()]
        assert sorted(c.get_attribute("data-frame") for c in visible) == sorted(shown["eileen"])
        assert page.locator("#shown").inner_text() == "2 of 8 shown"
        page.select_option("#f-character", "")
        assert page.locator("#shown").inner_text() == "8 of 8 shown"
        page.locator(f"#f-{shown['unknown_0'][0]}").scroll_into_view_if_needed()
        shot = SCREENSHOT if os.environ.get("STYLE_PIPELINE_SAVE_SCREENSHOTS") == "1" else None
        page.evaluate("window.scrollTo(0, document.getElementById('grid').offsetTop - 8)")
        png = page.screenshot(path=str(shot) if shot else None, full_page=False)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
