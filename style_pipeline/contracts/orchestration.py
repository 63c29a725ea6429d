"""Orchestration contracts: how launched runs execute their steps (``executor:``) and the
pictures the assets put into their Dagster metadata (``pictures:``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from style_pipeline.contracts.sections import Section

# What a step needs most often and imports slowly; imported once per run by the forkserver.
DEFAULT_PRELOAD = ("polars", "PIL.Image", "cv2", "torch", "open_clip")


class ExecutorSettings(Section):
    """How a run launched by the daemon, the UI or ``dagster job`` executes its steps.

    ``multiprocess`` + ``forkserver`` (the default, ADR 0006): each step runs in its own
    process, forked from one server per run that has already imported ``preload`` and
    built the definitions, so a step starts in a fraction of a second instead of paying
    the imports again. ``spawn`` is Dagster's own default (every step imports from
    scratch); ``in_process`` runs every step in the run's process, one after another.
    In-process materializations (``style-pipeline demo|materialize``, tests) ignore this.

    ``k8s_job`` (with the Helm chart's ``K8sRunLauncher``): each step runs as its own
    Kubernetes Job (``dagster_k8s.k8s_job_executor``), so a step tagged with
    ``defs.placement.K8S_GPU_OP_TAGS`` (``lora_weights``, ``llm_adapter``) lands on a GPU
    node while the others stay on CPU nodes; ``max_concurrent`` caps the pods of one run
    (0: no cap), ``start_method`` and ``preload`` do not apply.
    """

    kind: Literal["multiprocess", "in_process", "k8s_job"] = "multiprocess"
    start_method: Literal["forkserver", "spawn"] = Field(
        "forkserver", description="forkserver where the platform has it, else spawn"
    )
    max_concurrent: int = Field(
        0, ge=0, description="steps at once per run; 0: one per CPU (k8s_job: no cap)"
    )
    preload: tuple[str, ...] = Field(
        DEFAULT_PRELOAD,
        description="modules the forkserver imports before forking steps; one that fails "
        "to import is skipped (the step imports it itself)",
    )


class PictureSettings(Section):
    """Pictures in the assets' metadata: frame strips, sample grids and loss curves.

    Images are written to storage under ``reports/`` and shown in the Dagster UI through
    ``style-pipeline serve`` (``serving.public_url``): Dagster renders markdown images
    from http(s) URLs only.
    """

    enabled: bool = True
    frames_per_strip: int = Field(8, ge=1, le=32, description="kept / dropped frames shown")
    thumbnail_edge: int = Field(160, ge=48, le=512, description="long edge of a strip tile")
    grid_edge: int = Field(128, ge=48, le=1024, description="long edge of a sample-grid cell")
    loss_points: int = Field(200, ge=10, le=5000, description="step/loss rows kept in metadata")
