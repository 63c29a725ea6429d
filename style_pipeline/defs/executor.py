"""The executor of every job in the code location (``executor:`` settings, ADR 0006).

A run launched by the daemon, the UI or ``dagster job execute`` runs each step in its
own process. Dagster's default starts each with ``spawn`` (a fresh interpreter that
imports dagster, torch and the whole ``defs/`` folder again: seconds per step); here the
steps fork from one ``forkserver`` per run that has preloaded ``style_pipeline.warm_start``
(the heavy libraries and the built definitions). In-process materializations
(``style-pipeline materialize``, ``dg.materialize`` in tests) do not use it.

On Kubernetes (``executor.kind: k8s_job``, set by ``deploy/helm/values.yaml`` through
``STYLE_PIPELINE_EXECUTOR__KIND``) each step runs as its own Kubernetes Job instead, placed
by its op tags (``defs/placement.py``); ``dagster_k8s`` is imported only then.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

import dagster as dg

from style_pipeline.contracts.orchestration import ExecutorSettings
from style_pipeline.settings import load_settings

EXECUTOR_NAME = "style_pipeline_multiprocess"
K8S_EXECUTOR_NAME = "style_pipeline_k8s_job"
WARM_START_MODULE = "style_pipeline.warm_start"


def step_executor(settings: ExecutorSettings) -> dg.ExecutorDefinition:
    """The executor ``settings`` ask for; forkserver falls back to spawn where absent."""
    if settings.kind == "in_process":
        return dg.in_process_executor
    if settings.kind == "k8s_job":
        return k8s_step_executor(settings)
    start_method: dict[str, Any] = {"spawn": {}}
    if settings.start_method == "forkserver" and (
        "forkserver" in multiprocessing.get_all_start_methods()
    ):
        start_method = {"forkserver": {"preload_modules": [WARM_START_MODULE]}}
    config: dict[str, Any] = {"start_method": start_method}
    if settings.max_concurrent:
        config["max_concurrent"] = settings.max_concurrent
    return dg.multiprocess_executor.configured(config, name=EXECUTOR_NAME)


def k8s_step_executor(settings: ExecutorSettings) -> dg.ExecutorDefinition:
    """One Kubernetes Job per step (``dagster_k8s.k8s_job_executor``).

    Image, namespace, env secrets, volumes and the cluster config come from the run's
    ``K8sRunLauncher`` and the code location (the Helm chart's user deployment), so only
    the pods per run are set here; a step's own ``dagster-k8s/config`` op tag (e.g.
    ``K8S_GPU_OP_TAGS`` on ``lora_weights`` and ``llm_adapter``) is merged into its pod by
    the executor.
    """
    from dagster_k8s import k8s_job_executor  # the Kubernetes client: only when asked for

    config: dict[str, Any] = {}
    if settings.max_concurrent:
        config["max_concurrent"] = settings.max_concurrent
    return k8s_job_executor.configured(config, name=K8S_EXECUTOR_NAME)


@dg.definitions
def executor_defs() -> dg.Definitions:
    return dg.Definitions(executor=step_executor(load_settings().executor))
