"""Fréchet distance between two image sets, on Inception or CLIP features.

Inception features come from torchvision's ``inception_v3`` (2048-d pool features) only when
its ImageNet weights are already on disk (the torch hub cache or an explicit file); nothing
is downloaded. Otherwise the caller's CLIP image embeddings are used and the result is
labelled ``fid_feature: clip``. Note that torchvision's weights differ from the TF-Inception
weights of the original FID, so ``inception_v3_torchvision`` numbers are comparable with
each other, not with published FIDs.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import linalg

log = logging.getLogger(__name__)
INCEPTION_FEATURE = "inception_v3_torchvision"
CLIP_FEATURE = "clip"


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (float64) of (n, d) features; needs n >= 2."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need at least 2 feature rows for FID, got shape {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrt(S1 S2)), as in pytorch-fid (with its eps offset)."""
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError("the two feature sets have different dimensions")
    diff = mu1 - mu2
    with warnings.catch_warnings():
        # Few samples give singular covariances; the eps offset below handles the fallout.
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"sqrtm has a large imaginary part: {np.abs(covmean.imag).max()}")
        covmean = covmean.real
    value = diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)
    return float(max(value, 0.0))


def fid_from_features(a: np.ndarray, b: np.ndarray) -> float:
    return frechet_distance(*feature_stats(a), *feature_stats(b))


def find_inception_weights(path: Path | None = None) -> Path | None:
    """An explicit weights file, else torchvision's file in the torch hub cache, else None."""
    if path is not None:
        if not Path(path).is_file():
            raise FileNotFoundError(f"Inception weights not found: {path}")
        return Path(path)
    from torchvision.models import Inception_V3_Weights

    name = Path(Inception_V3_Weights.IMAGENET1K_V1.url).name
    cached = Path(torch.hub.get_dir()) / "checkpoints" / name
    return cached if cached.is_file() else None


def load_inception(weights: Path) -> torch.nn.Module:
    """torchvision inception_v3 with local ImageNet weights, ``fc`` removed, in eval mode."""
    from torchvision.models import inception_v3

    model = inception_v3(weights=None, aux_logits=True, transform_input=True, init_weights=False)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    model.fc = torch.nn.Identity()
    return model.eval()


def inception_features(model: torch.nn.Module, images: Sequence[Image.Image]) -> np.ndarray:
    """(n, 2048) pool features at 299x299 with ImageNet normalisation."""
    from torchvision.transforms import functional as TF

    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    out = []
    with torch.inference_mode():
        for image in images:
            resized = image.convert("RGB").resize((299, 299), Image.Resampling.BILINEAR)
            x = TF.normalize(TF.to_tensor(resized), mean, std).unsqueeze(0)
            out.append(model(x).squeeze(0).numpy())
    return np.stack(out).astype(np.float64)


def fid_between(
    generated: Sequence[Image.Image],
    reference: Sequence[Image.Image],
    clip_features: tuple[np.ndarray, np.ndarray],
    inception_weights: Path | None = None,
) -> tuple[float, str]:
    """(FID, feature label): Inception when its weights are local, else the CLIP features given."""
    weights = find_inception_weights(inception_weights)
    if weights is None:
        log.warning("Inception weights not cached locally: FID on CLIP features (fid_feature=clip)")
        return fid_from_features(*clip_features), CLIP_FEATURE
    model = load_inception(weights)
    gen, ref = inception_features(model, generated), inception_features(model, reference)
    return fid_from_features(gen, ref), INCEPTION_FEATURE
