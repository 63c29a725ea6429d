"""docker/dagster.yaml read as data, and the run launcher's placement tag (no engine, no server).

The instance past one machine keeps the single-machine queue, pools and retention; the run
containers get every variable the file reads; a training run's tag adds the GPUs and
/dev/shm to its container in a form docker-py accepts, and a wrong tag fails the launch.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml

import docker
from style_pipeline.defs.placement import (
    DOCKER_CONTAINER_CONTEXT_TAG,
    DOCKER_GPU_RUN_TAGS,
)
from style_pipeline.docker_launcher import TaggedDockerRunLauncher, tagged_container_context

ROOT = Path(__file__).resolve().parents[2]
LOCAL = yaml.safe_load((ROOT / "dagster.yaml").read_text())
DEPLOY = yaml.safe_load((ROOT / "docker" / "dagster.yaml").read_text())
# What only the multi-machine file configures; everything else must match dagster.yaml.
DEPLOY_ONLY = {"storage", "compute_logs", "run_launcher"}


def env_names(value: object) -> Iterator[str]:
    """Every ``{env: NAME}`` in a parsed YAML value."""
    if isinstance(value, dict):
        if set(value) == {"env"}:
            yield value["env"]
            return
        for item in value.values():
            yield from env_names(item)
    elif isinstance(value, list):
        for item in value:
            yield from env_names(item)


def test_queue_pools_retries_monitoring_and_retention_are_those_of_dagster_yaml():
    assert set(DEPLOY) - DEPLOY_ONLY == set(LOCAL)
    for key in LOCAL:
        assert DEPLOY[key] == LOCAL[key], key


def test_run_containers_get_every_variable_the_instance_reads():
    read = set(env_names(DEPLOY))  # a run's container opens this instance too
    assert {"DAGSTER_PG_PASSWORD", "DAGSTER_COMPUTE_LOGS_BUCKET", "DAGSTER_DOCKER_NETWORK"} <= read
    assert read <= set(DEPLOY["run_launcher"]["config"]["env_vars"])


def launcher() -> TaggedDockerRunLauncher:
    config = DEPLOY["run_launcher"]["config"]
    return TaggedDockerRunLauncher(
        network="style_pipeline",
        env_vars=config["env_vars"],
        container_kwargs=config["container_kwargs"],
    )


def test_a_training_run_gets_the_gpus_and_keeps_the_data_volume():
    run = dg.DagsterRun(job_name="nightly_training_job", tags=DOCKER_GPU_RUN_TAGS)
    kwargs = launcher().get_container_context(run).container_kwargs
    assert kwargs["volumes"] == ["style_pipeline_data:/data"]
    # docker-py's own HostConfig is what containers.create builds from these kwargs
    host = docker.types.HostConfig(
        version="1.44", device_requests=kwargs["device_requests"], shm_size=kwargs["shm_size"]
    )
    assert host["DeviceRequests"] == [
        {"Driver": "nvidia", "Count": -1, "DeviceIDs": [], "Capabilities": [["gpu"]], "Options": {}}
    ]
    assert host["ShmSize"] == 2 * 1024**3


def test_a_run_without_the_tag_gets_no_gpus():
    context = launcher().get_container_context(dg.DagsterRun(job_name="ingest_job"))
    assert set(context.container_kwargs) == {"volumes"}
    assert tagged_container_context({"other": "x"}) is None


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("{not json", ValueError),
        ('["device_requests"]', ValueError),
        ('{"container_kwarg": {}}', dg.DagsterInvalidConfigError),
    ],
)
def test_a_wrong_tag_fails_with_its_reason(raw, error):
    run = dg.DagsterRun(job_name="training_job", tags={DOCKER_CONTAINER_CONTEXT_TAG: raw})
    with pytest.raises(error):
        launcher().get_container_context(run)


def test_a_job_can_carry_the_tag():
    job = dg.define_asset_job(
        "gpu_job", selection=dg.AssetSelection.groups("training"), tags=DOCKER_GPU_RUN_TAGS
    )
    assert job.tags == DOCKER_GPU_RUN_TAGS
