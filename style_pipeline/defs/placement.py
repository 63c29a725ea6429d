"""Where a job's runs go when each run is launched in a container: run tags per launcher.

A job passes these as ``tags=`` to ``define_asset_job``; every run of the job carries them
and the instance's run launcher reads them. Plain data, no launcher import: the code
location stays light, and the launcher (``style_pipeline.docker_launcher``) imports the
tag's name from here.

Docker (``docker/dagster.yaml``): Dagster's ``DockerRunLauncher`` takes container settings
only from the instance and the code location, never from a run (dagster-io/dagster#30651),
so ``TaggedDockerRunLauncher`` merges the JSON of :data:`DOCKER_CONTAINER_CONTEXT_TAG`
(``container_kwargs``, ``env_vars``, ``networks``, as in the launcher's own config) over
the instance's: ``container_kwargs`` key by key, lists appended.
"""

import json

DOCKER_CONTAINER_CONTEXT_TAG = "style_pipeline/docker_container_context"

# Training runs: every GPU of the host (the NVIDIA container toolkit's device request,
# `docker run --gpus all`), and a /dev/shm larger than Docker's 64 MB, which the training
# DataLoader's decode workers pass their batches through.
DOCKER_GPU_CONTAINER_CONTEXT: dict[str, object] = {
    "container_kwargs": {
        "device_requests": [{"driver": "nvidia", "count": -1, "capabilities": [["gpu"]]}],
        "shm_size": "2g",
    }
}
DOCKER_GPU_RUN_TAGS: dict[str, str] = {
    DOCKER_CONTAINER_CONTEXT_TAG: json.dumps(DOCKER_GPU_CONTAINER_CONTEXT, sort_keys=True)
}
