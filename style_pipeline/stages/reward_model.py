"""Stage ``reward_model``: the brand-score MLP over CLIP embeddings (curated = positive,
dropped = negative, human labels win), or the reason none was trained."""

from __future__ import annotations

import numpy as np
import polars as pl

from style_pipeline.contracts.training import RewardModelDocument, TrainingSettings
from style_pipeline.curation.embeddings import vectors_from_frame
from style_pipeline.paths import resolve_local
from style_pipeline.stages import FactValue
from style_pipeline.storage.store import Store
from style_pipeline.training.reward import (
    assemble_examples,
    read_labels,
    save_reward_model,
    train_reward_model,
)


def fit_reward_model(
    curated: pl.DataFrame,
    embeddings: pl.DataFrame,
    store: Store,
    partition: str,
    settings: TrainingSettings,
) -> tuple[RewardModelDocument, dict[str, FactValue]]:
    """Train the brand-score MLP and save it under ``reward_model/<partition>/``.

    With fewer than 2 examples of a class the model is not trained and the document
    says why; ``metrics`` then reports no brand score.
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
        document = RewardModelDocument(
            trained=False,
            reason=f"need >= 2 positives and >= 2 negatives, got {counts[1]} and {counts[0]}",
            examples=counts,
        )
    else:
        model = train_reward_model(examples, settings.reward, model_id)
        prefix = save_reward_model(model, store, partition)
        document = RewardModelDocument(trained=True, prefix=prefix, examples=counts, **model.info)
    facts: dict[str, FactValue] = {"trained": document.trained, "examples": str(document.examples)}
    if document.trained:
        facts["holdout_auc"] = float(document.auc) if document.auc is not None else 0.0
    return document, facts
