"""Loss masks: drawn from face boxes, rendered like their image, weighing the loss."""

from __future__ import annotations

import io
import json
import math
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
import torch
from PIL import Image

from style_pipeline.contracts.training import DatasetBuildConfig, LoraTrainingConfig
from style_pipeline.stages.training_dataset import face_boxes
from style_pipeline.storage.store import Store
from style_pipeline.training import data
from style_pipeline.training.buckets import resize_crop_box
from style_pipeline.training.dataset import DatasetItem, build_training_dataset, download_dataset
from style_pipeline.training.feed import latent_masks
from style_pipeline.training.masks import box_mask, downsample_mask, mask_png, padded_box
from style_pipeline.training.objective import reduce_loss
from style_pipeline.training.presets import PRESETS
from style_pipeline.training.trainer import train_and_publish
from style_pipeline_tests.training.conftest import PARTITION
from style_pipeline_tests.training.factories import write_images

RED, BLUE = (255, 0, 0), (0, 0, 255)


def _boxed_image(path, size, box) -> None:
    """Blue, with the box red: where the rendered image is red the mask must be 1."""
    image = Image.new("RGB", size, BLUE)
    image.paste(Image.new("RGB", (box[2] - box[0], box[3] - box[1]), RED), box[:2])
    image.save(path)


def test_padded_box_grows_and_clips():
    assert padded_box((10, 10, 20, 30), 0.0, 100, 100) == (10, 10, 20, 30)
    assert padded_box((10, 10, 20, 30), 0.5, 100, 100) == (5, 0, 25, 40)
    assert padded_box((0, 0, 100, 100), 0.25, 100, 100) == (0, 0, 100, 100)
    with pytest.raises(ValueError, match="empty box"):
        padded_box((5, 5, 5, 9), 0.1, 10, 10)


def test_box_mask_is_255_inside_the_boxes_only():
    mask = np.asarray(box_mask(40, 30, [(2, 3, 10, 12), (30, 20, 40, 30)]))
    assert mask.shape == (30, 40)
    assert (mask[3:12, 2:10] == 255).all() and (mask[20:30, 30:40] == 255).all()
    assert mask.sum() == 255 * (9 * 8 + 10 * 10)
    assert mask_png(40, 30, [(2, 3, 10, 12)]) == mask_png(40, 30, [(2, 3, 10, 12)])


@pytest.mark.parametrize(
    ("size", "bucket", "left_top", "flip"),
    [
        ((96, 64), (64, 64), None, False),  # centre crop
        ((96, 64), (64, 64), (5, 0), True),  # a random crop, flipped
        ((80, 120), (48, 64), (0, 3), True),  # scaled down, then cropped and flipped
        ((64, 64), (32, 32), None, True),
    ],
)
def test_mask_follows_its_image_through_resize_crop_and_flip(
    tmp_path, size, bucket, left_top, flip
):
    box = (30, 20, 60, 50)
    image_path, mask_path = tmp_path / "a.png", tmp_path / "a.mask.png"
    _boxed_image(image_path, size, box)
    mask_path.write_bytes(mask_png(*size, [box]))
    record = data.TrainingRecord(image_path, "c", size[0], size[1], mask_path)
    (new_w, new_h), (left, top, _, _) = resize_crop_box(*size, bucket)
    if left_top is not None:
        left, top = left_top
    example = data.render_example(record, bucket, data.Augment(left, top, flip))
    assert example.mask is not None and example.mask.shape == (1, bucket[1], bucket[0])
    mask = example.mask[0]
    red = example.pixel_values[0] > 0.5  # red channel in [-1, 1]
    assert (mask[red] > 0.5).all() and (mask[~red] < 0.5).all()
    # the box's own corners, moved by the resize, crop and flip
    scale = new_w / size[0]
    x0, x1 = box[0] * scale - left, box[2] * scale - left
    y0, y1 = box[1] * scale - top, box[3] * scale - top
    if flip:
        x0, x1 = bucket[0] - x1, bucket[0] - x0
    inside = mask[int(y0) + 2 : int(y1) - 2, max(0, int(x0) + 2) : int(x1) - 2]
    assert inside.numel() and (inside > 0.99).all()
    assert mask.sum() == pytest.approx(
        (min(x1, bucket[0]) - max(x0, 0)) * (min(y1, bucket[1]) - max(y0, 0)), rel=0.1
    )


def test_masked_loss_ignores_a_background_of_weight_zero():
    config = LoraTrainingConfig(masked_loss=True, mask_background_weight=0.0)
    target = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    masks = torch.zeros(2, 1, 64, 64)
    masks[:, :, 16:48, 8:40] = 1  # whole latent pixels (8 px each)
    pred = target + 0.1
    changed = pred.clone()
    changed[:, :, :2, :] += 5.0  # latent rows 0-1: pixels 0-15, outside the mask
    batch = {"masks": masks}
    base = reduce_loss((pred - target) ** 2, batch, config)
    assert reduce_loss((changed - target) ** 2, batch, config) == base
    # off, or with a floor, the background counts again
    off = config.model_copy(update={"masked_loss": False})
    assert reduce_loss((changed - target) ** 2, batch, off) > base
    floor = config.model_copy(update={"mask_background_weight": 0.1})
    delta = ((changed - target) ** 2 - (pred - target) ** 2).mean()
    expected = reduce_loss((pred - target) ** 2, batch, floor) + 0.1 * delta
    assert reduce_loss((changed - target) ** 2, batch, floor) == pytest.approx(float(expected))


def test_a_batch_without_masks_is_the_plain_mean():
    config = LoraTrainingConfig(masked_loss=True)
    loss = torch.rand(3, 4, 8, 8)
    assert torch.equal(reduce_loss(loss, {}, config), loss.mean())


def test_prior_loss_weight_scales_regularization_examples():
    loss = torch.stack([torch.full((4, 8, 8), 1.0), torch.full((4, 8, 8), 3.0)])
    batch = {"is_reg": torch.tensor([False, True])}
    for weight in (0.0, 0.5, 1.0, 2.0):
        config = LoraTrainingConfig(prior_loss_weight=weight)
        assert float(reduce_loss(loss, batch, config)) == pytest.approx((1.0 + 3.0 * weight) / 2)
    snr = torch.tensor([2.0, 0.5])
    config = LoraTrainingConfig(prior_loss_weight=0.5)
    assert float(reduce_loss(loss, batch, config, snr)) == pytest.approx((2.0 + 0.75) / 2)


def test_downsample_mask_averages_areas():
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., :8, :4] = 1
    small = downsample_mask(mask, (2, 2))
    assert small.shape == (1, 1, 2, 2)
    assert small[0, 0].tolist() == [[0.5, 0.0], [0.0, 0.0]]
    assert downsample_mask(small, (2, 2)) is small


def test_cached_masks_match_the_pixel_path(tmp_path):
    box = (10, 10, 40, 30)
    _boxed_image(tmp_path / "a.png", (96, 64), box)
    (tmp_path / "a.mask.png").write_bytes(mask_png(96, 64, [box]))
    masked = data.TrainingRecord(tmp_path / "a.png", "c", 96, 64, tmp_path / "a.mask.png")
    plain = data.TrainingRecord(tmp_path / "a.png", "c", 96, 64)
    models = SimpleNamespace(
        vae=SimpleNamespace(config={"block_out_channels": [4, 8, 16, 32]}),
        device=torch.device("cpu"),
    )
    bucket = (64, 64)
    masks = latent_masks(models, [masked, plain], [bucket, bucket], (False, True))  # type: ignore[arg-type]
    assert set(masks) == {(0, False), (0, True)}
    left, top = resize_crop_box(96, 64, bucket)[1][:2]
    for flip in (False, True):
        example = data.render_example(masked, bucket, data.Augment(left, top, flip))
        batch = data.collate(
            [example, data.render_example(plain, bucket, data.Augment(0, 0, flip))]
        )
        assert batch["masks"].shape == (2, 1, 64, 64)
        assert torch.equal(batch["masks"][1], torch.ones(1, 64, 64))
        pixel_path = downsample_mask(batch["masks"][:1], (8, 8))[0]
        assert torch.equal(masks[(0, flip)], pixel_path)


def _faces_table(rows) -> pl.DataFrame:
    return pl.DataFrame(
        rows, schema=["frame_id", "face_index", "x0", "y0", "x1", "y1"], orient="row"
    )


def test_face_boxes_from_the_faces_tables():
    tables = {
        "2026-01-01": _faces_table([("a", 1, 0, 0, 4, 4), ("a", 0, 1, 1, 9, 9)]),
        "2026-01-02": _faces_table([("b", 0, 2, 2, 3, 3)]),
    }
    assert face_boxes(tables) == {"a": ((1, 1, 9, 9), (0, 0, 4, 4)), "b": ((2, 2, 3, 3),)}
    assert face_boxes(None) == {}


@pytest.fixture(scope="module")
def masked_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("masked")
    paths = write_images(root / "src", [(64, 64), (96, 64), (64, 80), (72, 72)])
    items = [
        DatasetItem(str(p), f"sks style, picture {i}", f"frame-{i}", (), ((8, 8, 40, 40),))
        if i % 2 == 0
        else DatasetItem(str(p), f"sks style, picture {i}", f"frame-{i}")
        for i, p in enumerate(paths)
    ]
    store = Store(root / "storage")
    config = DatasetBuildConfig(resolution=64, masks="faces", mask_padding=0.0)
    result = build_training_dataset(items, store, PARTITION, config)
    return result, download_dataset(store, PARTITION, root / "local")


def test_masks_are_written_next_to_their_image_and_listed(masked_dataset):
    result, folder = masked_dataset
    rows = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]
    assert [r.get("mask") for r in rows] == [
        "1_style/frame-0.mask.png",
        None,
        "1_style/frame-2.mask.png",
        None,
    ]
    assert result.manifest["masks"] == 2
    assert "1_style/frame-0.mask.png" in {f["path"] for f in result.manifest["files"]}
    with Image.open(io.BytesIO((folder / rows[0]["mask"]).read_bytes())) as mask:
        assert mask.mode == "L" and mask.size == (rows[0]["width"], rows[0]["height"])
    records = data.read_training_folder(folder)
    assert [r.mask is not None for r in records] == [True, False, True, False]


@pytest.mark.slow
def test_masked_training_is_the_same_from_cached_latents_and_from_pixels(
    masked_dataset, tiny_model, tmp_path
):
    _, folder = masked_dataset
    config = PRESETS["tiny"].model_copy(
        update={"masked_loss": True, "random_flip": True, "train_batch_size": 2}
    )
    cached = train_and_publish(Store(tmp_path / "a"), PARTITION, config, folder, tiny_model)
    pixels_config = config.model_copy(update={"cache_latents": False})
    pixels = train_and_publish(Store(tmp_path / "b"), PARTITION, pixels_config, folder, tiny_model)
    assert cached.metadata["cache"]["latents"]["used"] is True
    assert pixels.metadata["cache"]["latents"]["used"] is False
    assert cached.metadata["cache"]["masks"] == {"images": 2, "cached": True}
    assert pixels.metadata["cache"]["masks"] == {"images": 2, "cached": False}
    # the two paths agree as the unmasked ones do (test_training_cache): to float noise
    for a, b in zip(cached.metadata["losses"], pixels.metadata["losses"], strict=True):
        assert math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6), (a, b)
    unmasked = config.model_copy(update={"masked_loss": False})
    plain = train_and_publish(Store(tmp_path / "c"), PARTITION, unmasked, folder, tiny_model)
    # same draws, so the first step that differs is one with a mask: its loss is lower
    differ = [
        (m, p) for m, p in zip(cached.metadata["losses"], plain.metadata["losses"], strict=True)
        if m != p
    ]  # fmt: skip
    assert differ and differ[0][0] < differ[0][1]


def test_stage_draws_masks_from_the_stored_faces_tables(tmp_path):
    from style_pipeline.contracts.training import DatasetSettings, TrainingSettings
    from style_pipeline.stages.training_dataset import build_dataset

    store = Store(tmp_path / "s")
    day = "2026-01-01"
    for frame_id in ("a", "b"):
        buffer = io.BytesIO()
        Image.new("RGB", (96, 64), (9, 9, 9)).save(buffer, format="JPEG")
        store.put_bytes(buffer.getvalue(), f"frames/{day}/{frame_id}.jpg")
    captions = {
        day: pl.DataFrame(
            {
                "frame_id": ["a", "b"],
                "path": [f"frames/{day}/a.jpg", f"frames/{day}/b.jpg"],
                "caption": ["sks style, a face", "sks style, a street"],
            }
        )
    }
    buffer = io.BytesIO()
    _faces_table([("a", 0, 10, 10, 30, 40)]).write_parquet(buffer)
    store.put_bytes(buffer.getvalue(), f"faces/{day}.parquet")
    off, _ = build_dataset(captions, store, day, TrainingSettings())
    assert off.masks == 0
    settings = TrainingSettings(dataset=DatasetSettings(masks="faces", mask_padding=0.0))
    document, facts = build_dataset(captions, store, day, settings)
    assert document.masks == 1 and facts["masks"] == 1
    with Image.open(store.path(f"training_dataset/{day}/1_style/a.mask.png")) as mask:
        pixels = np.asarray(mask)
    assert pixels.shape == (64, 96) and pixels[10:40, 10:30].min() == 255
    assert pixels.sum() == 255 * 20 * 30
