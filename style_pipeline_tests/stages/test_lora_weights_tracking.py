"""The style LoRA's training is recorded in MLflow when MLFLOW_TRACKING_URI is set (a local
file store here); trained through the fake ComfyUI backend, so no diffusion steps run."""

from __future__ import annotations

from style_pipeline_tests.training.remote.fake_backend import remote_stage_setup

PARTITION = "2026-01-05"


def test_a_published_lora_version_is_tracked(tmp_path, monkeypatch):
    import mlflow

    from style_pipeline.stages import lora_weights

    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    store, _, settings = remote_stage_setup(tmp_path, monkeypatch, PARTITION)
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
