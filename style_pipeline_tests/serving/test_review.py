"""Review page, day JSON and thumbnails over a synthetic day; every error is JSON with a code."""

from __future__ import annotations

import io

import polars as pl
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from style_pipeline.serving.app import create_app
from style_pipeline.serving.review import ReviewData
from style_pipeline.serving.thumbnails import ThumbnailCache
from style_pipeline.settings import load_settings
from style_pipeline.storage import layout
from style_pipeline_tests.serving.conftest import DAY
from style_pipeline_tests.serving.synthetic_day import write_day


def test_page_shows_every_frame_with_decision_and_why_card(synthetic_app):
    client = TestClient(synthetic_app)
    html = client.get(f"/review/{DAY}").text
    ids = synthetic_app.state.day_ids
    assert all(f'id="f-{fid}"' in html for fid in ids)
    day = client.get(f"/v1/days/{DAY}").json()
    assert [f["frame_id"] for f in day["frames"]] == ids
    first = day["frames"][0]
    assert first["status"] == "dropped" and first["code"] == "over_budget"  # cluster -1
    kept = next(f for f in day["frames"] if f["status"] == "kept")
    assert kept["caption"].startswith("sty1e") and kept["medoid"] is not None
    assert set(kept["scores"]) >= {"score", "sharpness", "noise_sigma", "outlier_score"}
    assert {lab["category"] for lab in kept["labels"]} == {"subject", "setting", "lighting"}
    dup = next(f for f in day["frames"] if f["duplicate_of"])
    assert dup["near_duplicates"] == [dup["duplicate_of"]]
    assert f'href="#f-{dup["duplicate_of"]}"' in html  # near-duplicate links
    summary = day["summary"]
    assert summary["frames"] == 40 and summary["kept"] + summary["dropped"] == 40
    assert summary["dropped_by_code"] == {
        code: sum(1 for f in day["frames"] if f["status"] == "dropped" and f["code"] == code)
        for code in summary["dropped_by_code"]
    }
    assert summary["clusters"] == 8 and 0 < summary["clusters_covered"] <= 8
    for code in summary["dropped_by_code"]:
        assert f'<option value="{code}">' in html  # reason filter
    assert "sharpness" in html and "medoid" in html and "sty1e, a photo" in html


def test_missing_tables_are_not_materialized_not_errors(roots):
    store, overrides = roots
    write_day(store, DAY, 6, skip=("clusters", "captions", "curated_frames"))
    client = TestClient(create_app(load_settings(), store, overrides_store=overrides))
    response = client.get(f"/review/{DAY}")
    assert response.status_code == 200
    day = client.get(f"/v1/days/{DAY}").json()
    assert day["tables"]["clusters"] == "not materialized"
    assert day["tables"]["curated_frames"] == "not materialized"
    assert {f["status"] for f in day["frames"]} == {"undecided"}
    assert response.text.count("not materialized") >= 3


@pytest.mark.parametrize(
    ("url", "status", "code"),
    [
        ("/review/2026-11-11", 404, "unknown_date"),
        ("/v1/days/2026-11-11", 404, "unknown_date"),
        ("/review/2026-13-40", 422, "bad_date"),
        ("/v1/days/..%2F..%2Fetc", 404, "not_found"),
        ("/v1/days/yesterday", 422, "bad_date"),
        ("/thumb/2026-11-11/abc.jpg", 404, "unknown_date"),
        (f"/thumb/{DAY}/{'0' * 64}.jpg", 404, "unknown_frame"),
        (f"/thumb/{DAY}/{'a' * 300}.jpg", 422, "bad_frame_id"),
        (f"/thumb/{DAY}/..%2F..%2F..%2Fetc%2Fpasswd.jpg", 404, "not_found"),
        (f"/thumb/{DAY}/%2E%2E.jpg", 422, "bad_frame_id"),
        (f"/thumb/{DAY}/frame.png", 404, "not_found"),
    ],
)
def test_bad_dates_and_ids_get_json_errors(synthetic_app, url, status, code):
    response = TestClient(synthetic_app).get(url)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code


def test_thumbnail_is_resized_cached_and_has_an_etag(synthetic_app):
    client = TestClient(synthetic_app)
    synthetic_app.state.thumbs.edge = 48
    fid = synthetic_app.state.day_ids[3]
    response = client.get(f"/thumb/{DAY}/{fid}.jpg")
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(response.content)).size) == 48
    etag = response.headers["etag"]
    assert "max-age" in response.headers["cache-control"]
    again = client.get(f"/thumb/{DAY}/{fid}.jpg", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert len(synthetic_app.state.thumbs) == 1


def test_thumbnail_cache_keeps_the_newest_entries(roots):
    store, _ = roots
    ids = write_day(store, DAY, 5)
    cache = ThumbnailCache(store, 32, entries=2)
    for fid in ids:
        cache.get(layout.frame_key(DAY, fid))
    assert len(cache) == 2
    assert list(cache._items) == [layout.frame_key(DAY, fid) for fid in ids[-2:]]


def test_day_cache_follows_table_versions(roots):
    store, _ = roots
    ids = write_day(store, DAY, 10)
    review = ReviewData(store)
    first = review.day(DAY)
    assert review.day(DAY) is first  # unchanged tables: no re-read
    curated = pl.read_parquet(io.BytesIO(store.read_bytes(layout.table_key("curated_frames", DAY))))
    curated = curated.with_columns(pl.lit(True).alias("keep"), pl.lit("locked_in").alias("code"))
    out = io.BytesIO()
    curated.write_parquet(out)
    store.put_bytes(out.getvalue(), layout.table_key("curated_frames", DAY))
    second = review.day(DAY)
    assert second is not first and second.summary["kept"] == len(ids)


def test_review_index_lists_days(synthetic_app):
    client = TestClient(synthetic_app)
    assert client.get("/v1/days").json() == {"days": [DAY]}
    assert f'href="/review/{DAY}"' in client.get("/review").text
    nav = client.get("/review").text
    assert 'href="/generate"' in nav and "LoRAs" in nav
