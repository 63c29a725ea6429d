"""Validation during training: the held-out split, a deterministic validation loss, the
validation image grid (in the version, the asset's metadata and the Pipes child's report)
and weights that do not depend on whether validation images were rendered."""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

import dagster as dg
import pytest
import yaml
from PIL import Image

from style_pipeline.contracts.training import DatasetBuildConfig, LoraTrainingConfig
from style_pipeline.media.pictures import LINE_HEIGHT
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline.training import train_loop
from style_pipeline.training.data import TrainingRecord
from style_pipeline.training.dataset import build_training_dataset
from style_pipeline.training.held_out import split_held_out
from style_pipeline.training.presets import PRESETS
from style_pipeline.training.trainer import train_and_publish
from style_pipeline.training.validation import GRID_EDGE
from style_pipeline_tests.training.conftest import PARTITION
from style_pipeline_tests.training.factories import write_images

PROMPTS = ("a red cat", "a blue house")
VALIDATED = PRESETS["tiny"].model_copy(
    update={
        "validation_split": 0.25,
        "validation_every_n_steps": 2,
        "validation_prompts": PROMPTS,
        "validation_inference_steps": 2,
    }
)
NO_IMAGES = VALIDATED.model_copy(update={"validation_prompts": ()})


def _records(names: list[str], repeats: int = 1, reg: tuple[str, ...] = ()) -> list:
    return [
        TrainingRecord(Path("/d") / name, "sks", 64, 64, is_reg=name in reg)
        for name in names
        for _ in range(repeats)
    ]


@pytest.mark.parametrize(
    ("images", "fraction", "held"),
    [(4, 0.25, 1), (4, 0.01, 1), (4, 0.5, 2), (4, 0.99, 3), (10, 0.2, 2), (2, 0.9, 1)],
)
def test_split_holds_out_at_least_one_image_and_leaves_one(images, fraction, held):
    names = [f"img{i}.png" for i in range(images)]
    split = split_held_out(_records(names, repeats=3), fraction, seed=7)
    assert len(split.names) == held == len(split.validation)
    trained = {r.image.name for r in split.train}
    assert trained.isdisjoint(split.names)  # by image: no repeat of a held-out one trains
    assert trained | set(split.names) == set(names)
    assert len(split.train) == 3 * (images - held)  # the training images keep their repeats
    assert split_held_out(_records(names, repeats=3), fraction, seed=7).names == split.names


def test_split_is_chosen_by_the_seed_and_never_holds_out_regularization_images():
    names = [f"img{i}.png" for i in range(12)] + ["reg0.png", "reg1.png"]
    records = _records(names, reg=("reg0.png", "reg1.png"))
    picks = {split_held_out(records, 0.25, seed).names for seed in range(6)}
    assert len(picks) > 1  # another seed, other images
    for seed in range(6):
        assert not {"reg0.png", "reg1.png"} & set(split_held_out(records, 0.5, seed).names)
    assert split_held_out(records, 0.0, 0).validation == []


def test_one_image_cannot_be_held_out():
    split = split_held_out(_records(["only.png"], repeats=2), 0.5, seed=0)
    assert split.validation == [] and len(split.train) == 2
    assert split.note and "validation_split ignored" in split.note


def test_monitoring_fields_stay_out_of_the_config_hash_but_early_stop_inputs_do_not():
    base = PRESETS["tiny"]
    assert NO_IMAGES.config_hash() == VALIDATED.config_hash()  # prompts: monitoring only
    every = VALIDATED.model_copy(update={"validation_every_n_steps": 3})
    assert every.config_hash() == VALIDATED.config_hash()
    assert VALIDATED.config_hash() != base.config_hash()  # the split changes the weights
    assert base.model_copy(update={"ema_decay": 0.9}).config_hash() != base.config_hash()
    stopping = VALIDATED.model_copy(update={"early_stop_patience": 2})
    assert (
        stopping.model_copy(update={"validation_every_n_steps": 3}).config_hash()
        != stopping.config_hash()
    )
    with pytest.raises(ValueError, match="validation_split"):
        LoraTrainingConfig(early_stop_patience=1)


@pytest.fixture(scope="module")
def runs(tiny_model, tiny_dataset, tmp_path_factory):
    """VALIDATED twice, NO_IMAGES once; each published into its own store."""
    out = {}
    fed: list = []
    real_build_feed = train_loop.build_feed

    def spy(models, config, dataset_dir, records, *args):
        fed.append([r.image.name for r in records])
        return real_build_feed(models, config, dataset_dir, records, *args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train_loop, "build_feed", spy)
        for name, config in (("a", VALIDATED), ("b", VALIDATED), ("plain", NO_IMAGES)):
            store = Store(tmp_path_factory.mktemp(f"validation_{name}"))
            published = train_and_publish(store, PARTITION, config, tiny_dataset, tiny_model)
            out[name] = (store, published.metadata)
    out["fed"] = fed
    return out


@pytest.mark.slow
def test_held_out_images_are_not_trained_on(runs):
    _, meta = runs["a"]
    (held,) = meta["held_out"]
    assert meta["n_images"] == 3
    trained = runs["fed"][0]  # the training feed of the first run
    assert held not in trained and len(trained) == 3


@pytest.mark.slow
def test_validation_losses_are_deterministic_and_images_do_not_change_the_weights(runs):
    a, b, plain = runs["a"][1], runs["b"][1], runs["plain"][1]
    assert [step for step, _ in a["validation_losses"]] == [2, 4]
    assert a["validation_losses"] == b["validation_losses"]
    assert a["sha256"] == b["sha256"] == plain["sha256"]  # rendering draws no training RNG
    assert a["validation_losses"] == plain["validation_losses"]
    assert list(a["validation_steps"]) == [2, 4] and not plain["validation_steps"]
    assert "validation_grid" not in plain["pictures"]


@pytest.mark.slow
def test_validation_grid_is_stored_beside_the_weights(runs):
    store, meta = runs["a"]
    key = meta["pictures"]["validation_grid"]
    assert key == layout.lora_version_file(meta["version"], "validation_grid.png")
    grid = Image.open(io.BytesIO(store.read_bytes(key)))
    pad = 6
    assert grid.format == "PNG"
    # title + column labels, then one row per prompt; one column per validation step
    assert grid.height == (LINE_HEIGHT + pad) + LINE_HEIGHT + len(PROMPTS) * (GRID_EDGE + pad) + pad
    assert grid.width >= 2 * (GRID_EDGE + pad)
    curve = Image.open(io.BytesIO(store.read_bytes(meta["pictures"]["loss_curve"])))
    assert curve.format == "PNG" and curve.size == (480, 260)


def _preset_file(tmp_path: Path, config: LoraTrainingConfig) -> Path:
    path = tmp_path / "validated.yml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    return path


@pytest.fixture
def day_dataset(tmp_path, monkeypatch):
    """The tiny preset with validation, trained in the asset's step (in_process)."""
    monkeypatch.setenv("STYLE_PIPELINE_TRAINING__PRESET", str(_preset_file(tmp_path, VALIDATED)))
    monkeypatch.setenv("STYLE_PIPELINE_TRAINING__LAUNCHER__KIND", "in_process")
    monkeypatch.setenv("STYLE_PIPELINE_TRAINING__MODEL_CACHE_DIR", str(tmp_path / "models"))
    store = Store(tmp_path / "storage")  # STYLE_PIPELINE_STORAGE (the suite's conftest)
    paths = write_images(tmp_path / "src", [(64, 64), (96, 64), (64, 80), (72, 72)])
    items = [(str(p), f"sks style, picture {i}", f"frame-{i}") for i, p in enumerate(paths)]
    build_training_dataset(items, store, PARTITION, DatasetBuildConfig(resolution=64))
    return store


@pytest.mark.slow
def test_validation_grid_and_loss_curve_appear_in_the_asset_metadata(day_dataset, tmp_path):
    from style_pipeline.defs.resources import SettingsResource, StorageResource
    from style_pipeline.defs.training.assets import lora_weights

    context = dg.build_asset_context(partition_key=PARTITION)
    output = lora_weights(
        context=context,
        settings=SettingsResource(),
        storage=StorageResource(root=str(tmp_path / "storage")),
        training_dataset={},
    )
    metadata = output.metadata
    grid_md = metadata["validation_grid"].value
    (url,) = re.findall(r"!\[validation grid\]\(([^)]+)\)", grid_md)
    report = layout.report_key(layout.LORA_WEIGHTS, PARTITION, "validation_grid.png")
    assert url.endswith(f"/pictures/{report}") and layout.is_public_picture(report)
    assert "columns: steps 2, 4" in grid_md
    stored = day_dataset.read_bytes(report)
    version_grid = Path(metadata["validation_grid_file"].value)
    assert version_grid.read_bytes() == stored  # the version's file, shown through reports/
    assert Image.open(io.BytesIO(stored)).height > len(PROMPTS) * GRID_EDGE
    assert "![loss curve](" in metadata["loss_curve"].value
    assert "validation loss" in metadata["loss_curve"].value
    assert Path(metadata["loss_curve_file"].value).is_file()
    rows = metadata["validation_losses"].value.records
    assert [r.data["step"] for r in rows] == [2, 4]
    assert metadata["best_step"].value in (2, 4)
    assert metadata["early_stopped"].value is False
    assert metadata["held_out"].value.endswith((".jpg", ".png"))
    assert list(output.value.model_extra["validation_steps"]) == [2, 4]


class _Pipes:
    """What ``lora_weights_pipes.run`` uses of a ``PipesContext``."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.materializations: list[dict] = []
        self.lines: list[str] = []
        self.log = self
        self.run_id = "test"

    def info(self, line: str) -> None:
        self.lines.append(line)

    def report_custom_message(self, message: dict) -> None:
        self.messages.append(message)

    def report_asset_materialization(self, metadata: dict) -> None:
        self.materializations.append(metadata)


@pytest.mark.slow
def test_the_pipes_trainer_reports_validation_and_the_grid(day_dataset, tmp_path):
    from style_pipeline.settings import load_settings
    from style_pipeline.stages.lora_weights_pipes import extras_for, run

    pipes = _Pipes()
    settings = load_settings().training
    run(pipes, extras_for(PARTITION, str(tmp_path / "storage"), settings))
    (document,) = [m["document"] for m in pipes.messages if m["kind"] == "document"]
    validated = [m for m in pipes.messages if "validation_loss" in m]
    assert [m["step"] for m in validated] == [2, 4]
    assert [p[0] for p in document["validation_losses"]] == [2, 4]
    assert any("validation loss" in line for line in pipes.lines)
    (metadata,) = pipes.materializations
    assert metadata["validation_grid_key"] == document["pictures"]["validation_grid"]
    grid = day_dataset.read_bytes(metadata["validation_grid_key"])
    assert hashlib.sha256(grid).hexdigest()  # stored and readable
    assert metadata["validation_points"] == 2 and metadata["early_stopped"] is False


@pytest.mark.slow
def test_sdxl_validation_renders_through_the_pipeline_with_its_adapters(
    tiny_sdxl_model, tiny_dataset, tmp_path
):
    config = VALIDATED.model_copy(
        update={"model_family": "sdxl", "validation_prompts": PROMPTS[:1]}
    )
    store = Store(tmp_path / "sdxl")
    meta = train_and_publish(store, PARTITION, config, tiny_dataset, tiny_sdxl_model).metadata
    assert meta["family"] == "sdxl" and [s for s, _ in meta["validation_losses"]] == [2, 4]
    grid = Image.open(io.BytesIO(store.read_bytes(meta["pictures"]["validation_grid"])))
    assert grid.height == (LINE_HEIGHT + 6) + LINE_HEIGHT + (GRID_EDGE + 6) + 6
