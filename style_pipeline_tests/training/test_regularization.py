"""Regularization images: from a folder or generated, written kohya-style, weighed in the loss."""

from __future__ import annotations

import io
import json

import polars as pl
import pytest
from PIL import Image

from style_pipeline.contracts.training import (
    DatasetBuildConfig,
    DatasetSettings,
    RegularizationSettings,
    TrainingSettings,
)
from style_pipeline.models.diffusion import load_pipeline
from style_pipeline.stages.training_dataset import build_dataset
from style_pipeline.storage.store import Store
from style_pipeline.training import data
from style_pipeline.training.dataset import build_training_dataset, download_dataset
from style_pipeline.training.presets import PRESETS
from style_pipeline.training.regularization import (
    class_prompts,
    class_words,
    from_folder,
    regularization_images,
)
from style_pipeline.training.trainer import train_and_publish
from style_pipeline_tests.training.conftest import PARTITION
from style_pipeline_tests.training.factories import write_images


def _reg_folder(tmp_path):
    folder = tmp_path / "reg_src"
    paths = write_images(folder, [(64, 64), (64, 96), (80, 64)], seed=5)
    paths[0].with_suffix(".txt").write_text("a  photo of\na person\n")
    (folder / "notes.md").write_text("not an image")
    return folder


def test_class_words_drop_the_trigger_words():
    assert class_words("sks style, alice, red coat, street", 2) == "red coat, street"
    assert class_words("sks style", 1) == ""
    settings = RegularizationSettings(images=3)
    prompts = class_prompts([("sks, alice, a woman", 1), ("sks, a street", 0)], settings)
    assert prompts == ["a street", "a woman", "a street"]
    fixed = RegularizationSettings(images=2, class_prompt="a photo")
    assert class_prompts([("sks, x", 0)], fixed) == ["a photo", "a photo"]
    with pytest.raises(ValueError, match="class_prompt"):
        class_prompts([("sks", 0)], settings)


def test_from_folder_reads_images_and_captions(tmp_path):
    folder = _reg_folder(tmp_path)
    settings = RegularizationSettings(source="folder", folder=str(folder), class_prompt="a scene")
    images = from_folder(folder, settings)
    assert [(i.stem, i.caption) for i in images] == [
        ("img0", "a photo of a person"),
        ("img1", "a scene"),
        ("img2", "a scene"),
    ]
    assert len(from_folder(folder, settings.model_copy(update={"images": 2}))) == 2
    with pytest.raises(ValueError, match="no .txt caption"):
        from_folder(folder, settings.model_copy(update={"class_prompt": None}))


def test_folder_regularization_is_written_as_a_kohya_reg_folder(tmp_path):
    folder = _reg_folder(tmp_path)
    settings = RegularizationSettings(
        source="folder", folder=str(folder), class_prompt="a scene", repeats=2, class_name="scene"
    )
    reg = regularization_images(settings, [], 64, load_pipe=_never)
    train = write_images(tmp_path / "train", [(64, 64), (96, 64)])
    items = [(str(p), f"sks style, picture {i}", f"frame-{i}") for i, p in enumerate(train)]
    store = Store(tmp_path / "storage")
    result = build_training_dataset(
        items, store, PARTITION, DatasetBuildConfig(resolution=64), reg, settings
    )
    local = download_dataset(store, PARTITION, tmp_path / "local")
    assert (local / "reg/2_scene/img0.jpg").is_file()
    assert (local / "reg/2_scene/img0.txt").read_text() == "a photo of a person\n"
    rows = [json.loads(line) for line in (local / "metadata.jsonl").read_text().splitlines()]
    reg_rows = [r for r in rows if r.get("is_reg")]
    assert len(reg_rows) == 3 and all(r["repeats"] == 2 for r in reg_rows)
    assert result.manifest["regularization"]["count"] == 3
    assert result.manifest["concepts"] == {"1_style": 2, "reg/2_scene": 3}
    records = data.read_training_folder(local)
    assert len(records) == 2 + 3 * 2
    assert [r.is_reg for r in records] == [False] * 2 + [True] * 6


def _never():
    raise AssertionError("the base model is loaded only to generate")


def test_stage_generates_with_the_tiny_pipeline(tmp_path, tiny_model):
    store = Store(tmp_path / "s")
    store.put_bytes(_jpeg(), "frames/2026-01-01/a.jpg")
    captions = {
        "2026-01-01": pl.DataFrame(
            {
                "frame_id": ["a"],
                "path": ["frames/2026-01-01/a.jpg"],
                "caption": ["sks style, alice, a woman in a red coat"],
                "characters": [["alice"]],
            }
        )
    }
    reg = RegularizationSettings(source="generate", images=2, num_inference_steps=2)
    settings = TrainingSettings(preset="tiny", dataset=DatasetSettings(regularization=reg))
    loaded = []

    def load():
        loaded.append(1)
        return load_pipeline(tiny_model.path)

    document, facts = build_dataset(captions, store, "2026-01-01", settings, load_pipe=load)
    assert loaded == [1] and document.regularization == 2 and facts["regularization_images"] == 2
    prefix = "training_dataset/2026-01-01/reg/1_class"
    for index in range(2):
        assert store.read_bytes(f"{prefix}/reg_{index:05d}.txt") == b"a woman in a red coat\n"
        with Image.open(store.path(f"{prefix}/reg_{index:05d}.png")) as image:
            assert image.size == (64, 64)
    assert document.examples_per_epoch == 3
    assert "| reg/1_class/reg_00000.png | 64x64 | 64x64 | 1 | class (reg) |" in str(
        facts["bucket_report"]
    )


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (96, 64), (10, 20, 30)).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.mark.slow
def test_prior_loss_weight_changes_only_runs_with_regularization(
    tmp_path, tiny_model, tiny_dataset
):
    folder = _reg_folder(tmp_path)
    settings = RegularizationSettings(source="folder", folder=str(folder), class_prompt="a scene")
    reg = regularization_images(settings, [], 64, load_pipe=_never)
    train = write_images(tmp_path / "train", [(64, 64), (96, 64)])
    items = [(str(p), f"sks style, picture {i}", f"frame-{i}") for i, p in enumerate(train)]
    store = Store(tmp_path / "storage")
    build_training_dataset(
        items, store, PARTITION, DatasetBuildConfig(resolution=64), reg, settings
    )
    local = download_dataset(store, PARTITION, tmp_path / "local")
    base = PRESETS["tiny"].model_copy(update={"train_batch_size": 2, "max_train_steps": 3})

    def sha256(out: str, weight: float, dataset) -> str:
        config = base.model_copy(update={"prior_loss_weight": weight})
        published = train_and_publish(Store(tmp_path / out), PARTITION, config, dataset, tiny_model)
        return published.metadata["sha256"]

    shas = {weight: sha256(f"out{weight}", weight, local) for weight in (1.0, 0.5)}
    assert shas[1.0] != shas[0.5]
    # without regularization images the weight changes nothing
    plain = [sha256(f"plain{weight}", weight, tiny_dataset) for weight in (1.0, 0.5)]
    assert plain[0] == plain[1]
