"""The executor of every job in the code location (``executor:`` settings, ADR 0006).

A run launched by the daemon, the UI or ``dagster job execute`` runs each step in its
own process. Dagster's default starts each with ``spawn`` (a fresh interpreter that
imports dagster, torch and the whole ``defs/`` folder again: seconds per step); here the
steps fork from one ``forkserver`` per run that has preloaded ``style_pipeline.warm_start``
(the heavy libraries and the built definitions). In-process materializations
(``style-pipeline materialize``, ``dg.materialize`` in tests) do not use it.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

import dagster as dg

from style_pipeline.contracts.orchestration import ExecutorSettings
from style_pipeline.settings import load_settings

EXECUTOR_NAME = "style_pipeline_multiprocess"
WARM_START_MODULE = "style_pipeline.warm_start"


def step_executor(settings: ExecutorSettings) -> dg.ExecutorDefinition:
    """The executor ``settings`` ask for; forkserver falls back to spawn where absent."""
    if settings.kind == "in_process":
        return dg.in_process_executor
    start_method: dict[str, Any] = {"spawn": {}}
    if settings.start_method == "forkserver" and (
        "forkserver" in multiprocessing.get_all_start_methods()
    ):
        start_method = {"forkserver": {"preload_modules": [WARM_START_MODULE]}}
    config: dict[str, Any] = {"start_method": start_method}
    if settings.max_concurrent:
        config["max_concurrent"] = settings.max_concurrent
    return dg.multiprocess_executor.configured(config, name=EXECUTOR_NAME)


@dg.definitions
def executor_defs() -> dg.Definitions:
    return dg.Definitions(executor=step_executor(load_settings().executor))
