"""MLflow tracking of the trainings (style LoRA, LLM adapter) when ``MLFLOW_TRACKING_URI`` is set.

One run per published version: params (the training config, flattened), the loss curve
as a step series, final metrics, tags (asset, version, sha256) and small artifacts (the
adapter config, metadata). Without ``MLFLOW_TRACKING_URI`` nothing is imported and
nothing is logged. Tracking is an observer: a tracking server that fails must not fail a
training that succeeded, so its errors are logged as warnings and the run id is None.
A local file store (``file:///...``) also needs ``MLFLOW_ALLOW_FILE_STORE=true`` with
MLflow 3.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TRACKING_ENV = "MLFLOW_TRACKING_URI"
EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"
_MAX_PARAM = 500  # characters of one param value (MLflow's limit is larger; keeps the UI usable)


def tracking_enabled() -> bool:
    return bool(os.environ.get(TRACKING_ENV, "").strip())


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> ``{"a.b": "value"}`` with values cut to 500 characters."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)[:_MAX_PARAM]
    return flat


def track_training(
    experiment: str,
    run_name: str,
    params: Mapping[str, Any],
    losses: Iterable[tuple[int, float]],
    metrics: Mapping[str, float],
    tags: Mapping[str, str],
    artifacts: Iterable[Path] = (),
    warn: Callable[[str], None] | None = None,
) -> str | None:
    """Record one training in MLflow; returns the run id (None: tracking off or failed).

    ``experiment`` is used unless ``MLFLOW_EXPERIMENT_NAME`` names another one."""
    if not tracking_enabled():
        return None
    try:
        import mlflow

        mlflow.set_tracking_uri(os.environ[TRACKING_ENV])
        mlflow.set_experiment(os.environ.get(EXPERIMENT_ENV) or experiment)
        with mlflow.start_run(run_name=run_name) as run:
            mlflow.set_tags(dict(tags))
            mlflow.log_params(flatten(params))
            for step, loss in losses:
                mlflow.log_metric("train_loss", float(loss), step=int(step))
            if metrics:
                mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
            for path in artifacts:
                if path.is_file():
                    mlflow.log_artifact(str(path))
            return str(run.info.run_id)
    except Exception as err:  # noqa: BLE001 - an observer: any tracking failure is a warning
        message = f"MLflow tracking of {run_name} failed: {err!r}"
        log.warning(message)
        if warn is not None:
            warn(message)
        return None
