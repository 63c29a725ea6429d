"""lora_weights end to end with ``training.backend: comfyui``: the day's dataset goes to a
fake ComfyUI on 127.0.0.1, the Pipes trainer child (the default launcher) follows the
prompt, downloads the kohya weights made for the tiny pipeline, converts and checks them,
and publishes a version exactly as a local training would; a re-run reuses the job."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import dagster as dg
import pytest

from style_pipeline.demo.samples import make_photos
from style_pipeline.settings import load_settings
from style_pipeline.storage.store import Store
from style_pipeline_tests.conftest import materialize_day
from style_pipeline_tests.training.remote.comfy_fake import ComfyFake, kohya_lora

DAY = "2026-02-05"
UP_TO_LORA = (
    "group:ingest or group:curation or group:captioning or key:training_dataset or key:lora_weights"
)


def tiny_pipeline(models: Path) -> Path:
    """The tiny SD pipeline the stage resolved (it exists once training is submitted)."""
    return next(models.rglob("model_index.json")).parent


@pytest.mark.slow
def test_lora_weights_trains_through_comfyui(tiny_models, instance, monkeypatch, tmp_path):
    with ComfyFake(weights=lambda name: kohya_lora(tiny_pipeline(tmp_path / "models"))) as fake:
        for key, value in {
            "BACKEND": "comfyui",
            "COMFYUI__URL": fake.url,
            "COMFYUI__CHECKPOINT": "tiny.safetensors",
            "REMOTE__POLL_INTERVAL_S": "0.1",
            "REMOTE__BACKOFF_BASE_S": "0.01",
        }.items():
            monkeypatch.setenv(f"STYLE_PIPELINE_TRAINING__{key}", value)
        settings = load_settings()
        make_photos(settings.drop_path() / DAY, 4, seed=3, size=(640, 480))
        result = materialize_day(DAY, UP_TO_LORA, instance=instance)
        assert result.success
        rerun = materialize_day(DAY, "key:lora_weights", instance=instance)
        assert rerun.success
    assert len(fake.prompts) == 1  # the re-run found the completed job: no second training
    uploads = [k for k in fake.uploads if k.endswith(".txt")]
    assert uploads and all(k.startswith("input/style_pipeline/comfyui-") for k in uploads)

    store = Store(settings.storage_root())
    document = json.loads(store.read_bytes(f"lora_weights/{DAY}.json"))
    weights = store.read_bytes(f"{document['prefix']}/pytorch_lora_weights.safetensors")
    assert hashlib.sha256(weights).hexdigest() == document["sha256"]
    assert document["backend"] == "comfyui" and document["device"] == "remote:comfyui"
    (job_key,) = [k for k in store.list("training_jobs") if k.endswith(".json")]
    job = json.loads(store.read_bytes(job_key))
    assert job["status"] == "completed" and job["weights_sha256"] == document["sha256"]

    (event,) = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("lora_weights")
    ]
    metadata = event.materialization.metadata
    assert metadata["backend"].value == "comfyui"
    logs = [e.user_message for e in instance.all_logs(result.run_id)]
    assert any("comfyui: uploaded" in m for m in logs)
