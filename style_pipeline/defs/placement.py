"""Where a job's runs go when each run is launched in a container: run tags per launcher.

A job passes these as ``tags=`` to ``define_asset_job``; every run of the job carries them
and the instance's run launcher reads them. Plain data, no launcher import: the code
location stays light, and the launcher (``style_pipeline.docker_launcher``) imports the
tag's name from here.

Docker (``docker/dagster.yaml``): Dagster's ``DockerRunLauncher`` takes container settings
only from the instance and the code location, never from a run,
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

# Kubernetes (deploy/helm/values.yaml, ``executor.kind: k8s_job``): every step is its own
# Job, and dagster_k8s's k8s_job_executor merges a step's ``dagster-k8s/config`` op tag
# (the JSON of its container, pod and job settings) into that step's pod. These are op
# tags, not run tags: an asset passes them as ``op_tags=`` (lora_weights). GPU nodes carry
# the NVIDIA GPU operator's label and a NoSchedule taint (docs/deployment.md), so only a
# step with this toleration lands there; the GPU limit makes the scheduler pick a node
# with a free GPU, and every other step stays on the CPU nodes.
K8S_CONFIG_TAG = "dagster-k8s/config"  # dagster_k8s.job.USER_DEFINED_K8S_CONFIG_KEY
K8S_GPU_RESOURCE = "nvidia.com/gpu"
K8S_GPU_NODE_SELECTOR: dict[str, str] = {"nvidia.com/gpu.present": "true"}
K8S_GPU_TOLERATIONS: list[dict[str, str]] = [
    {"key": K8S_GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
]
K8S_GPU_CONFIG: dict[str, object] = {
    "container_config": {"resources": {"limits": {K8S_GPU_RESOURCE: "1"}}},
    "pod_spec_config": {
        "node_selector": K8S_GPU_NODE_SELECTOR,
        "tolerations": K8S_GPU_TOLERATIONS,
    },
}
K8S_GPU_OP_TAGS: dict[str, str] = {K8S_CONFIG_TAG: json.dumps(K8S_GPU_CONFIG, sort_keys=True)}
