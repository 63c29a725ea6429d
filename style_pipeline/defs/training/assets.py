"""Training group: dataset folder, reward model, nightly LoRA and its evaluation."""

import time

import dagster as dg
import polars as pl

from style_pipeline.defs.partitions import DAILY_PARTITIONS
from style_pipeline.defs.resources import SettingsResource, StorageResource
from style_pipeline.settings import load_settings
from style_pipeline.training import steps

TRAINING = dict(partitions_def=DAILY_PARTITIONS, group_name="training", code_version="1")
WINDOW = load_settings().training.window_days


def _elapsed(started: float) -> float:
    return round(time.perf_counter() - started, 3)


@dg.asset(
    **TRAINING,
    kinds={"json"},
    io_manager_key="json_io_manager",
    ins={
        "captions": dg.AssetIn(
            partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-(WINDOW - 1)),
            metadata={"allow_missing_partitions": True},
        )
    },
    deps=["curated_frames"],  # its blocking min_curated_count check gates training
)
def training_dataset(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    captions: dict[str, pl.DataFrame],
) -> dg.Output[dict]:
    """Image + .txt folder (kohya / diffusers), metadata.jsonl and a sha256 manifest."""
    started = time.perf_counter()
    summary = steps.build_dataset(
        captions, storage.store(), context.partition_key, settings.load().training
    )
    for item in summary["skipped"]:
        context.log.warning(f"skipped {item}")
    return dg.Output(
        summary,
        metadata={
            "images": summary["images"],
            "partitions_in_window": len(summary["partitions"]),
            "dataset_hash": summary["dataset_hash"],
            "buckets": summary["buckets"],
            "skipped": len(summary["skipped"]),
            "folder": summary["prefix"],
            "seconds": _elapsed(started),
        },
    )


@dg.asset(**TRAINING, kinds={"pytorch", "json"}, io_manager_key="json_io_manager")
def reward_model(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    curated_frames: pl.DataFrame,
    embeddings: pl.DataFrame,
) -> dg.Output[dict]:
    """Small MLP over CLIP embeddings -> brand score in [0, 1], with held-out AUC."""
    started = time.perf_counter()
    info = steps.fit_reward_model(
        curated_frames, embeddings, storage.store(), context.partition_key,
        settings.load().training,
    )  # fmt: skip
    if not info["trained"]:
        context.log.warning(f"reward model not trained: {info['reason']}")
    metadata = {"trained": info["trained"], "examples": str(info["examples"])}
    if info["trained"]:
        metadata["holdout_auc"] = float(info["auc"]) if info.get("auc") is not None else 0.0
    return dg.Output(info, metadata={**metadata, "seconds": _elapsed(started)})


@dg.asset(
    **TRAINING,
    kinds={"diffusers", "safetensors"},
    io_manager_key="json_io_manager",
    pool="training",
)
def lora_weights(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    training_dataset: dict,
) -> dg.Output[dict]:
    """Style LoRA (diffusers + PEFT, safetensors) trained on the day's dataset window."""
    started = time.perf_counter()
    last: dict = {}

    def progress(p) -> None:
        last.update(step=p.step, loss=p.loss)
        if p.step == 1 or p.step == p.total_steps or p.step % 25 == 0:
            context.log.info(str(p))

    published = steps.train_lora(
        storage.store(), context.partition_key, settings.load().training, progress
    )
    meta = published.metadata
    if meta.get("model_profile") == "tiny":
        context.log.warning(f"TRAINED ON THE TINY MODEL: {meta.get('model_profile_reason')}")
    return dg.Output(
        {"prefix": published.prefix, "pruned": list(published.pruned), **meta},
        metadata={
            "version": published.version,
            "sha256": meta["sha256"],
            "dataset_hash": meta["dataset_hash"],
            "config_hash": meta["config_hash"],
            "seed": meta["seed"],
            "steps": last.get("step", 0),
            "final_loss": float(last.get("loss", float("nan"))),
            "model_profile": meta.get("model_profile", ""),
            "estimate": str(meta.get("estimate", "")),
            "pruned": ", ".join(published.pruned) or "-",
            "seconds": _elapsed(started),
        },
    )


@dg.asset(
    **TRAINING,
    kinds={"diffusers", "json"},
    io_manager_key="json_io_manager",
    check_specs=[
        dg.AssetCheckSpec(
            "no_regression",
            asset="metrics",
            blocking=True,
            description="no metric worse than the previous run beyond its tolerance",
        )
    ],
)
def metrics(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    lora_weights: dict,
    reward_model: dict,
    curated_frames: pl.DataFrame,
):
    """CLIP score, brand score, aesthetic proxy and FID of samples; regression vs previous."""
    started = time.perf_counter()
    cfg = settings.load()
    report = steps.evaluate_lora(
        lora_weights, reward_model, curated_frames, storage.store(), context.partition_key,
        cfg.curation.clip, cfg.training, cfg.captioning.caption.trigger_word, context.log.info,
    )  # fmt: skip
    numbers = {k: v for k, v in report["metrics"].items() if isinstance(v, int | float)}
    yield dg.Output(
        report,
        metadata={
            **numbers,
            "fid_feature": str(report["metrics"].get("fid_feature", "")),
            "previous_partition": report["previous_partition"] or "-",
            "regressions": len(report["regressions"]),
            "seconds": _elapsed(started),
        },
    )
    yield dg.AssetCheckResult(
        check_name="no_regression",
        passed=not report["regressions"],
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"regressions": str(report["regressions"]), "compared": str(report["compared"])},
    )
