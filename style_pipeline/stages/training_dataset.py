"""Stage ``training_dataset``: the image + caption folder of the day's caption window."""

from __future__ import annotations

import polars as pl

from style_pipeline.contracts.training import (
    DatasetBuildConfig,
    TrainingDatasetDocument,
    TrainingSettings,
)
from style_pipeline.stages import FactValue
from style_pipeline.storage.store import Store
from style_pipeline.training.dataset import DatasetItem, build_training_dataset, manifest_key
from style_pipeline.training.presets import load_preset


def dataset_items(captions: dict[str, pl.DataFrame]) -> list[DatasetItem]:
    """Image + caption pairs (+ the characters the caption names) from the captions of every
    partition in the window; a table written before characters has no ``characters``."""
    items = []
    for _partition, table in sorted(captions.items()):
        for row in table.iter_rows(named=True):
            named = tuple(row.get("characters") or ())
            items.append(DatasetItem(row["path"], row["caption"], row["frame_id"], named))
    return items


def build_dataset(
    captions: dict[str, pl.DataFrame],
    store: Store,
    partition: str,
    settings: TrainingSettings,
) -> tuple[TrainingDatasetDocument, dict[str, FactValue]]:
    """Write ``training_dataset/<partition>/``; return its summary document and facts."""
    items = dataset_items(captions)
    if not items:
        raise ValueError(
            f"no captioned frames in the {settings.window_days} day(s) up to {partition}: "
            "nothing to train on"
        )
    config = DatasetBuildConfig(
        resolution=load_preset(settings.preset).resolution,
        concept=settings.concept,
        layout=settings.dataset.layout,
        max_repeats=settings.dataset.max_repeats,
    )
    result = build_training_dataset(items, store, partition, config)
    document = TrainingDatasetDocument(
        prefix=result.prefix,
        dataset_hash=result.dataset_hash,
        images=result.manifest["count"],
        buckets=result.manifest["buckets"],
        skipped=result.skipped,
        partitions=sorted(captions),
        manifest=manifest_key(partition),
        layout=config.layout,
        concepts=result.manifest["concepts"],
    )
    facts: dict[str, FactValue] = {
        "images": document.images,
        "partitions_in_window": len(document.partitions),
        "dataset_hash": document.dataset_hash,
        "buckets": document.buckets,
        "skipped": len(document.skipped),
        "folder": document.prefix,
        "layout": document.layout,
        "concepts": document.concepts,
        "stale_files_removed": len(result.removed),
    }
    return document, facts
