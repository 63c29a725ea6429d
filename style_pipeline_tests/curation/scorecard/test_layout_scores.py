"""Typography and composition on constructed images."""

import numpy as np
import pytest

from style_pipeline.curation.scorecard.composition import composition_score
from style_pipeline.curation.scorecard.frame_layout import layout_scores
from style_pipeline.curation.scorecard.saliency import analysis_gray, spectral_residual
from style_pipeline.curation.scorecard.text_detection import TextDetector, available
from style_pipeline.curation.scorecard.typography import largest_rectangle
from style_pipeline_tests.curation.scorecard import images


def _composition(rgb):
    return composition_score(analysis_gray(rgb, 256))


def test_subject_on_a_third_beats_a_centred_one():
    centred, third = (
        _composition(images.subject_at(240, 160)),
        _composition(images.subject_at(160, 107)),
    )
    assert third.thirds_distance < 0.05 < 0.2 < centred.thirds_distance
    assert third.composition > centred.composition + 0.3


@pytest.mark.parametrize("angle", [4.0, 8.0, -6.0])
def test_tilted_horizon_is_measured_and_costs(angle):
    level, tilted = _composition(images.horizon(0.0)), _composition(images.horizon(angle))
    assert level.horizon_tilt_deg == pytest.approx(0.0, abs=0.5)
    assert tilted.horizon_tilt_deg == pytest.approx(angle, abs=1.0)
    assert tilted.composition < level.composition


def test_subject_cut_at_the_border():
    assert not _composition(images.subject_at(160, 107)).border_cut
    assert _composition(images.subject_at(0, 160)).border_cut


def test_rendered_text_lowers_typography():
    detector = TextDetector("auto")
    clean = layout_scores(images.plain(), detector).typography
    texty = layout_scores(images.with_text(images.plain()), detector).typography
    assert clean.typography == 1.0 and clean.text_fraction == 0.0
    assert texty.typography < clean.typography - 0.5
    if detector.kind == "rapidocr":
        assert texty.text_fraction > 0.05


@pytest.mark.skipif(available() != "rapidocr", reason="rapidocr-onnxruntime not installed")
def test_ocr_detector_boxes_rendered_text_only():
    detector = TextDetector("rapidocr")
    assert detector.boxes(images.plain()) == []
    assert len(detector.boxes(images.with_text(images.plain()))) == 2


def test_heuristic_detector_finds_rendered_text():
    detector = TextDetector("heuristic")
    assert detector.boxes(images.plain()) == []
    assert len(detector.boxes(images.with_text(images.plain()))) > 5


def test_calm_sky_gives_room():
    detector = TextDetector("auto")  # the MSER heuristic takes pure noise for glyphs
    sky = layout_scores(images.sky_over_busy(), detector).typography
    busy = layout_scores(images.busy(), detector).typography
    assert busy.calm_fraction < 0.05
    assert sky.calm_fraction > 0.35
    if detector.kind == "rapidocr":
        assert sky.typography > 0.9 > busy.typography


def test_flat_image_has_zero_saliency():
    assert not spectral_residual(np.full((50, 80), 0.5, np.float32)).any()


def test_largest_rectangle_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(50):
        mask = rng.random((6, 7)) < 0.7
        best = (
            max(
                (r1 - r0) * (c1 - c0)
                for r0 in range(6)
                for r1 in range(r0 + 1, 7)
                for c0 in range(7)
                for c1 in range(c0 + 1, 8)
                if mask[r0:r1, c0:c1].all()
            )
            if mask.any()
            else 0
        )
        assert largest_rectangle(mask) == best
