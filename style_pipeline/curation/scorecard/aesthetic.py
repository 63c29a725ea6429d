"""``aesthetic``: an MLP head over CLIP image embeddings, from the best source on hand.

1. ``laion-mlp``: LAION's improved-aesthetic-predictor head (768 -> 1024 -> 128 -> 64 ->
   16 -> 1 on unit CLIP ViT-L/14 embeddings, scores about 1-10) from a local file, never
   downloaded: ``.safetensors`` or the published ``.pth`` state dict (read with
   ``torch.load(weights_only=True)``: tensors only, no code). Used when the file exists
   and the embeddings come from ``aesthetic_clip_model`` with the head's input width.
   ``aesthetic = logistic(score - 5)``: 5 is the middle of the rating scale.
2. ``reward_model:<date>``: the newest brand reward model published before the day
   (``reward_model/<date>/``) trained on the same CLIP model id; its sigmoid is in [0, 1].
3. ``clip-proxy``: CLIP-IQA-style antonym prompts, as ``training/evaluation.py`` computes
   its aesthetic proxy (softmax of 100 x cosine to "a beautiful, high quality photo" vs
   "an ugly, low quality photo"), per frame.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline.training.reward import INFO, RewardModel, load_reward_model

AESTHETIC_PROMPTS = ("a beautiful, high quality photo", "an ugly, low quality photo")


class LaionAestheticHead(torch.nn.Module):
    """The improved-aesthetic-predictor MLP (state-dict keys ``layers.{0,2,4,6,7}``)."""

    def __init__(self, dim: int = 768):
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(dim, 1024),
            torch.nn.Dropout(0.2),
            torch.nn.Linear(1024, 128),
            torch.nn.Dropout(0.2),
            torch.nn.Linear(128, 64),
            torch.nn.Dropout(0.1),
            torch.nn.Linear(64, 16),
            torch.nn.Linear(16, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).squeeze(-1)


def load_laion_head(path: Path) -> LaionAestheticHead:
    """The head from ``path`` (.safetensors or a .pth state dict); input width from weights."""
    if path.suffix == ".safetensors":
        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    if "layers.0.weight" not in state:
        raise ValueError(f"{path}: not an aesthetic-predictor state dict (no layers.0.weight)")
    head = LaionAestheticHead(int(state["layers.0.weight"].shape[1]))
    head.load_state_dict(state)
    return head.eval()


def laion_scores(head: LaionAestheticHead, vectors: np.ndarray) -> np.ndarray:
    x = torch.nn.functional.normalize(torch.as_tensor(np.asarray(vectors, np.float32)), dim=-1)
    with torch.inference_mode():
        return torch.sigmoid(head(x) - 5.0).numpy().astype(np.float64)


def newest_reward_model(store: Store, before: str, model_id: str) -> tuple[str, RewardModel] | None:
    """(date, model) of the newest reward model before ``before`` on ``model_id``, or None."""
    days = {
        day
        for key in store.list(layout.REWARD_MODEL)
        if (day := layout.partition_of(key, layout.REWARD_MODEL)) is not None and day < before
    }
    for day in sorted(days, reverse=True):
        if not store.exists(layout.reward_model_file(day, INFO)):
            continue
        model = load_reward_model(store, day)
        if model.info.get("embedding_model") == model_id:
            return day, model
    return None


def clip_proxy_scores(image_vecs: np.ndarray, prompt_vecs: np.ndarray) -> np.ndarray:
    """Per-frame softmax probability of the positive antonym prompt."""
    logits = 100.0 * np.asarray(image_vecs, np.float64) @ np.asarray(prompt_vecs, np.float64).T
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    return probs[:, 0] / probs.sum(axis=1)


@dataclass(frozen=True)
class AestheticHead:
    """The chosen source and its scorer of (n, dim) unit embeddings."""

    source: str
    score: Callable[[np.ndarray], np.ndarray]
