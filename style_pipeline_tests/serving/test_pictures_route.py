"""/pictures/<key>: report pictures and samples only, with types and revalidation."""

import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from style_pipeline.media.pictures import jpeg_bytes, png_bytes
from style_pipeline.serving.app import create_app
from style_pipeline.settings import load_settings
from style_pipeline.storage import layout

DAY = "2026-11-10"


@pytest.fixture()
def client(roots):
    store, overrides = roots
    store.put_bytes(
        jpeg_bytes(Image.new("RGB", (32, 16), "red")),
        layout.report_key("curated_frames", DAY, "kept.jpg"),
    )
    store.put_bytes(
        png_bytes(Image.new("RGB", (8, 8), "blue")), layout.metrics_sample_key(DAY, "p00-x-s0.png")
    )
    store.put_bytes(b"secret", layout.frame_key(DAY, "abc"))
    store.put_bytes(b"{}", layout.document_key("metrics", DAY))
    return TestClient(create_app(load_settings(), store, overrides_store=overrides))


def test_serves_report_pictures_and_samples(client):
    answer = client.get(f"/pictures/reports/curated_frames/{DAY}/kept.jpg")
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(answer.content)).size == (32, 16)
    sample = client.get(f"/pictures/metrics/{DAY}/samples/p00-x-s0.png")
    assert sample.status_code == 200 and sample.headers["content-type"] == "image/png"


def test_revalidates_by_etag(client):
    url = f"/pictures/reports/curated_frames/{DAY}/kept.jpg"
    etag = client.get(url).headers["etag"]
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""


@pytest.mark.parametrize(
    "key",
    [
        f"frames/{DAY}/abc.jpg",  # stored, but not a picture of a report
        f"metrics/{DAY}.json",
        f"reports/curated_frames/{DAY}/../../frames/{DAY}/abc.jpg",
        f"reports/curated_frames/{DAY}/%2e%2e/x.jpg",
        "reports/curated_frames/not-a-day/kept.jpg",
    ],
)
def test_nothing_else_of_the_store_is_reachable(client, key):
    answer = client.get(f"/pictures/{key}")
    assert answer.status_code == 404
    assert b"secret" not in answer.content


def test_a_missing_picture_is_a_404_with_its_code(client):
    answer = client.get(f"/pictures/reports/lora_weights/{DAY}/loss.png")
    assert answer.status_code == 404 and "picture_missing" in answer.text


def test_metadata_links_use_the_public_url_or_the_listen_address():
    from style_pipeline.contracts.serving import ServingSettings

    assert ServingSettings().base_url() == "http://127.0.0.1:8000"
    assert ServingSettings(host="0.0.0.0", port=9000).base_url() == "http://127.0.0.1:9000"
    public = ServingSettings(host="0.0.0.0", public_url="https://review.example.test/")
    assert public.base_url() == "https://review.example.test"
