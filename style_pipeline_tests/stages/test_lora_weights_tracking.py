"""The style LoRA's training is recorded in MLflow when MLFLOW_TRACKING_URI is set (a local
file store here); trained through the fake ComfyUI backend, so no diffusion steps run."""

from __future__ import annotations

from style_pipeline.contracts.remote_training import RemoteCallSettings
from style_pipeline.contracts.training import DatasetBuildConfig, TrainingSettings
from style_pipeline.storage.store import Store
from style_pipeline.training.dataset import build_training_dataset
from style_pipeline_tests.training.factories import write_images
from style_pipeline_tests.training.remote.fake_backend import FakeRemote, done, running

PARTITION = "2026-01-05"


def test_a_published_lora_version_is_tracked(tmp_path, monkeypatch):
    import mlflow

    from style_pipeline.stages import lora_weights
    from style_pipeline.training.remote import factory

    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    store = Store(tmp_path / "storage")
    paths = write_images(tmp_path / "src", [(64, 64), (96, 64)])
    items = [(str(p), f"sks style, picture {i}", f"frame-{i}") for i, p in enumerate(paths)]
    build_training_dataset(items, store, PARTITION, DatasetBuildConfig(resolution=64))
    fake = FakeRemote([running(2), done()])
    monkeypatch.setattr(factory, "remote_backend", lambda training, verify_pipeline: fake)
    settings = TrainingSettings(
        preset="tiny", backend="comfyui", model_cache_dir=str(tmp_path / "models"),
        remote=RemoteCallSettings(poll_interval_s=0.01),
    )  # fmt: skip
    document, facts = lora_weights.train_lora(store, PARTITION, settings, log=lambda _: None)
    run = mlflow.MlflowClient(tracking_uri=uri).get_run(str(facts["tracking_run"]))
    assert run.info.run_name == document.version
    assert run.data.tags["asset"] == "lora_weights"
    assert run.data.tags["sha256"] == document.sha256
    assert run.data.params["rank"] == str(document.config["rank"])
    history = mlflow.MlflowClient(tracking_uri=uri).get_metric_history(
        run.info.run_id, "train_loss"
    )
    assert len(history) == len(document.losses)
