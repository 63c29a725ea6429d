"""Stage ``lora_weights``: one style LoRA trained on the day's dataset and published as a
new ``lora_weights/<version>/`` (old versions pruned), with its loss curve and validation
grid beside the weights (:func:`report_pictures` copies them where the web app serves
pictures to the Dagster UI)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from style_pipeline.contracts.training import LoraWeightsDocument, TrainingSettings
from style_pipeline.stages import FactValue
from style_pipeline.stages.tracking import track_training
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline.training.dataset import download_dataset
from style_pipeline.training.presets import preset_base_model
from style_pipeline.training.remote.factory import training_backend
from style_pipeline.training.train_loop import ProgressCallback
from style_pipeline.training.trainer import train_and_publish


def train_lora(
    store: Store,
    partition: str,
    settings: TrainingSettings,
    progress: ProgressCallback | None = None,
    log: Callable[[str], None] | None = None,
    run_id: str | None = None,
) -> tuple[LoraWeightsDocument, dict[str, FactValue]]:
    """Download the day's dataset, resolve the base model and publish one LoRA version.

    ``progress`` sees every optimisation step; ``log`` gets the VRAM/time estimate before
    training starts, then step 1, every ``settings.log_every_n_steps``-th and the last step.
    ``settings.backend`` picks where it trains: here (local), or a ComfyUI or Replicate job
    (``training.remote.jobs``: resumed by a re-run, cancelled with the run); the job's
    facts (id, remote id, status, cost, estimate vs actual) join the facts.
    """
    config, model = preset_base_model(settings)
    with tempfile.TemporaryDirectory(prefix="dataset_") as tmp:
        dataset_dir = download_dataset(store, partition, Path(tmp) / "dataset")
        backend = training_backend(settings, store, partition, Path(model.path), log, run_id)
        published = train_and_publish(
            store, partition, config, dataset_dir, model, backend=backend, progress=progress,
            log_line=log, log_every_n_steps=settings.log_every_n_steps,
        )  # fmt: skip
    document = LoraWeightsDocument(
        prefix=published.prefix, pruned=list(published.pruned), **published.metadata
    )
    facts: dict[str, FactValue] = {
        "backend": document.backend,
        "version": document.version,
        "sha256": document.sha256,
        "dataset_hash": document.dataset_hash,
        "config_hash": document.config_hash,
        "seed": document.seed,
        "model_profile": document.model_profile,
        "pruned": ", ".join(document.pruned) or "-",
        "latent_cache": _cache_fact(document.cache.get("latents", {})),
        "text_cache": _cache_fact(document.cache.get("text", {})),
        "determinism": document.determinism or "-",
    }
    facts.update(monitoring_facts(document))
    job = (document.model_extra or {}).get("job") or {}
    facts.update({k: v for k, v in job.items() if isinstance(v, str | int | float)})
    # MLflow (MLFLOW_TRACKING_URI set): the published version's config, loss curve, sha256
    run_id = track_training(
        "style_pipeline.lora_weights", document.version, document.config,
        list(enumerate(document.losses, 1)), {"final_loss": document.final_loss},
        {"asset": "lora_weights", "version": document.version, "sha256": document.sha256,
         "dataset_hash": document.dataset_hash, "model_profile": str(document.model_profile)},
        warn=log,
    )  # fmt: skip
    if run_id:
        facts["tracking_run"] = run_id
    return document, facts


def monitoring_facts(document: LoraWeightsDocument) -> dict[str, FactValue]:
    """Validation, early stop, EMA and the pictures' store keys (scalars: Pipes metadata
    carries no lists)."""
    extra = document.model_extra or {}
    facts: dict[str, FactValue] = {
        f"{name}_key": key for name, key in (extra.get("pictures") or {}).items()
    }
    points = extra.get("validation_losses") or []
    if points:
        facts["validation_loss_first"] = float(points[0][1])
        facts["validation_loss_last"] = float(points[-1][1])
        facts["validation_loss_best"] = float(extra["best_validation_loss"])
        facts["best_step"] = int(extra["best_step"])
        facts["validation_points"] = len(points)
    if extra.get("held_out"):
        facts["held_out"] = ", ".join(extra["held_out"])
    if extra.get("validation_steps"):
        facts["validation_image_steps"] = ", ".join(str(s) for s in extra["validation_steps"])
    if points or extra.get("validation_steps"):
        facts["early_stopped"] = bool(extra.get("early_stopped"))
        facts["validation_seconds"] = float(extra.get("validation_seconds") or 0.0)
    if extra.get("ema"):
        facts["ema_decay"] = float(document.config.get("ema_decay") or 0.0)
    return facts


REPORT_NAMES = {"loss_curve": "loss.png", "validation_grid": "validation_grid.png"}


def report_pictures(document: LoraWeightsDocument, store: Store, partition: str) -> dict[str, str]:
    """Copy the version's loss curve and validation grid to ``reports/lora_weights/<day>/``
    (what the web app serves to the Dagster UI); their report keys by name."""
    stored = (document.model_extra or {}).get("pictures") or {}
    out = {}
    for name, key in stored.items():
        if name in REPORT_NAMES:
            report = layout.report_key(layout.LORA_WEIGHTS, partition, REPORT_NAMES[name])
            store.put_bytes(store.read_bytes(key), report)
            out[name] = report
    return out


def _cache_fact(facts: dict) -> str:
    """'12 read, 3 encoded' (a used cache) or 'off: <reason>' for the asset's metadata."""
    if not facts.get("used"):
        return f"off: {facts.get('reason') or 'not recorded'}"
    text = f"{facts['hits']} read, {facts['misses']} encoded"
    if facts.get("unreadable"):
        text += f" ({len(facts['unreadable'])} unreadable entries rewritten)"
    return text
