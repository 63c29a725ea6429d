"""lora_weights trains through Dagster Pipes: the child trainer's estimate and progress land in
the run's event log, its document becomes the asset's value, and cancelling the run (an
interrupt of the step) stops the child before it publishes anything."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import docker.types
import pytest
import yaml

from style_pipeline.contracts.training import TrainerLaunchSettings
from style_pipeline.defs.training.launch import (
    COMMAND,
    build_launch,
    passed_env,
)
from style_pipeline.demo.samples import make_photos
from style_pipeline.processes import descendants
from style_pipeline.settings import load_settings
from style_pipeline.stages.lora_weights_pipes import MODULE
from style_pipeline.storage.store import Store
from style_pipeline_tests.conftest import materialize_day

DAY = "2026-02-03"
UP_TO_DATASET = "group:ingest or group:curation or group:captioning or key:training_dataset"
UP_TO_LORA = f"{UP_TO_DATASET} or key:lora_weights"
ENV = {"AWS_REGION": "eu-west-1", "STYLE_PIPELINE_STORAGE": "s3://b/p", "HOME": "/root"}


def _trainers(pid: int) -> list[int]:
    found = []
    for child in descendants(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if MODULE.encode() in cmdline:
            found.append(child)
    return found


@pytest.mark.slow
def test_pipes_trainer_streams_progress_into_the_run(tiny_models, instance):
    settings = load_settings()
    assert settings.training.launcher.kind == "subprocess"  # the default
    make_photos(settings.drop_path() / DAY, 4, seed=8, size=(640, 480))
    result = materialize_day(DAY, UP_TO_LORA, instance=instance)
    assert result.success

    logs = [e.user_message for e in instance.all_logs(result.run_id)]
    assert any("training through Dagster Pipes (subprocess)" in m for m in logs)
    # lines the child process logged, through the Pipes message channel
    assert any(m.startswith("training estimate:") for m in logs)
    assert any(m.startswith("step 1/4 ") for m in logs)
    assert any(m.startswith("step 4/4 ") and "eta 0.0s" in m for m in logs)

    store = Store(settings.storage_root())
    document = json.loads(store.read_bytes(f"lora_weights/{DAY}.json"))
    weights = store.read_bytes(f"{document['prefix']}/pytorch_lora_weights.safetensors")
    assert hashlib.sha256(weights).hexdigest() == document["sha256"]
    (event,) = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("lora_weights")
    ]
    metadata = event.materialization.metadata
    assert metadata["launcher"].value == "subprocess"
    # the child's final metadata, reported as its asset materialization
    assert metadata["sha256"].value == document["sha256"]
    assert metadata["version"].value == document["version"] == f"{DAY}.001"
    assert metadata["steps"].value == 4
    assert metadata["progress_reports"].value == 2  # step 1 and the last (4 < every 25th)
    assert metadata["eta_at_step_1_s"].value >= 0


@pytest.mark.slow
def test_cancelling_the_run_stops_the_trainer(tiny_models, tmp_path):
    settings = load_settings()
    make_photos(settings.drop_path() / DAY, 3, seed=9, size=(640, 480))
    assert materialize_day(DAY, UP_TO_DATASET).success
    endless = yaml.safe_load(Path("configs/presets/tiny.yml").read_text())
    endless.update(name="endless", max_train_steps=100_000, num_train_epochs=100_000)
    preset = tmp_path / "endless.yml"
    preset.write_text(yaml.safe_dump(endless))
    env = {**os.environ, "STYLE_PIPELINE_TRAINING__PRESET": str(preset)}
    script = (
        "from style_pipeline_tests.conftest import materialize_day\n"
        f"r = materialize_day({DAY!r}, 'key:lora_weights', raise_on_error=False)\n"
        "print('RUN SUCCESS', r.success)\n"
    )
    run = subprocess.Popen(
        [sys.executable, "-c", script],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        trainers: list[int] = []
        while not trainers and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.5)
            trainers = _trainers(run.pid)
        assert trainers, "the trainer child never started"
        time.sleep(8)  # well into training: model built, steps running
        assert all(Path(f"/proc/{pid}").exists() for pid in trainers)
        run.send_signal(signal.SIGINT)  # what the step process gets when a run is cancelled
        output, _ = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert not any(Path(f"/proc/{pid}").exists() for pid in trainers), output[-3000:]
    assert "sending SIGINT to subprocess" in output
    assert "RUN SUCCESS True" not in output
    store = Store(settings.storage_root())
    assert not store.exists(f"lora_weights/{DAY}.json")
    assert not store.exists(f"lora_weights/{DAY}.001/metadata.json")


def test_passed_env_takes_names_and_prefixes():
    assert passed_env(["AWS_*", "HOME"], ENV) == {"AWS_REGION": "eu-west-1", "HOME": "/root"}
    assert passed_env([], ENV) == {}


def test_subprocess_launch_uses_this_interpreter():
    launch = build_launch(TrainerLaunchSettings(termination_grace_s=12))
    assert isinstance(launch.client, dg.PipesSubprocessClient)
    assert launch.run_kwargs == {"command": [sys.executable, "-m", MODULE]}
    assert launch.client.forward_termination and launch.client.termination_timeout_seconds == 12


def test_docker_launch_asks_for_gpus_volumes_and_network():
    from dagster_docker import PipesDockerClient

    settings = TrainerLaunchSettings(
        kind="docker",
        image="style-pipeline:1",
        gpus=1,
        docker_network="style_pipeline",
        docker_volumes=["data:/data"],
        env=["STYLE_PIPELINE_*"],
    )
    launch = build_launch(settings, ENV)
    assert isinstance(launch.client, PipesDockerClient)
    kwargs = launch.run_kwargs
    assert (kwargs["image"], kwargs["command"]) == ("style-pipeline:1", COMMAND)
    assert kwargs["env"] == {"STYLE_PIPELINE_STORAGE": "s3://b/p"}
    container = kwargs["container_kwargs"]
    assert container["network"] == "style_pipeline" and container["volumes"] == ["data:/data"]
    (request,) = container["device_requests"]
    assert isinstance(request, docker.types.DeviceRequest)
    assert (request["Count"], request["Capabilities"]) == (1, [["gpu"]])


def test_k8s_launch_requests_a_gpu_node():
    from dagster_k8s import PipesK8sClient

    settings = TrainerLaunchSettings(
        kind="k8s", gpus=1, k8s_namespace="style", k8s_node_selector={"accelerator": "nvidia"}
    )
    launch = build_launch(settings, {**ENV, "DAGSTER_CURRENT_IMAGE": "registry/sp:2"})
    assert isinstance(launch.client, PipesK8sClient)
    kwargs = launch.run_kwargs
    assert (kwargs["image"], kwargs["namespace"]) == ("registry/sp:2", "style")
    spec = kwargs["base_pod_spec"]
    assert spec["containers"][0]["resources"] == {"limits": {"nvidia.com/gpu": "1"}}
    assert spec["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert spec["node_selector"] == {"accelerator": "nvidia"}
    assert kwargs["env"] == {"AWS_REGION": "eu-west-1", "STYLE_PIPELINE_STORAGE": "s3://b/p"}


def test_container_launch_without_an_image_fails_clearly():
    with pytest.raises(dg.Failure, match="no image is set"):
        build_launch(TrainerLaunchSettings(kind="docker"), ENV)
