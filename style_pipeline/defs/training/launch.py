"""How ``lora_weights`` starts the trainer: a Dagster Pipes client per ``training.launcher``.

The trainer (``stages.lora_weights_pipes``) runs in a child process (``subprocess``), a
container (``docker``) or a pod (``k8s``) and streams its estimate, progress and final
document back as Pipes messages; this module builds the client and its arguments from the
settings and turns the messages back into the document the asset returns.

Cancelling the run: the step process gets an interrupt; PipesSubprocessClient forwards
SIGINT to the trainer and waits ``termination_grace_s``; whatever of the trainer is still
alive then is killed here. PipesDockerClient stops the container (SIGTERM, then SIGKILL
after Docker's 10 s) and PipesK8sClient deletes the pod.
"""

from __future__ import annotations

import fnmatch
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from style_pipeline.contracts.training import LoraWeightsDocument, TrainerLaunchSettings
from style_pipeline.processes import descendants
from style_pipeline.stages.lora_weights_pipes import MODULE

COMMAND = ["python", "-m", MODULE]


@dataclass(frozen=True)
class PipesLaunch:
    """A Pipes client and the keyword arguments of its ``run`` (less context and extras)."""

    client: Any
    run_kwargs: dict[str, Any] = field(default_factory=dict)


def passed_env(patterns: list[str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables of ``environ`` whose names match one of ``patterns`` (``AWS_*``)."""
    environ = os.environ if environ is None else environ
    return {k: v for k, v in environ.items() if any(fnmatch.fnmatchcase(k, p) for p in patterns)}


def _image(settings: TrainerLaunchSettings, environ: Mapping[str, str]) -> str:
    image = settings.image or environ.get("DAGSTER_CURRENT_IMAGE")
    if not image:
        raise dg.Failure(
            f"training.launcher.kind is {settings.kind!r} but no image is set: set "
            "training.launcher.image (or run under a launcher that sets DAGSTER_CURRENT_IMAGE)"
        )
    return image


def build_launch(
    settings: TrainerLaunchSettings, environ: Mapping[str, str] | None = None
) -> PipesLaunch:
    """The client for ``settings.kind`` (subprocess, docker or k8s) and its run arguments."""
    environ = os.environ if environ is None else environ
    if settings.kind == "subprocess":
        # sys.executable, not "python": the child must see this environment's packages.
        client = dg.PipesSubprocessClient(
            forward_termination=True, termination_timeout_seconds=settings.termination_grace_s
        )
        return PipesLaunch(client, {"command": [sys.executable, "-m", MODULE]})
    env = passed_env(settings.env, environ)
    image = _image(settings, environ)
    if settings.kind == "docker":
        from dagster_docker import PipesDockerClient

        container_kwargs: dict[str, Any] = {}
        if settings.docker_network:
            container_kwargs["network"] = settings.docker_network
        if settings.docker_volumes:
            container_kwargs["volumes"] = list(settings.docker_volumes)
        if settings.gpus:
            import docker.types

            container_kwargs["device_requests"] = [
                docker.types.DeviceRequest(count=settings.gpus, capabilities=[["gpu"]])
            ]
        return PipesLaunch(
            PipesDockerClient(),
            {
                "image": image,
                "command": COMMAND,
                "env": env,
                "container_kwargs": container_kwargs,
            },
        )
    if settings.kind == "k8s":
        from dagster_k8s import PipesK8sClient

        container: dict[str, Any] = {"name": "trainer"}
        pod_spec: dict[str, Any] = {"restart_policy": "Never", "containers": [container]}
        if settings.gpus:
            container["resources"] = {"limits": {"nvidia.com/gpu": str(settings.gpus)}}
            pod_spec["tolerations"] = [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
            ]
        if settings.k8s_node_selector:
            pod_spec["node_selector"] = dict(settings.k8s_node_selector)
        return PipesLaunch(
            PipesK8sClient(),
            {
                "image": image,
                "command": COMMAND,
                "namespace": settings.k8s_namespace,
                "env": env,
                "base_pod_spec": pod_spec,
            },
        )
    raise ValueError(f"no Pipes client for training.launcher.kind {settings.kind!r}")


def _kill_trainers(parent_pid: int) -> list[int]:
    """SIGKILL every descendant of ``parent_pid`` still running the trainer module."""
    killed = []
    for pid in descendants(parent_pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if MODULE in cmdline:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
    return killed


@dataclass(frozen=True)
class TrainerReport:
    document: LoraWeightsDocument
    metadata: dict[str, Any]
    progress: list[dict[str, Any]]


def run_trainer(
    context: dg.AssetExecutionContext, launch: PipesLaunch, extras: dict[str, Any]
) -> TrainerReport:
    """Run the trainer through ``launch``; the document and metadata it reported."""
    try:
        invocation = launch.client.run(context=context, extras=extras, **launch.run_kwargs)
    except BaseException:
        # A cancel that outlived the grace period (TimeoutExpired) or any other way out:
        # no trainer of this step may survive it, holding the GPU or writing a version.
        killed = _kill_trainers(os.getpid())
        if killed:
            context.log.warning(f"killed trainer process(es) {killed} still running")
        raise
    messages = invocation.get_custom_messages()
    documents = [m["document"] for m in messages if m.get("kind") == "document"]
    if len(documents) != 1:
        raise dg.Failure(f"the trainer reported {len(documents)} documents, expected 1")
    materialization = invocation.get_materialize_result()
    progress = [m for m in messages if m.get("kind") == "progress"]
    metadata: dict[str, Any] = dict(materialization.metadata or {})
    metadata["progress_reports"] = len(progress)
    if progress:  # the trainer's first ETA, beside the measured "seconds" to judge it by
        metadata["eta_at_step_1_s"] = float(progress[0]["eta_s"])
    return TrainerReport(
        document=LoraWeightsDocument.model_validate(documents[0]),
        metadata=metadata,
        progress=progress,
    )
