"""Coverage axes: palette naming on constructed colours, measured axes, counts and prompts."""

from __future__ import annotations

import numpy as np
import pytest

from style_pipeline.contracts.themes import AxisValue, Role, Theme
from style_pipeline.curation import coverage


def _solid(rgb: tuple[int, int, int], size: int = 40) -> np.ndarray:
    return np.full((size, size, 3), rgb, dtype=np.uint8)


@pytest.mark.parametrize(
    ("rgb", "name"),
    [
        ((128, 128, 128), "neutral"),  # grey: no chroma
        ((140, 125, 115), "muted"),  # a dusty beige
        ((200, 120, 60), "warm"),  # orange
        ((70, 110, 170), "cool"),  # steel blue
        ((255, 0, 40), "vivid"),  # saturated red
        ((0, 80, 255), "vivid"),  # saturated blue
    ],
)
def test_palette_names_constructed_colours(rgb, name):
    assert coverage.palette_name(*coverage.dominant_colours(_solid(rgb))) == name


def test_dominant_colours_shares_follow_areas():
    img = _solid((250, 250, 250), 60)
    img[:, :15] = (200, 30, 30)  # a quarter red
    centres, shares = coverage.dominant_colours(img, k=2)
    assert sorted(np.round(shares, 2)) == [0.25, 0.75]
    assert centres[np.argmin(shares), 1] > 40  # the small cluster is the red (a* > 0)
    with pytest.raises(ValueError, match="RGB uint8"):
        coverage.dominant_colours(img.astype(np.float32))


@pytest.mark.parametrize(("lum", "value"), [(0.05, "night"), (0.25, "dusk"), (0.6, "day")])
def test_time_of_day(lum, value):
    assert coverage.time_of_day(lum) == value


@pytest.mark.parametrize(
    ("faces", "value"), [(None, None), (0, "none"), (1, "one"), (3, "few"), (9, "crowd")]
)
def test_people(faces, value):
    assert coverage.people(faces) == value


@pytest.mark.parametrize(
    ("w", "h", "value"), [(640, 360, "landscape"), (360, 640, "portrait"), (500, 480, "square")]
)
def test_orientation(w, h, value):
    assert coverage.orientation(w, h) == value
    with pytest.raises(ValueError, match="positive"):
        coverage.orientation(0, h)


def _theme(**kw) -> Theme:
    axes = {
        "scene": [
            AxisValue(value="city", prompts=["a city"]),
            AxisValue(value="sea", prompts=["the sea"]),
        ]
    }
    return Theme(
        name="t",
        version="1",
        vibe_prompts=["x"],
        axes=axes,
        roles=[Role(name="body", quota=3)],
        **kw,
    )


def test_zero_shot_axes_pick_the_nearest_value():
    theme = _theme()
    bank = {"scene": np.eye(2, 4, dtype=np.float32)}
    vectors = np.array([[0.1, 0.9, 0, 0], [0.8, 0.2, 0, 0]], dtype=np.float32)
    assert coverage.zero_shot_axes(vectors, theme, bank) == [{"scene": "sea"}, {"scene": "city"}]
    with pytest.raises(ValueError, match="text rows"):
        coverage.zero_shot_axes(vectors, theme, {"scene": np.eye(3, 4)})


def test_axis_text_banks_average_prompts_into_unit_rows():
    theme = _theme()
    banks = coverage.axis_text_banks(theme, lambda texts: np.ones((len(texts), 4)))
    assert banks["scene"].shape == (2, 4)
    assert np.allclose(np.linalg.norm(banks["scene"], axis=1), 1.0)


def test_axis_values_skip_axes_without_emphasis():
    axes = coverage.axis_values(_theme(axis_emphasis={"people": 0.0}))
    assert "people" not in axes and axes["scene"] == ("city", "sea")
    assert axes["time_of_day"] == ("day", "dusk", "night")


def test_counts_and_low_coverage_prompts():
    axes = {"time_of_day": ("day", "dusk", "night"), "orientation": ("landscape", "portrait")}
    tags = [
        {"time_of_day": "day", "orientation": "landscape"},
        {"time_of_day": "night", "orientation": "landscape"},
        {"time_of_day": "day", "orientation": "portrait"},
    ]
    counts = coverage.coverage_counts(tags, [0, 2], axes)
    assert counts == {
        "time_of_day": {"day": 2, "dusk": 0, "night": 0},
        "orientation": {"landscape": 1, "portrait": 1},
    }
    prompts = coverage.low_coverage_prompts(tags, [0, 2], axes)
    assert set(prompts) == {"time_of_day"}
    assert "need more night shots? (1 unpicked today)" in prompts["time_of_day"]
    assert "need more dusk shots? (none today)" in prompts["time_of_day"]
    assert coverage.diversity_tags(tags[1]) == ["orientation:landscape", "time_of_day:night"]
