"""The ComfyUI backend against a fake ComfyUI on 127.0.0.1 (real HTTP and websocket): the
node's workflow, uploads, progress, failure mid-run, cancel, 429/5xx bursts, malformed JSON,
slow uploads, tokens kept out of errors, and kohya weights converted and loading into the
tiny pipeline; then the whole job lifecycle through RemoteTrainingBackend."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from safetensors import safe_open

from style_pipeline.contracts.remote_training import ComfyUISettings, RemoteCallSettings
from style_pipeline.contracts.training import LoraTrainingConfig
from style_pipeline.storage.store import Store
from style_pipeline.training.backends import TrainingRequest
from style_pipeline.training.remote import comfy_workflow as workflow
from style_pipeline.training.remote.base import RemoteStatus, RemoteTrainingError
from style_pipeline.training.remote.comfyui import ComfyUIBackend
from style_pipeline.training.remote.http import (
    RemoteBadAnswer,
    RemoteRefused,
    RemoteUnavailable,
    reset_breakers,
)
from style_pipeline.training.remote.job_store import JobStore
from style_pipeline.training.remote.jobs import RemoteTrainingBackend
from style_pipeline_tests.training.remote.comfy_fake import NODE_INPUTS, ComfyFake, kohya_lora

CONFIG = LoraTrainingConfig(resolution=64, rank=4, num_train_epochs=2, learning_rate=1e-4)
FAST = RemoteCallSettings(
    timeout_s=5, max_attempts=4, backoff_base_s=0.01, backoff_max_s=0.05, poll_interval_s=0.05
)


@pytest.fixture(autouse=True)
def _fresh_breakers():
    reset_breakers()
    yield
    reset_breakers()


@pytest.fixture(scope="module")
def kohya_weights(tiny_model) -> bytes:
    return kohya_lora(tiny_model.path)


def settings(fake: ComfyFake, **changes) -> ComfyUISettings:
    return ComfyUISettings(**{"url": fake.url, "checkpoint": "tiny.safetensors", **changes})


def wait_for(backend: ComfyUIBackend, remote_id: str, final=("completed", "failed", "cancelled")):
    deadline = time.monotonic() + 20
    seen: list[RemoteStatus] = []
    while time.monotonic() < deadline:
        seen.append(backend.status(remote_id))
        if seen[-1].status in final:
            return seen
        time.sleep(0.02)
    raise AssertionError(f"never reached {final}: {seen[-3:]}")


# -- the workflow ---------------------------------------------------------------------------


def test_workflow_fills_every_input_of_the_node(tiny_dataset):
    s = ComfyUISettings(url="http://x", checkpoint="v1-5.safetensors")
    prompt = workflow.build_workflow(CONFIG, s, tiny_dataset, "comfyui-abc")
    node = prompt[workflow.NODE_ID]
    assert node["class_type"] == "Lora Training in Comfy (Advanced)"
    inputs = node["inputs"]
    assert set(inputs) == set(NODE_INPUTS)
    assert inputs["data_path"] == "input/style_pipeline/comfyui-abc"
    assert inputs["output_dir"] == "output/style_pipeline"
    assert (inputs["networkdimension"], inputs["networkalpha"]) == (4, 4)
    assert (inputs["max_train_epoches"], inputs["save_every_n_epochs"]) == (2, 2)
    assert inputs["learningrateUnet"] == inputs["learningrateText"] == 1e-4
    assert inputs["output_name"] == "comfyui-abc"


def test_max_train_steps_becomes_the_epochs_that_cover_it(tiny_dataset):
    per_epoch = workflow.examples_per_epoch(tiny_dataset)  # 4 images x 1 repeat
    config = CONFIG.model_copy(update={"max_train_steps": per_epoch * 2 + 1})
    assert workflow.epochs_for(config, tiny_dataset) == 3
    assert workflow.total_steps(CONFIG, tiny_dataset) == per_epoch * 2


@pytest.mark.parametrize("lr", [1.05e-4, 1e-10, 0.0001001])
def test_learning_rates_the_node_would_mangle_are_refused(lr):
    with pytest.raises(RemoteTrainingError, match="deletes every 0 digit"):
        workflow.node_learning_rate(lr, "learning_rate")


@pytest.mark.parametrize("lr", [1e-4, 2e-4, 1.5e-4, 5e-5, 3e-6])
def test_learning_rates_without_zero_digits_pass(lr):
    assert workflow.node_learning_rate(lr, "learning_rate") == lr


def test_sdxl_and_a_missing_checkpoint_are_refused(tiny_dataset):
    s = ComfyUISettings(url="http://x", checkpoint="a.safetensors")
    with pytest.raises(RemoteTrainingError, match="SD 1.x/2.x only"):
        workflow.node_inputs(
            CONFIG.model_copy(update={"model_family": "sdxl"}), s, tiny_dataset, "j"
        )
    with pytest.raises(RemoteTrainingError, match="checkpoint is not set"):
        workflow.node_inputs(CONFIG, ComfyUISettings(url="http://x"), tiny_dataset, "j")


def test_unmapped_settings_are_named():
    config = CONFIG.model_copy(update={"lr_warmup_steps": 10, "noise_offset": 0.1})
    notes = "\n".join(workflow.unmapped_notes(config))
    assert "lr_warmup_steps=10 ignored" in notes and "noise_offset=0.1 ignored" in notes
    assert "seed=0 ignored" in notes and "text encoder" in notes


# -- the backend against the fake -----------------------------------------------------------


def test_available_reports_vram_and_the_node(tiny_model):
    with ComfyFake() as fake:
        backend = ComfyUIBackend(settings(fake), FAST, tiny_model.path)
        ok = backend.available()
        assert ok.ok and ok.vram_gb == 24.0 and "20.0 of 24.0 GB" in ok.detail
        other = ComfyUIBackend(settings(fake, checkpoint="sdxl.safetensors"), FAST)
        assert not other.available().ok
        assert "not on the server" in other.available().detail
    down = ComfyUIBackend(ComfyUISettings(url=fake.url, checkpoint="x"), FAST)
    assert not down.available().ok  # the server is gone: not available, no exception


def test_submit_follow_download_converts_kohya_weights(
    tiny_model, tiny_dataset, kohya_weights, tmp_path
):
    with ComfyFake(weights=lambda name: kohya_weights, steps=4) as fake:
        backend = ComfyUIBackend(settings(fake), FAST, tiny_model.path)
        lines: list[str] = []
        prompt_id = backend.submit(tiny_dataset, CONFIG, "comfyui-job1", lines.append)
        uploaded = sorted(
            k for k in fake.uploads if k.startswith("input/style_pipeline/comfyui-job1/")
        )
        assert len(uploaded) == len(workflow.dataset_files(tiny_dataset)) == 8  # images + captions
        assert fake.prompts[0]["client_id"] == backend.client_id
        seen = wait_for(backend, prompt_id)
        assert seen[-1].status == "completed" and seen[-1].seconds is not None
        assert seen[-1].total_steps == workflow.total_steps(CONFIG, tiny_dataset)
        assert any(s.status == "running" and s.step > 0 for s in seen) or len(seen) < 3
        weights = backend.download(prompt_id, tmp_path)
        logs = backend.logs(prompt_id)
        backend.close()
    assert weights.name == "pytorch_lora_weights.safetensors"
    with safe_open(str(weights), framework="pt") as fh:
        keys = list(fh.keys())
    assert keys and all(k.startswith("unet.") for k in keys)  # the text encoder's LoRA dropped
    assert not any("lora_unet" in k or k.endswith(".alpha") for k in keys)
    assert "execution_success" in logs and any("progress 4/4" in line for line in logs)
    assert any("uploaded 8/8" in line for line in lines)
    assert any("seed=0 ignored" in line for line in lines)


def test_text_encoder_lora_is_kept_when_trained(tiny_model, tiny_dataset, kohya_weights, tmp_path):
    config = CONFIG.model_copy(update={"train_text_encoder": True})
    with ComfyFake(weights=lambda name: kohya_weights, steps=1, send_progress=False) as fake:
        backend = ComfyUIBackend(settings(fake, websocket=False), FAST, tiny_model.path)
        prompt_id = backend.submit(tiny_dataset, config, "comfyui-te", None)
        assert wait_for(backend, prompt_id)[-1].status == "completed"
        weights = backend.download(prompt_id, tmp_path)
    with safe_open(str(weights), framework="pt") as fh:
        assert any(k.startswith("text_encoder.") for k in fh.keys())


def test_failure_mid_run_reports_the_node_error(tiny_dataset):
    with ComfyFake(steps=5, fail_at_step=3) as fake:
        backend = ComfyUIBackend(settings(fake), FAST)
        prompt_id = backend.submit(tiny_dataset, CONFIG, "comfyui-fail", None)
        final = wait_for(backend, prompt_id)[-1]
        assert final.status == "failed"
        assert "CUDA out of memory (fake)" in (final.error or "")
        assert any("execution_error" in line for line in backend.logs(prompt_id))


def test_success_without_a_weights_file_fails_the_download(tiny_model, tiny_dataset, tmp_path):
    with ComfyFake(steps=1, write_weights=False) as fake:
        backend = ComfyUIBackend(settings(fake), FAST, tiny_model.path)
        prompt_id = backend.submit(tiny_dataset, CONFIG, "comfyui-nofile", None)
        assert wait_for(backend, prompt_id)[-1].status == "completed"
        with pytest.raises(RemoteTrainingError, match="sd-scripts failed"):
            backend.download(prompt_id, tmp_path)


def test_cancel_interrupts_a_running_prompt_and_dequeues_a_waiting_one(tiny_dataset):
    hold = threading.Event()
    with ComfyFake(steps=3, hold=hold) as fake:
        backend = ComfyUIBackend(settings(fake), FAST)
        first = backend.submit(tiny_dataset, CONFIG, "comfyui-c1", None)
        second = backend.submit(tiny_dataset, CONFIG, "comfyui-c2", None)
        assert wait_for(backend, first, final=("running",))[-1].status == "running"
        assert backend.status(second).status == "queued"
        backend.cancel(second)
        assert backend.status(second).status == "cancelled"
        backend.cancel(first)
        assert wait_for(backend, first)[-1].status == "cancelled"
        assert fake.interrupts == 1 and len(fake.history) == 1  # the second never ran


def test_bursts_slow_uploads_and_malformed_answers(tiny_dataset):
    bursts = {"/upload/image": [429, 503], "/prompt": [500, 502], "/queue": [504]}
    with ComfyFake(steps=1, bursts=bursts, malformed={"/history": 1}, upload_delay_s=0.05) as fake:
        backend = ComfyUIBackend(settings(fake, websocket=False), FAST)
        prompt_id = backend.submit(tiny_dataset, CONFIG, "comfyui-burst", None)
        with pytest.raises(RemoteBadAnswer, match="/history"):
            backend.status(prompt_id)
        assert wait_for(backend, prompt_id)[-1].status == "completed"
    uploads = [p for m, p in fake.requests if p == "/upload/image"]
    assert len(uploads) == 8 + 2  # two answered by the burst, then retried


def test_a_stalled_upload_gives_up_with_a_clear_error(tiny_dataset):
    slow = RemoteCallSettings(
        timeout_s=0.1, max_attempts=2, backoff_base_s=0.01, backoff_max_s=0.02
    )
    with ComfyFake(upload_delay_s=0.5) as fake:
        backend = ComfyUIBackend(settings(fake), slow)
        with pytest.raises(RemoteUnavailable, match="upload/image"):
            backend.submit(tiny_dataset, CONFIG, "comfyui-slow", None)
        assert not fake.prompts


def test_token_is_sent_and_never_shown(tiny_dataset, monkeypatch):
    secret = "comfy-secret-token-1234567890"
    monkeypatch.setenv("COMFY_TOKEN", secret)
    with ComfyFake(steps=1, token=secret) as fake:
        backend = ComfyUIBackend(settings(fake, token_env="COMFY_TOKEN"), FAST)
        prompt_id = backend.submit(tiny_dataset, CONFIG, "comfyui-token", None)
        assert wait_for(backend, prompt_id)[-1].status == "completed"
        monkeypatch.setenv("COMFY_TOKEN", secret[::-1])
        wrong = ComfyUIBackend(settings(fake, token_env="COMFY_TOKEN"), FAST)
        with pytest.raises(RemoteRefused) as refused:
            wrong.status(prompt_id)
    assert secret[::-1] not in str(refused.value) and "401" in str(refused.value)
    monkeypatch.delenv("COMFY_TOKEN")
    with pytest.raises(RemoteTrainingError, match="COMFY_TOKEN"):
        ComfyUIBackend(settings(fake, token_env="COMFY_TOKEN"), FAST)


def test_a_prompt_the_server_forgot_is_failed(tiny_dataset):
    with ComfyFake() as fake:
        backend = ComfyUIBackend(settings(fake), FAST)
        status = backend.status("no-such-prompt")
    assert status.status == "failed" and "neither queued" in (status.error or "")


def test_zip_upload_is_refused_with_the_reason(tiny_dataset):
    with ComfyFake() as fake:
        backend = ComfyUIBackend(settings(fake, upload="zip"), FAST)
        with pytest.raises(RemoteTrainingError, match="per_image"):
            backend.submit(tiny_dataset, CONFIG, "comfyui-zip", None)


# -- the job lifecycle ----------------------------------------------------------------------


def test_job_lifecycle_through_remote_training_backend(
    tiny_model, tiny_dataset, kohya_weights, tmp_path
):
    store = Store(tmp_path / "storage")
    with ComfyFake(weights=lambda name: kohya_weights, steps=3) as fake:

        def run(output: Path):
            remote = ComfyUIBackend(settings(fake), FAST, tiny_model.path)
            backend = RemoteTrainingBackend(remote, JobStore(store), "2026-01-01", FAST)
            request = TrainingRequest(tiny_dataset, output, CONFIG, tiny_model)
            outcome = backend.train(request)
            remote.close()
            return backend, outcome

        backend, outcome = run(tmp_path / "out1")
        again, second = run(tmp_path / "out2")
    job = backend.job
    assert job is not None and job.status == "completed" and job.remote_id
    assert job.weights_sha256 and outcome.weights_path.is_file()
    assert len(fake.prompts) == 1  # the re-run reused the completed job's weights
    assert again.job is not None and again.job.job_id == job.job_id
    assert second.weights_path.read_bytes() == outcome.weights_path.read_bytes()
