"""``TaggedDockerRunLauncher``: Dagster's ``DockerRunLauncher`` plus per-job container settings.

The stock launcher builds a run's container from the instance's config and the code
location's container context only; a job cannot ask for more.
Training needs the GPUs and the other jobs do not, so this launcher also reads the run tag
``style_pipeline.defs.placement.DOCKER_CONTAINER_CONTEXT_TAG`` (JSON, the schema of the
launcher's own ``container_kwargs`` / ``env_vars`` / ``networks``) and merges it last, the
way Dagster merges a code location's context: ``container_kwargs`` key by key, lists
appended. Every use of the context (launch, resume, health check, terminate) goes through
``get_container_context``, so they all see the same container.

Named by ``docker/dagster.yaml``; the daemon and the webserver import it, so their image
holds this package. Nothing else in the package imports it (it pulls in the docker client).
"""

from __future__ import annotations

import json

import dagster as dg
from dagster_docker import DockerRunLauncher
from dagster_docker.container_context import DockerContainerContext

from style_pipeline.defs.placement import DOCKER_CONTAINER_CONTEXT_TAG


def tagged_container_context(tags: dict[str, str] | None) -> DockerContainerContext | None:
    """The container context a run's tags ask for; None when they ask for none.

    Raises ``ValueError`` for a tag that is not a JSON object, and Dagster's config error
    for one that does not match the Docker container-context schema, so a wrong tag fails
    the launch with its reason instead of starting a container without the GPUs.
    """
    raw = (tags or {}).get(DOCKER_CONTAINER_CONTEXT_TAG)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"run tag {DOCKER_CONTAINER_CONTEXT_TAG} is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ValueError(
            f"run tag {DOCKER_CONTAINER_CONTEXT_TAG} must be a JSON object, got {raw!r}"
        )
    return DockerContainerContext.create_from_config({"docker": value})


class TaggedDockerRunLauncher(DockerRunLauncher):
    """Launches each run in a container; a run's placement tag adds to the container."""

    def get_container_context(self, dagster_run: dg.DagsterRun) -> DockerContainerContext:
        context = super().get_container_context(dagster_run)
        tagged = tagged_container_context(dict(dagster_run.tags))
        return context if tagged is None else context.merge(tagged)
