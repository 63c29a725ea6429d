"""The Dagster UI as the user's window: pictures in the assets' metadata, end to end.

Two days of generated photos go through the whole graph (tiny models) into a Dagster
instance in DAGSTER_HOME; then a real ``dagster-webserver`` and the web app
(``style-pipeline serve``'s app) run on 127.0.0.1. Through the webserver's GraphQL API the
metadata keys exist and every markdown image link resolves to a picture; in Debian's
chromium, each asset page's markdown dialog shows its picture.

``STYLE_PIPELINE_SAVE_SCREENSHOTS=1`` refreshes docs/images/dagster_*.png.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import httpx
import pytest
from PIL import Image

from style_pipeline.defs.run import materialize_partition
from style_pipeline.demo.samples import make_photos
from style_pipeline.serving.app import create_app
from style_pipeline.settings import load_settings
from style_pipeline_tests.serving.conftest import LiveServer, free_port

pytestmark = pytest.mark.slow
DAYS = ("2026-01-05", "2026-01-06")
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")
DOCS_IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"
QUERY = """
query Metadata($key: AssetKeyInput!, $partitions: [String!]) {
  assetOrError(assetKey: $key) {
    __typename
    ... on Asset {
      assetMaterializations(partitions: $partitions, limit: 1) {
        partition
        metadataEntries {
          label
          __typename
          ... on MarkdownMetadataEntry { mdStr }
          ... on PathMetadataEntry { path }
          ... on JsonMetadataEntry { jsonString }
          ... on IntMetadataEntry { intValue }
          ... on TableMetadataEntry { table { records } }
          ... on TableSchemaMetadataEntry { schema { columns { name type } } }
        }
      }
    }
  }
}
"""


class Webserver:
    """``dagster-webserver`` for the code location, on a free loopback port."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log

    def __enter__(self) -> Webserver:
        command = [
            str(Path(sys.executable).parent / "dagster-webserver"), "-h", "127.0.0.1",
            "-p", str(self.port), "-m", "style_pipeline.definitions",
        ]  # fmt: skip
        self.out = self.log.open("w")
        self.process = subprocess.Popen(command, stdout=self.out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dagster-webserver exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/server_info", timeout=2).status_code == 200:
                    # the instance remembers that its "Join the community" dialog was seen
                    self.graphql("mutation { setNuxSeen }")
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"dagster-webserver did not answer: {self.log.read_text()[-2000:]}")

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.out.close()

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        answer = httpx.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables}, timeout=60
        ).json()
        assert "errors" not in answer, answer["errors"]
        return answer["data"]

    def metadata(self, asset: str, partition: str) -> dict[str, dict]:
        variables = {"key": {"path": [asset]}, "partitions": [partition]}
        data = self.graphql(QUERY, variables)
        (latest,) = data["assetOrError"]["assetMaterializations"]
        assert latest["partition"] == partition
        return {entry["label"]: entry for entry in latest["metadataEntries"]}


def _picture(url: str) -> Image.Image:
    answer = httpx.get(url, timeout=30)
    assert answer.status_code == 200, (url, answer.text[:200])
    assert answer.headers["content-type"] in ("image/jpeg", "image/png")
    image = Image.open(io.BytesIO(answer.content))
    image.load()
    return image


def test_asset_pages_show_pictures(tiny_models, monkeypatch, tmp_path):
    monkeypatch.setenv("STYLE_PIPELINE_CURATION__MIN_CURATED_PER_DAY", "2")
    monkeypatch.setenv("STYLE_PIPELINE_TRAINING__EVALUATION__SEEDS", "[0, 1]")
    monkeypatch.setenv("STYLE_PIPELINE_TRAINING__PRESET", str(_watched_tiny_preset(tmp_path)))
    app_port = free_port()
    monkeypatch.setenv("STYLE_PIPELINE_SERVING__PUBLIC_URL", f"http://127.0.0.1:{app_port}")
    settings = load_settings()
    instance = dg.DagsterInstance.get()  # DAGSTER_HOME: the webserver reads the same one
    for seed, day in enumerate(DAYS):
        make_photos(settings.drop_path() / day, 6, seed=seed + 10, size=(640, 480))
        summary = materialize_partition(day, "*", instance=instance)
        assert summary.success, summary.failed_steps
    day = DAYS[-1]

    with (
        LiveServer(create_app(settings), port=app_port) as server,
        Webserver(tmp_path / "webserver.log") as web,
    ):
        curated = web.metadata("curated_frames", day)
        assert {
            "kept_frames",
            "dropped_frames",
            "dagster/row_count",
            "dagster/column_schema",
        } <= set(curated)
        columns = {c["name"] for c in curated["dagster/column_schema"]["schema"]["columns"]}
        assert {"frame_id", "keep", "code", "reason"} <= columns
        kept_md = curated["kept_frames"]["mdStr"]
        (sheet_url,) = IMAGE.findall(kept_md)
        assert sheet_url.startswith(f"{server.url}/pictures/reports/curated_frames/{day}/")
        assert _picture(sheet_url).width > 160
        # each frame row links its thumbnail, named by a short id
        thumb = re.search(r"\[`([0-9a-f]{8})`\]\((http[^)]+)\)", kept_md)
        assert thumb is not None and thumb.group(2).endswith(".jpg")
        assert _picture(thumb.group(2)).format == "JPEG"
        assert IMAGE.findall(curated["dropped_frames"]["mdStr"])

        lora = web.metadata("lora_weights", day)
        (loss_url,) = IMAGE.findall(lora["loss_curve"]["mdStr"])
        assert _picture(loss_url).format == "PNG"
        steps = [json.loads(r)["step"] for r in lora["loss_series"]["table"]["records"]]
        assert steps[0] == 1 and steps == sorted(steps)
        assert "memory_gb" in json.loads(lora["estimate"]["jsonString"])
        (grid_url,) = IMAGE.findall(lora["validation_grid"]["mdStr"])
        assert _picture(grid_url).format == "PNG"
        held_out = [json.loads(r)["step"] for r in lora["validation_losses"]["table"]["records"]]
        assert held_out == [2, 4]  # every 2 steps, the last one included
        weights = Path(lora["weights"]["path"])
        assert weights.suffix == ".safetensors" and weights.is_file()

        metrics = web.metadata("metrics", day)
        grid_md = metrics["sample_grid"]["mdStr"]
        current, previous, *samples = IMAGE.findall(grid_md)
        assert f"/reports/metrics/{day}/grid.jpg" in current
        assert f"/reports/metrics/{DAYS[0]}/grid.jpg" in previous  # beside the last version
        assert _picture(current).size != (0, 0) and _picture(previous).size != (0, 0)
        links = re.findall(r"\]\((http[^)]+/samples/[^)]+\.png)\)", grid_md)
        assert len(links) == metrics["n_samples"]["intValue"] == 8  # 4 prompts x 2 seeds
        assert all(_picture(u).format == "PNG" for u in links)
        assert Path(metrics["samples_folder"]["path"]).is_dir()

        _browser_finds_pictures(web.url)


def _watched_tiny_preset(folder: Path) -> Path:
    """The tiny preset with a held-out image, a validation every 2 steps and two prompts."""
    from style_pipeline.training.presets import config_to_yaml, load_preset

    watched = load_preset("tiny").model_copy(
        update={
            "name": "tiny_watched",
            "validation_split": 0.2,
            "validation_every_n_steps": 2,
            "validation_prompts": ("a photo in the house style", "a portrait"),
            "validation_inference_steps": 2,
        }
    )
    path = folder / "tiny_watched.yml"
    path.write_text(config_to_yaml(watched))
    return path


def _browser_finds_pictures(base: str) -> None:
    """Each asset page's markdown dialog shows its picture, loaded (natural width > 0)."""
    from style_pipeline_tests.serving.conftest import CHROMIUM, CHROMIUM_ARGS

    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (/usr/bin/chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    save = os.environ.get("STYLE_PIPELINE_SAVE_SCREENSHOTS") == "1"
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=CHROMIUM_ARGS)  # fmt: skip
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        try:
            for asset, label, shot in (
                ("curated_frames", "kept_frames", "curated_frames"),
                ("lora_weights", "loss_curve", "lora_weights"),
                ("lora_weights", "validation_grid", "lora_weights_validation"),
                ("metrics", "sample_grid", "metrics"),
            ):
                page.goto(f"{base}/assets/{asset}")
                row = page.get_by_text(label, exact=True).first.locator("xpath=ancestor::tr[1]")
                row.wait_for(timeout=60_000)
                page.wait_for_timeout(500)  # the table renders its values after the keys
                if row.locator("img").count():  # short markdown is shown inline
                    image = row.locator("img").first
                    row.scroll_into_view_if_needed()
                else:  # long markdown behind a button, in a dialog
                    row.get_by_text("[Show Markdown]").click()
                    image = page.get_by_role("dialog").locator("img").first
                image.wait_for(timeout=30_000)
                page.wait_for_function(
                    "img => img.complete && img.naturalWidth > 0",
                    arg=image.element_handle(),
                    timeout=30_000,
                )
                assert "/pictures/" in (image.get_attribute("src") or "")
                if save:
                    page.wait_for_timeout(800)  # the dialog's fade-in
                    page.screenshot(path=str(DOCS_IMAGES / f"dagster_{shot}.png"))
        finally:
            browser.close()
