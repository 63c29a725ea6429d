"""Brand reward model: labels, a separable toy set, save/load through the Store."""

from __future__ import annotations

import json

import numpy as np
import pytest

from style_pipeline.contracts.training import RewardConfig
from style_pipeline.storage.store import Store
from style_pipeline.training.reward import (
    assemble_examples,
    load_reward_model,
    parse_label,
    read_labels,
    save_reward_model,
    train_reward_model,
)


def _toy(n: int = 80, dim: int = 32, seed: int = 0):
    """Two clusters on the unit sphere: positives around +e0, negatives around -e0."""
    rng = np.random.default_rng(seed)
    centre = np.zeros(dim, dtype=np.float32)
    centre[0] = 3.0
    pos = rng.normal(size=(n // 2, dim)).astype(np.float32) + centre
    neg = rng.normal(size=(n // 2, dim)).astype(np.float32) - centre
    ids = [f"p{i}" for i in range(n // 2)] + [f"n{i}" for i in range(n // 2)]
    return ids, np.vstack([pos, neg])


@pytest.mark.parametrize(
    ("value", "label"), [("1", 1), ("positive", 1), (True, 1), ("0", 0), ("drop", 0), (" No ", 0)]
)
def test_parse_label(value, label):
    assert parse_label(value) == label


def test_parse_label_rejects_unknown():
    with pytest.raises(ValueError, match="not one of"):
        parse_label("maybe")


def test_read_labels_csv_and_json(tmp_path):
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("frame_id,label\na,1\nb,negative\n")
    assert read_labels(csv_path) == {"a": 1, "b": 0}
    json_path = tmp_path / "labels.json"
    json_path.write_text(json.dumps([{"frame_id": "c", "label": "pos"}]))
    assert read_labels(json_path) == {"c": 1}
    (tmp_path / "map.json").write_text(json.dumps({"d": 0}))
    assert read_labels(tmp_path / "map.json") == {"d": 0}
    (tmp_path / "bad.csv").write_text("id,lab\nx,1\n")
    with pytest.raises(ValueError, match="columns"):
        read_labels(tmp_path / "bad.csv")


def test_assemble_examples_label_precedence():
    ids = ["a", "b", "c", "d"]
    vectors = np.eye(4, dtype=np.float32)
    examples = assemble_examples(ids, vectors, {"a", "b"}, {"c"}, labels={"b": 0, "d": 1})
    assert examples.ids == ["a", "b", "c", "d"]
    assert examples.labels.tolist() == [1, 0, 0, 1]
    unlabeled = assemble_examples(ids, vectors, {"a"}, {"c"})
    assert unlabeled.ids == ["a", "c"] and unlabeled.vectors.shape == (2, 4)


def test_learns_separable_toy_set_and_roundtrips(tmp_path):
    ids, vectors = _toy()
    positives = {i for i in ids if i.startswith("p")}
    negatives = set(ids) - positives
    examples = assemble_examples(ids, vectors, positives, negatives)
    model = train_reward_model(
        examples, RewardConfig(epochs=150, hidden=32, learning_rate=1e-2), "tiny-clip@x"
    )
    assert model.info["auc"] > 0.9
    assert model.info["n_holdout"] == 20 and model.info["n_positive"] == 40
    scores = model.score(vectors)
    assert ((scores >= 0) & (scores <= 1)).all()
    assert scores[:40].mean() > 0.8 > 0.2 > scores[40:].mean()

    store = Store(tmp_path / "store")
    prefix = save_reward_model(model, store, "2026-03-01")
    assert store.exists(f"{prefix}/reward_model.safetensors")
    loaded = load_reward_model(store, "2026-03-01")
    assert loaded.info["embedding_model"] == "tiny-clip@x"
    np.testing.assert_allclose(loaded.score(vectors), scores, rtol=1e-6)
    with pytest.raises(ValueError, match="embeddings"):
        loaded.score(vectors[:, :8])
    with pytest.raises(FileNotFoundError):
        load_reward_model(store, "2026-03-02")


def test_training_is_deterministic():
    ids, vectors = _toy(seed=3)
    examples = assemble_examples(ids, vectors, set(ids[:40]), set(ids[40:]))
    a = train_reward_model(examples, RewardConfig(epochs=20, hidden=16))
    b = train_reward_model(examples, RewardConfig(epochs=20, hidden=16))
    np.testing.assert_array_equal(a.score(vectors), b.score(vectors))


def test_needs_both_classes():
    ids, vectors = _toy(n=10)
    examples = assemble_examples(ids, vectors, set(ids), set())
    with pytest.raises(ValueError, match="at least 2 positives and 2 negatives"):
        train_reward_model(examples)
