"""No-reference IQA through piq (BRISQUE, CLIP-IQA), only from weights already cached.

piq fetches its weights on first use. Here a metric runs only when its files are on disk
(BRISQUE: ``<torch hub dir>/checkpoints/brisque_svm_weights.pt``; CLIP-IQA:
``~/.cache/clip/RN50.pt`` and ``clipiqa_tokens.pt``), so nothing is ever downloaded;
otherwise the score is ``None`` and the status says ``"unavailable"``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from style_pipeline.contracts.curation import IqaConfig

BRISQUE_FILE = "brisque_svm_weights.pt"
CLIP_IQA_FILES = ("RN50.pt", "clipiqa_tokens.pt")
CLIP_IQA_SIZE = 224


def torch_hub_dir() -> Path:
    """``torch.hub.get_dir()``, resolved like torch does without importing it when unloaded."""
    if "torch" in sys.modules:
        import torch.hub

        return Path(torch.hub.get_dir())
    cache = os.environ.get("XDG_CACHE_HOME", os.path.join("~", ".cache"))
    home = os.environ.get("TORCH_HOME", os.path.join(cache, "torch"))
    return Path(os.path.expanduser(home)) / "hub"


def brisque_weights() -> Path:
    return torch_hub_dir() / "checkpoints" / BRISQUE_FILE


def clip_iqa_weights() -> list[Path]:
    return [Path("~/.cache/clip").expanduser() / name for name in CLIP_IQA_FILES]


def iqa_status(config: IqaConfig) -> dict[str, str]:
    """``{"brisque": s, "clip_iqa": s}`` with s in ``ok | unavailable | disabled``."""

    def status(enabled: bool, files: list[Path]) -> str:
        if not enabled:
            return "disabled"
        return "ok" if all(f.is_file() for f in files) else "unavailable"

    return {
        "brisque": status(config.brisque, [brisque_weights()]),
        "clip_iqa": status(config.clip_iqa, clip_iqa_weights()),
    }


class IqaScorer:
    """BRISQUE (lower is better, ~0-100) and CLIP-IQA (0-1, higher is better) per image."""

    def __init__(self, config: IqaConfig):
        self.status = iqa_status(config)
        self._clip_iqa = None

    def score(self, rgb: np.ndarray) -> tuple[float | None, float | None]:
        """Scores of an RGB float image in [0, 1]; ``None`` for each unavailable metric."""
        if "ok" not in self.status.values():
            return None, None
        import torch

        x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].float()
        brisque = clip_iqa = None
        with torch.inference_mode():
            if self.status["brisque"] == "ok":
                import piq

                brisque = float(piq.brisque(x, data_range=1.0, reduction="none")[0])
            if self.status["clip_iqa"] == "ok":
                small = torch.nn.functional.interpolate(
                    x, size=(CLIP_IQA_SIZE, CLIP_IQA_SIZE), mode="bilinear", antialias=True
                )
                clip_iqa = float(self._clip_model()(small.clamp(0, 1))[0])
        return brisque, clip_iqa

    def _clip_model(self):
        if self._clip_iqa is None:
            import piq

            self._clip_iqa = piq.CLIPIQA(data_range=1.0).eval()
        return self._clip_iqa
