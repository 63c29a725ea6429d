"""q_tech on real photographs (scikit-image) with synthetic blur, noise and exposure."""

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from style_pipeline.curation.quality import analysis_image, exposure, noise_sigma, sharpness
from style_pipeline.curation.scorecard.q_tech import q_tech, robust_z

# astronaut is left out of the noise chain: its crushed black background un-clips when
# noise is added, which is a real exposure gain, not a scoring error
PHOTOS = {"coffee": data.coffee, "chelsea": data.chelsea, "rocket": data.rocket}


def _q(rgb: np.ndarray) -> float:
    gray = analysis_image(Image.fromarray(rgb)).gray
    e = exposure(gray)
    args = [sharpness(gray)], [e.mean], [e.shadow_clip], [e.highlight_clip], [noise_sigma(gray)]
    return float(q_tech(*args)[0])


def _blur(rgb, s):
    return cv2.GaussianBlur(rgb, (0, 0), s) if s else rgb


def _noise(rgb, s):
    noisy = rgb + np.random.default_rng(0).normal(0, s, rgb.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _gain(rgb, g):
    return np.clip(rgb.astype(np.float64) * g, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", sorted(PHOTOS))
@pytest.mark.parametrize(
    ("degrade", "levels"),
    [(_blur, [0, 1, 2, 4]), (_noise, [0, 5, 15, 30])],
    ids=["blur", "noise"],
)
def test_monotone_in_blur_and_noise(name, degrade, levels):
    rgb = PHOTOS[name]()
    scores = [_q(degrade(rgb, level)) for level in levels]
    assert all(a > b for a, b in zip(scores, scores[1:], strict=False)), scores


@pytest.mark.parametrize("name", ["coffee", "chelsea"])
@pytest.mark.parametrize("gains", [[1.0, 0.5, 0.25], [1.0, 1.8, 3.0]], ids=["dark", "bright"])
def test_monotone_in_exposure(name, gains):
    rgb = PHOTOS[name]()
    scores = [_q(_gain(rgb, g)) for g in gains]
    assert all(a > b for a, b in zip(scores, scores[1:], strict=False)), scores


def test_sharp_photo_above_and_heavy_blur_below_the_default_floor():
    rgb = data.chelsea()
    assert _q(rgb) > 0.9
    assert _q(_blur(rgb, 2)) < 0.25


def test_iqa_enters_when_present_and_day_statistics_need_five_frames():
    base = q_tech([900.0], [0.45], [0.0], [0.0], [1.0])[0]
    assert q_tech([900.0], [0.45], [0.0], [0.0], [1.0], [90.0], [0.1])[0] < base
    assert not robust_z(np.array([1.0, 2.0, 3.0])).any()
    z = robust_z(np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    assert z[2] == 0 and z[0] < 0 < z[4]
