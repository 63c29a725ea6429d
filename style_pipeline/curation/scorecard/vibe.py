"""``vibe``: how close a frame's CLIP embedding is to the theme's vibe, calibrated to [0, 1].

``margin = mean_p cos(image, vibe_prompt_p) - mean_a cos(image, anti_prompt_a)`` on unit
vectors. With anti-prompts the centre is 0 (a frame nearer the vibe than the anti-vibe
scores above 0.5); without them the centre is the day's median of the positive
similarity. ``vibe = logistic((margin - centre) / temperature)`` with a fixed temperature
(``scorecard.vibe_temperature``, 0.02 cosine: CLIP's logit scale of 100 makes 0.01 one
logit, so 0.02 spreads the usual margins of a few hundredths across the range).
"""

from __future__ import annotations

import numpy as np


def vibe_margin(image_vecs: np.ndarray, vibe_vecs: np.ndarray, anti_vecs: np.ndarray) -> np.ndarray:
    positive = np.asarray(image_vecs) @ np.asarray(vibe_vecs).T
    margin = positive.mean(axis=1)
    if len(anti_vecs):
        margin = margin - (np.asarray(image_vecs) @ np.asarray(anti_vecs).T).mean(axis=1)
    return margin.astype(np.float64)


def vibe_scores(
    image_vecs: np.ndarray, vibe_vecs: np.ndarray, anti_vecs: np.ndarray, temperature: float
) -> np.ndarray:
    """Vibe of each frame in [0, 1] (``*_vecs``: unit rows of the same CLIP model)."""
    margin = vibe_margin(image_vecs, vibe_vecs, anti_vecs)
    if margin.size == 0:
        return margin
    centre = 0.0 if len(anti_vecs) else float(np.median(margin))
    return 1.0 / (1.0 + np.exp(-(margin - centre) / temperature))
