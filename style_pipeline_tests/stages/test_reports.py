"""Report pictures of a day: frame strips, loss curve, sample grid, written to storage."""

import io

import polars as pl
from PIL import Image

from style_pipeline.contracts.orchestration import PictureSettings
from style_pipeline.stages.reports import frame_strips, loss_curve, sample_grid_picture
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline_tests.serving.synthetic_day import write_day

DAY = "2026-11-10"


def _curated(store: Store) -> pl.DataFrame:
    write_day(store, DAY, 30)
    return pl.read_parquet(io.BytesIO(store.read_bytes(layout.table_key("curated_frames", DAY))))


def _image(store: Store, key: str) -> Image.Image:
    return Image.open(io.BytesIO(store.read_bytes(key)))


def test_frame_strips_show_kept_in_order_and_every_drop_code(tmp_path):
    store = Store(str(tmp_path))
    curated = _curated(store).with_columns(
        pl.Series("pick", range(30, 0, -1)).cast(pl.Int64)  # later rows were picked first
    )
    strips = frame_strips(curated, store, DAY, PictureSettings(frames_per_strip=4))
    kept = curated.filter(pl.col("keep")).sort("pick")
    assert [i.frame_id for i in strips.kept] == kept["frame_id"].head(4).to_list()
    assert strips.kept_total == kept.height and strips.dropped_total == 30 - kept.height
    # the first tiles cover every reason code before any code repeats
    codes = curated.filter(~pl.col("keep"))["code"].unique().to_list()
    assert {i.code for i in strips.dropped[: len(codes)]} == set(codes)
    assert len(strips.dropped) == 4
    for key, n in ((strips.kept_key, len(strips.kept)), (strips.dropped_key, 4)):
        assert key.startswith(f"reports/curated_frames/{DAY}/") and layout.is_public_picture(key)
        sheet = _image(store, key)
        assert sheet.format == "JPEG" and n * 160 < sheet.width < (n + 1) * 160  # n tiles
    assert all(len(i.short_id) == 8 for i in strips.kept)


def test_a_missing_frame_file_draws_a_placeholder_tile(tmp_path):
    store = Store(str(tmp_path))
    curated = _curated(store)
    gone = curated.filter(pl.col("keep"))["path"][0]
    store.delete(gone)
    strips = frame_strips(curated, store, DAY, PictureSettings(frames_per_strip=2))
    assert store.exists(strips.kept_key) and len(strips.kept) == 2


def test_loss_curve_and_series(tmp_path):
    store = Store(str(tmp_path))
    losses = [1.0 / (i + 1) for i in range(500)]
    curve = loss_curve(losses, "v1", store, DAY, PictureSettings(loss_points=20))
    assert curve.key == f"reports/lora_weights/{DAY}/loss.png"
    assert _image(store, curve.key).format == "PNG"
    assert len(curve.series) == 20 and curve.series[-1] == (500, losses[-1])


def test_sample_grid_picture_has_a_cell_per_prompt_and_seed(tmp_path):
    store = Store(str(tmp_path))
    red, blue = Image.new("RGB", (64, 64), "red"), Image.new("RGB", (64, 64), "blue")
    samples = [("p one", 0, red), ("p one", 1, blue), ("p two", 0, blue), ("p two", 1, red)]
    settings = PictureSettings(grid_edge=64)
    key = sample_grid_picture(samples, "v1 (day)", store, DAY, settings)
    grid = _image(store, key).convert("RGB")
    assert key == f"reports/metrics/{DAY}/grid.jpg"
    # two rows of two 64 px cells, plus title, header and row labels
    assert grid.width > 2 * 64 and grid.height > 2 * 64
