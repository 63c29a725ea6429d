"""Brand reward model: a small MLP over CLIP image embeddings -> brand score in [0, 1].

Positives are curated frames, negatives are dropped frames; an optional labels file
(CSV ``frame_id,label`` or JSON ``{frame_id: label}`` / ``[{"frame_id", "label"}]``)
overrides both. A stratified held-out split gives the ROC AUC reported with the model.
Saved as ``reward_model.safetensors`` (weights) + ``reward_model.json`` (shape, metrics).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from style_pipeline.contracts.training import RewardConfig
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store

WEIGHTS = "reward_model.safetensors"
INFO = "reward_model.json"
_TRUE = {"1", "true", "yes", "positive", "pos", "keep", "on_brand"}
_FALSE = {"0", "false", "no", "negative", "neg", "drop", "off_brand"}


class BrandMLP(torch.nn.Module):
    """L2-normalised embedding -> Linear -> GELU -> Dropout -> Linear -> one logit."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(dim, hidden),
            torch.nn.GELU(),
            torch.nn.Dropout(dropout),
            torch.nn.Linear(hidden, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(torch.nn.functional.normalize(x, dim=-1)).squeeze(-1)


@dataclass
class RewardExamples:
    ids: list[str]
    vectors: np.ndarray
    labels: np.ndarray


@dataclass
class RewardModel:
    """A trained (or loaded) brand model with the facts saved next to it."""

    mlp: BrandMLP
    info: dict

    def score(self, vectors: np.ndarray) -> np.ndarray:
        """Brand scores in [0, 1] for (n, dim) embeddings."""
        x = torch.as_tensor(np.asarray(vectors, dtype=np.float32))
        if x.ndim != 2 or x.shape[1] != self.info["dim"]:
            raise ValueError(f"expected (n, {self.info['dim']}) embeddings, got {tuple(x.shape)}")
        return model_scores(self.mlp, x)


def parse_label(value: object) -> int:
    text = str(value).strip().lower()
    if text in _TRUE:
        return 1
    if text in _FALSE:
        return 0
    raise ValueError(f"label {value!r} is not one of {sorted(_TRUE | _FALSE)}")


def read_labels(path: Path) -> dict[str, int]:
    """Human labels by frame id from a CSV (``frame_id,label``) or JSON file."""
    path = Path(path)
    text = path.read_text()
    if path.suffix.lower() == ".json":
        data = json.loads(text)
        rows = (
            data.items() if isinstance(data, dict) else ((r["frame_id"], r["label"]) for r in data)
        )
    elif path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or not {"frame_id", "label"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: CSV needs the columns frame_id and label")
        rows = ((r["frame_id"], r["label"]) for r in reader)
    else:
        raise ValueError(f"{path}: labels must be .csv or .json")
    return {str(frame_id): parse_label(label) for frame_id, label in rows}


def assemble_examples(
    ids: Sequence[str],
    vectors: np.ndarray,
    positive_ids: set[str],
    negative_ids: set[str],
    labels: Mapping[str, int] | None = None,
) -> RewardExamples:
    """Label every embedded frame: human label, else curated (1), else dropped (0), else unused."""
    labels = labels or {}
    keep, ys = [], []
    for index, frame_id in enumerate(ids):
        if frame_id in labels:
            label = labels[frame_id]
        elif frame_id in positive_ids:
            label = 1
        elif frame_id in negative_ids:
            label = 0
        else:
            continue
        keep.append(index)
        ys.append(label)
    vectors = np.asarray(vectors, dtype=np.float32)
    return RewardExamples([ids[i] for i in keep], vectors[keep], np.asarray(ys, dtype=np.int64))


def train_reward_model(
    examples: RewardExamples, config: RewardConfig | None = None, embedding_model: str = ""
) -> RewardModel:
    """Fit the MLP (full-batch AdamW, class-balanced BCE) and report held-out ROC AUC."""
    config = config or RewardConfig()
    y = examples.labels
    counts = np.bincount(y, minlength=2)
    if counts.min() < 2:
        raise ValueError(f"need at least 2 positives and 2 negatives, got {counts.tolist()}")
    idx_train, idx_hold = train_test_split(
        np.arange(len(y)), test_size=config.holdout, stratify=y, random_state=config.seed
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        mlp = BrandMLP(examples.vectors.shape[1], config.hidden, config.dropout)
        x = torch.as_tensor(examples.vectors)
        target = torch.as_tensor(y, dtype=torch.float32)
        pos_weight = torch.tensor(counts[0] / counts[1], dtype=torch.float32)
        loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
        optimizer = torch.optim.AdamW(
            mlp.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )
        mlp.train()
        for _ in range(config.epochs):
            loss = loss_fn(mlp(x[idx_train]), target[idx_train])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model = RewardModel(mlp, {})
    held_scores = model_scores(mlp, x[idx_hold])
    model.info = {
        "dim": int(examples.vectors.shape[1]),
        "hidden": config.hidden,
        "embedding_model": embedding_model,
        "auc": float(roc_auc_score(y[idx_hold], held_scores)),
        "train_loss": float(loss.detach()),
        "n_train": len(idx_train),
        "n_holdout": len(idx_hold),
        "n_positive": int(counts[1]),
        "n_negative": int(counts[0]),
        "config": config.model_dump(),
    }
    return model


def model_scores(mlp: BrandMLP, x: torch.Tensor) -> np.ndarray:
    """float32 scores in [0, 1]; the input is cast to the MLP's device and dtype first, so a
    half-precision MLP scores the float32 embeddings too."""
    weight = next(mlp.parameters())
    mlp.eval()
    with torch.inference_mode():
        logits = mlp(x.to(weight.device, weight.dtype))
        return torch.sigmoid(logits.float()).cpu().numpy()


def save_reward_model(model: RewardModel, store: Store, partition: str) -> str:
    """Write weights then the JSON under ``reward_model/<partition>/``; returns the prefix."""
    state = {k: v.detach().contiguous() for k, v in model.mlp.state_dict().items()}
    weights = save_safetensors(state, metadata={"format": "pt"})
    store.put_bytes(weights, layout.reward_model_file(partition, WEIGHTS))
    store.put_bytes(
        json.dumps(model.info, indent=1).encode(), layout.reward_model_file(partition, INFO)
    )
    return layout.partition_dir(layout.REWARD_MODEL, partition)


def load_reward_model(store: Store, partition: str) -> RewardModel:
    info_key = layout.reward_model_file(partition, INFO)
    if not store.exists(info_key):
        raise FileNotFoundError(
            f"no reward model at {layout.partition_dir(layout.REWARD_MODEL, partition)}"
        )
    info = json.loads(store.read_bytes(info_key))
    mlp = BrandMLP(info["dim"], info["hidden"])
    mlp.load_state_dict(
        load_safetensors(store.read_bytes(layout.reward_model_file(partition, WEIGHTS)))
    )
    mlp.eval()
    return RewardModel(mlp, info)
