"""Partition-level training steps used by the training assets (no Dagster)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image

from style_pipeline.contracts.models import ModelConfig
from style_pipeline.contracts.training import (
    DatasetBuildConfig,
    TrainingSettings,
)
from style_pipeline.curation.embeddings import vectors_from_frame
from style_pipeline.models.diffusion import load_pipeline, resolve_diffusion
from style_pipeline.models.registry import load_model
from style_pipeline.paths import resolve_local
from style_pipeline.storage.store import Store
from style_pipeline.training.backends import ProgressCallback
from style_pipeline.training.dataset import DatasetItem, build_training_dataset, download_dataset
from style_pipeline.training.evaluation import compare, generate_samples, regressions, score_samples
from style_pipeline.training.presets import load_preset
from style_pipeline.training.reward import (
    assemble_examples,
    load_reward_model,
    read_labels,
    save_reward_model,
    train_reward_model,
)
from style_pipeline.training.trainer import WEIGHT_NAME, PublishedLora, train_and_publish


def dataset_items(captions: dict[str, pl.DataFrame]) -> list[DatasetItem]:
    """Image + caption pairs from the captions of every partition in the window."""
    items = []
    for _partition, table in sorted(captions.items()):
        for row in table.iter_rows(named=True):
            items.append(DatasetItem(row["path"], row["caption"], row["frame_id"]))
    return items


def build_dataset(
    captions: dict[str, pl.DataFrame],
    store: Store,
    partition: str,
    settings: TrainingSettings,
) -> dict:
    """Write ``training_dataset/<partition>/`` and return its manifest summary."""
    items = dataset_items(captions)
    if not items:
        raise ValueError(
            f"no captioned frames in the {settings.window_days} day(s) up to {partition}: "
            "nothing to train on"
        )
    config = DatasetBuildConfig(
        resolution=load_preset(settings.preset).resolution, concept=settings.concept
    )
    result = build_training_dataset(items, store, partition, config)
    return {
        "prefix": result.prefix,
        "dataset_hash": result.dataset_hash,
        "images": result.manifest["count"],
        "buckets": result.manifest["buckets"],
        "skipped": result.skipped,
        "partitions": sorted(captions),
        "manifest": f"{result.prefix}/manifest.json",
    }


def train_lora(
    store: Store, partition: str, settings: TrainingSettings, progress: ProgressCallback
) -> PublishedLora:
    """Download the day's dataset, resolve the base model and publish one LoRA version."""
    config = load_preset(settings.preset)
    model = resolve_diffusion(
        config.profile,
        config.pretrained,
        resolve_local(settings.model_cache_dir),
        config.seed,
        config.model_family,
    )
    with tempfile.TemporaryDirectory(prefix="dataset_") as tmp:
        dataset_dir = download_dataset(store, partition, Path(tmp) / "dataset")
        return train_and_publish(store, partition, config, dataset_dir, model, progress=progress)


def fit_reward_model(
    curated: pl.DataFrame,
    embeddings: pl.DataFrame,
    store: Store,
    partition: str,
    settings: TrainingSettings,
) -> dict:
    """Train the brand-score MLP (curated = positive, dropped = negative, labels win).

    With fewer than 2 examples of a class the model is not trained and the returned
    document says why; ``metrics`` then reports no brand score.
    """
    labels = read_labels(resolve_local(settings.labels_path)) if settings.labels_path else None
    ids = embeddings["frame_id"].to_list()
    examples = assemble_examples(
        ids,
        vectors_from_frame(embeddings),
        set(curated.filter(pl.col("keep"))["frame_id"]),
        set(curated.filter(~pl.col("keep"))["frame_id"]),
        labels,
    )
    counts = np.bincount(examples.labels, minlength=2).tolist()
    model_id = embeddings["model_id"][0] if len(embeddings) else ""
    if min(counts) < 2:
        return {
            "trained": False,
            "reason": f"need >= 2 positives and >= 2 negatives, got {counts[1]} and {counts[0]}",
            "examples": counts,
        }
    model = train_reward_model(examples, settings.reward, model_id)
    prefix = save_reward_model(model, store, partition)
    return {"trained": True, "prefix": prefix, "examples": counts, **model.info}


def evaluate_lora(
    lora: dict,
    reward: dict,
    curated: pl.DataFrame,
    store: Store,
    partition: str,
    clip: ModelConfig,
    settings: TrainingSettings,
    trigger_word: str,
    log: Callable[[str], None],
) -> dict:
    """Generate fixed prompts/seeds with the LoRA, score them and compare with the previous run."""
    config = settings.evaluation.model_copy(
        update={
            "prompts": tuple(_with_trigger(p, trigger_word) for p in settings.evaluation.prompts)
        }
    )
    pipe = load_pipeline(lora["model_path"])
    with tempfile.TemporaryDirectory(prefix="lora_eval_") as tmp:
        lora_dir = Path(tmp)
        store_prefix = lora["prefix"]
        (lora_dir / WEIGHT_NAME).write_bytes(store.read_bytes(f"{store_prefix}/{WEIGHT_NAME}"))
        samples = generate_samples(pipe, lora_dir, config)
    kept = curated.filter(pl.col("keep")).sort("frame_id").head(settings.reference_images)
    with store.local_copies(kept["path"].to_list()) as local:
        reference = [_rgb(local[p]) for p in kept["path"]]
    reward_model = load_reward_model(store, partition) if reward.get("trained") else None
    metrics = score_samples(samples, reference, load_model(clip), reward_model)
    previous = previous_metrics(store, partition)
    flags = compare(metrics, previous["metrics"] if previous else None)
    for sample in samples[:4]:
        key = f"metrics/{partition}/samples/{_slug(sample.prompt)}-{sample.seed}.png"
        store.put_bytes(_png(sample.image), key)
    log(f"metrics {json.dumps({k: v for k, v in metrics.items() if isinstance(v, float)})}")
    return {
        "lora_version": lora["version"],
        "metrics": metrics,
        "previous_partition": previous["partition"] if previous else None,
        "regressions": regressions(flags),
        "compared": [f.metric for f in flags],
    }


def previous_metrics(store: Store, partition: str) -> dict | None:
    """The newest ``metrics/<date>.json`` strictly before ``partition`` (None: first run)."""
    earlier = sorted(
        k for k in store.list("metrics") if k.endswith(".json") and k[8:18] < partition
    )
    if not earlier:
        return None
    return {"partition": earlier[-1][8:18], **json.loads(store.read_bytes(earlier[-1]))}


def _with_trigger(prompt: str, trigger: str) -> str:
    return prompt if trigger in prompt else f"{trigger}, {prompt}"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text.lower())[:40]


def _png(image: Image.Image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _rgb(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")
