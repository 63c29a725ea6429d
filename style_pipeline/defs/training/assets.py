"""Training group: dataset folder, reward model, nightly LoRA, its evaluation and promotion.

Stages are imported inside each asset: loading the code location (the webserver,
the daemon, every step's subprocess) then imports no model library, and a step pays
only for the libraries of its own stage.
"""

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import dagster as dg
import polars as pl

from style_pipeline.contracts.training import (
    LoraWeightsDocument,
    PromotedLoraDocument,
    RewardModelDocument,
)
from style_pipeline.defs.metadata import (
    loss_metadata,
    picture_url,
    samples_metadata,
    series_table,
)
from style_pipeline.defs.ownership import group_options
from style_pipeline.defs.partitions import DAILY_PARTITIONS, MAY_BE_MISSING
from style_pipeline.defs.placement import K8S_GPU_OP_TAGS
from style_pipeline.defs.resources import SettingsResource, StorageResource
from style_pipeline.settings import Settings, load_settings
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store

TRAINING = group_options("training")
# The caption window is part of the asset graph (a partition mapping), and Dagster builds
# the graph before any run has a SettingsResource: so this one value is read when the
# definitions load, through the same load_settings a run uses (it honours
# STYLE_PIPELINE_CONFIG). Nothing else reads config at import time.
WINDOW = load_settings().training.window_days
# metrics and promoted_lora are rebuilt by nightly_training every day at 02:00 UTC: warn
# when the newest materialization is older than a day and two hours, fail after 30 hours.
NIGHTLY_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=dt.timedelta(hours=30), warn_window=dt.timedelta(hours=26)
)


def _elapsed(started: float) -> float:
    return round(time.perf_counter() - started, 3)


@dg.asset(
    **TRAINING,
    kinds={"json"},
    io_manager_key="json_io_manager",
    ins={
        "captions": dg.AssetIn(
            partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-(WINDOW - 1)),
            metadata=MAY_BE_MISSING,
        )
    },
    deps=[
        "curated_frames",  # its blocking min_curated_count check gates training
        # the face boxes of the window's frames, read by the stage only for loss masks
        # (training.dataset.masks: faces): a dep, not an input, so that a night without
        # masks loads nothing and logs no missing day of it
        dg.AssetDep(
            "faces",
            partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-(WINDOW - 1)),
        ),
    ],
    output_required=False,  # an empty window: no dataset, and no training that night
)
def training_dataset(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    captions: Any,  # dict[str, pl.DataFrame]; one DataFrame when the window is one day
):
    """Image + .txt folder (kohya / diffusers), metadata.jsonl and a sha256 manifest."""
    # Built from the captions of the last ``training.window_days`` days. Days of the window
    # without captions (a first day: all but one) are skipped, and Dagster's UPathIOManager
    # logs one warning for each (worded by storage/io_managers.py: "no stored <day> for this
    # window input ... left out"): expected, not an error (Dagster offers no public switch
    # to lower its level). The docstring stays one line: it is the asset's description.
    from style_pipeline.stages.training_dataset import build_dataset

    started = time.perf_counter()
    tables = window_tables(context, captions)
    if not any(len(table) for table in tables.values()):
        # Nothing captioned in the whole window (quiet days only): nothing to train on.
        # No output: lora_weights, metrics and promoted_lora are skipped, the run succeeds.
        context.log.warning(
            f"training skipped for {context.partition_key}: no captions in the "
            f"{WINDOW}-day window (days with captions: none of {sorted(tables) or 'none'})"
        )
        return
    document, facts = build_dataset(
        tables,
        storage.store(),
        context.partition_key,
        settings.load().training,
    )
    for item in document.skipped:
        context.log.warning(f"skipped {item}")
    report = dg.MetadataValue.md(str(facts.pop("bucket_report")))
    yield dg.Output(
        document, metadata={**facts, "bucket_report": report, "seconds": _elapsed(started)}
    )


def window_tables(context: dg.AssetExecutionContext, captions: Any) -> dict[str, pl.DataFrame]:
    """The window's captions by partition.

    Dagster's UPathIOManager hands a multi-partition input over as a dict, but a window
    that holds one partition (the first day after the partitions' start date) as the bare
    table: both become ``{partition: table}``.
    """
    if isinstance(captions, dict):
        return captions
    if captions is None:  # a one-day window whose day was never captioned
        return {}
    if isinstance(captions, pl.DataFrame):
        (key,) = context.asset_partition_keys_for_input("captions")
        return {key: captions}
    raise TypeError(f"captions: expected a table or tables by partition, got {type(captions)}")


# A quiet day (no drops) has no curated_frames or embeddings of its own (None here).


@dg.asset(
    **TRAINING,
    kinds={"pytorch", "json"},
    io_manager_key="json_io_manager",
    ins={
        "curated_frames": dg.AssetIn(metadata=MAY_BE_MISSING),
        "embeddings": dg.AssetIn(metadata=MAY_BE_MISSING),
    },
)
def reward_model(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    curated_frames: pl.DataFrame | None,
    embeddings: pl.DataFrame | None,
) -> dg.Output[RewardModelDocument]:
    """Small MLP over CLIP embeddings -> brand score in [0, 1], with held-out AUC."""
    from style_pipeline.stages.reward_model import fit_reward_model

    started = time.perf_counter()
    if curated_frames is None or embeddings is None:
        reason = f"no curated frames or embeddings on {context.partition_key} (a quiet day)"
        context.log.warning(f"reward model not trained: {reason}")
        document = RewardModelDocument(trained=False, reason=reason, examples=[0, 0])
        return dg.Output(document, metadata={"trained": False, "seconds": _elapsed(started)})
    document, facts = fit_reward_model(
        curated_frames, embeddings, storage.store(), context.partition_key,
        settings.load().training,
    )  # fmt: skip
    if not document.trained:
        context.log.warning(f"reward model not trained: {document.reason}")
    return dg.Output(document, metadata={**facts, "seconds": _elapsed(started)})


def _train_in_process(
    context: dg.AssetExecutionContext, store: Any, training: Any
) -> tuple[LoraWeightsDocument, dict]:
    """``training.launcher.kind: in_process``: train inside this step's process."""
    from style_pipeline.stages.lora_weights import train_lora

    # The estimate and every training.log_every_n_steps-th step go to the event log.
    return train_lora(store, context.partition_key, training, log=context.log.info)


@dg.asset(
    **TRAINING,
    kinds={"diffusers", "safetensors"},
    io_manager_key="json_io_manager",
    pool="training",
    op_tags=K8S_GPU_OP_TAGS,  # k8s_job_executor: this step's pod goes to a GPU node
)
def lora_weights(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    training_dataset: dict,
) -> dg.Output[LoraWeightsDocument]:
    """Style LoRA (diffusers + PEFT, safetensors) trained on the day's dataset window."""
    # The trainer runs where training.launcher says (a child process by default, a
    # container or a pod), through Dagster Pipes: its estimate and progress stream into
    # this run's log, and cancelling the run stops it.
    started = time.perf_counter()
    cfg = settings.load()
    store = storage.store()
    launcher = cfg.training.launcher
    if launcher.kind == "in_process":
        document, facts = _train_in_process(context, store, cfg.training)
    else:
        from style_pipeline.defs.training.launch import build_launch, run_trainer
        from style_pipeline.paths import resolve_root
        from style_pipeline.stages.lora_weights_pipes import extras_for

        context.log.info(f"training through Dagster Pipes ({launcher.kind})")
        extras = extras_for(context.partition_key, resolve_root(storage.root), cfg.training)
        report = run_trainer(context, build_launch(launcher), extras)
        document, facts = report.document, report.metadata
    if document.model_profile == "tiny":
        context.log.warning(f"TRAINED ON THE TINY MODEL: {document.model_profile_reason}")
    weights = store.path(layout.lora_version_file(document.version, document.weights))
    title = f"{document.version}: {document.n_images} images, {document.family}"
    pictures = monitoring_metadata(
        document, store, context.partition_key, cfg, context.log.warning
    ) or loss_metadata(  # a version stored before loss_curve.png was kept beside it
        document.losses, title, store, context.partition_key, cfg, context.log.warning
    )
    return dg.Output(
        document,
        metadata={
            **facts,
            "launcher": launcher.kind,
            "steps": document.steps,
            "final_loss": document.final_loss,
            "estimate": dg.MetadataValue.json(document.estimate),
            "weights": dg.MetadataValue.path(str(weights)),
            **pictures,
            "seconds": _elapsed(started),
        },
    )


def monitoring_metadata(
    document: LoraWeightsDocument,
    store: Store,
    partition: str,
    cfg: Settings,
    warn: Callable[[str], None],
) -> dict[str, dg.MetadataValue]:
    """The version's loss curve and validation grid (stored beside its weights) as
    markdown pictures served by the web app, their stored files' paths, and the
    step/loss tables of training and validation. Empty when the version has no curve."""
    from style_pipeline.media.pictures import thin_series
    from style_pipeline.stages.lora_weights import report_pictures

    extra = document.model_extra or {}
    stored: dict[str, str] = extra.get("pictures") or {}
    if "loss_curve" not in stored:
        return {}
    out: dict[str, dg.MetadataValue] = {
        f"{name}_file": dg.MetadataValue.path(str(store.path(key))) for name, key in stored.items()
    }
    points = [(int(s), float(v)) for s, v in extra.get("validation_losses") or []]
    out["loss_series"] = series_table(thin_series(document.losses, cfg.pictures.loss_points))
    if points:
        out["validation_losses"] = series_table(points)
    if not cfg.pictures.enabled:
        return out
    try:
        reports = report_pictures(document, store, partition)
    except (OSError, ValueError) as err:  # a picture must never fail the asset
        warn(f"loss curve / validation grid not shown: {err!r}")
        return out
    base = cfg.serving.base_url()
    url = picture_url(base, reports["loss_curve"])
    summary = f"{len(document.losses)} steps · final train loss {document.final_loss:.4f}"
    if points:
        summary += (
            f" · validation loss {points[0][1]:.4f} → {points[-1][1]:.4f}, lowest "
            f"{extra['best_validation_loss']:.4f} at step {extra['best_step']}"
        )
    if extra.get("early_stopped"):
        summary += f" · early stop: published step {extra['best_step']}"
    location = str(store.path(reports["loss_curve"]))
    out["loss_curve"] = dg.MetadataValue.md(
        f"![loss curve]({url})\n\n{summary} · [open]({url}) · `{location}`"
    )
    if "validation_grid" in reports:
        grid_url = picture_url(base, reports["validation_grid"])
        steps = ", ".join(str(s) for s in extra.get("validation_steps") or [])
        out["validation_grid"] = dg.MetadataValue.md(
            f"![validation grid]({grid_url})\n\nrows: validation prompts · columns: steps "
            f"{steps} · [open]({grid_url}) · `{store.path(reports['validation_grid'])}`"
        )
    return out


@dg.asset_check(
    asset=lora_weights,
    partitions_def=DAILY_PARTITIONS,
    pool="training",
    description="re-trains the day's LoRA version from its recorded config, dataset hash, "
    "seed and thread count and compares the weights' sha256 (training.repro_check: auto "
    "re-trains deterministic runs on this device type that took under max_train_seconds)",
)
def lora_weights_reproducible(
    context: dg.AssetCheckExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    lora_weights: dict,
) -> dg.AssetCheckResult:
    """Fails with both hashes when the re-trained weights differ; a version it cannot or
    need not re-train passes with ``re_trained: false`` and the reason; one whose dataset
    or base model changed since cannot be verified and fails with WARN severity."""
    from style_pipeline.paths import resolve_local
    from style_pipeline.stages.lora_reproduction import reproduce_version

    training = settings.load().training
    found = reproduce_version(
        storage.store(),
        lora_weights["version"],
        training.repro_check,
        resolve_local(training.model_cache_dir),
    )
    if not found.ran:
        context.log.info(f"{found.version} not re-trained: {found.reason}")
    return reproduction_result(found)


def reproduction_result(found: Any) -> dg.AssetCheckResult:
    """The check's verdict on a ``stages.lora_reproduction.Reproduction``."""
    metadata = {
        "version": found.version,
        "expected_sha256": found.expected,
        "actual_sha256": found.actual or "-",
        "re_trained": found.ran,
        "reason": found.reason,
        "seconds": found.seconds,
        **found.facts,
    }
    if not found.ran:
        return dg.AssetCheckResult(
            passed=not found.unverifiable,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"not re-trained: {found.reason}",
            metadata=metadata,
        )
    description = (
        f"re-trained {found.version}: sha256 {found.actual} matches"
        if found.matches
        else f"re-trained {found.version}: sha256 {found.actual}, published {found.expected}"
    )
    return dg.AssetCheckResult(
        passed=found.matches,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata=metadata,
    )


@dg.asset(
    **TRAINING,
    kinds={"diffusers", "json"},
    io_manager_key="json_io_manager",
    freshness_policy=NIGHTLY_FRESHNESS,
    ins={"curated_frames": dg.AssetIn(metadata=MAY_BE_MISSING)},
    check_specs=[
        dg.AssetCheckSpec(
            "no_regression",
            asset="metrics",
            blocking=True,
            partitions_def=DAILY_PARTITIONS,
            description="no metric of the day's LoRA worse than the previous run's beyond "
            "its tolerance; blocks that day's promotion when it fails",
        ),
        # On metrics, not lora_weights: a blocking check skips everything downstream of its
        # asset, and a tiny-model LoRA should still be evaluated, just never promoted.
        dg.AssetCheckSpec(
            "trained_on_real_weights",
            asset="metrics",
            blocking=True,
            partitions_def=DAILY_PARTITIONS,
            description="the day's LoRA was trained on a real base model, not the tiny "
            "random-init one (unless training.allow_tiny_promotion); blocks promotion",
        ),
    ],
)
def metrics(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    lora_weights: dict,
    reward_model: dict,
    curated_frames: pl.DataFrame | None,
):
    """CLIP score, brand score, aesthetic proxy and FID of samples; regression vs previous."""
    from style_pipeline.stages.metrics import evaluate_lora, latest_curated

    started = time.perf_counter()
    cfg = settings.load()
    if curated_frames is None:  # a quiet day: the reference set is the newest curated day
        day, curated_frames = latest_curated(storage.store(), context.partition_key)
        context.log.info(f"no curated frames on {context.partition_key}: reference from {day}")
    document, facts = evaluate_lora(
        lora_weights, reward_model, curated_frames, storage.store(), context.partition_key,
        cfg.curation.clip, cfg.training, cfg.captioning.caption.trigger_word, context.log.info,
        cfg.pictures if cfg.pictures.enabled else None,
    )  # fmt: skip
    pictures = samples_metadata(document, context.partition_key, storage.store(), cfg)
    yield dg.Output(document, metadata={**facts, **pictures, "seconds": _elapsed(started)})
    yield dg.AssetCheckResult(
        check_name="no_regression",
        passed=not document.regressions,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "regressions": str(document.regressions),
            "compared": str(document.compared),
        },
    )
    from style_pipeline.training.promotion import real_weights_verdict

    real, why = real_weights_verdict(lora_weights, cfg.training.allow_tiny_promotion)
    yield dg.AssetCheckResult(
        check_name="trained_on_real_weights",
        passed=real,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"model_profile": str(lora_weights.get("model_profile")), "reason": why},
    )


@dg.asset(
    **TRAINING,
    kinds={"json"},
    io_manager_key="json_io_manager",
    freshness_policy=NIGHTLY_FRESHNESS,
)
def promoted_lora(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    lora_weights: dict,
    metrics: dict,
) -> dg.Output[PromotedLoraDocument]:
    """Makes the day's LoRA the live one (promoted_lora/live.json) once metrics' checks pass."""
    from style_pipeline.stages.promoted_lora import promote_day

    started = time.perf_counter()
    document, facts = promote_day(
        lora_weights, metrics, storage.store(), context.partition_key, settings.load().training
    )
    context.log.info(
        f"{document.decision}: {document.version} (live: {document.live}, "
        f"before: {document.previous or 'none'})"
    )
    return dg.Output(document, metadata={**facts, "seconds": _elapsed(started)})
