"""Stage ``reward_model``: too few examples give a document that says why, with no nulls."""

import numpy as np
import polars as pl

from style_pipeline.contracts.training import TrainingSettings
from style_pipeline.stages.reward_model import fit_reward_model
from style_pipeline.storage.store import Store


def test_too_few_examples_is_not_trained(tmp_path):
    ids = ["a", "b", "c"]
    embeddings = pl.DataFrame({"frame_id": ids, "model_id": ["m"] * 3}).with_columns(
        pl.Series("embedding", np.eye(3, 4, dtype=np.float32))
    )
    curated = pl.DataFrame({"frame_id": ids, "keep": [True, True, False]})
    store = Store(tmp_path / "s")
    document, facts = fit_reward_model(curated, embeddings, store, "2026-01-01", TrainingSettings())
    assert document.trained is False and "got 2 and 1" in document.reason
    assert document.model_dump(mode="json") == {
        "trained": False,
        "reason": document.reason,
        "examples": [1, 2],
    }
    assert facts == {"trained": False, "examples": "[1, 2]"}
    assert store.list("reward_model") == []
