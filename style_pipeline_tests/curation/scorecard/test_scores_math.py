"""vibe calibration, aesthetic sources, total_prelim and the hard constraints."""

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from style_pipeline.contracts.themes import HardConstraints, Rubric
from style_pipeline.curation.scorecard import aesthetic as aes
from style_pipeline.curation.scorecard.total import constraint_reasons, orientation, total_prelim
from style_pipeline.curation.scorecard.vibe import vibe_scores


def _unit(x):
    x = np.asarray(x, np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_vibe_prefers_the_vibe_over_the_anti_vibe():
    vibe, anti = _unit([[1, 0, 0]]), _unit([[0, 1, 0]])
    images = _unit([[1, 0.1, 0], [0.1, 1, 0], [1, 1, 0]])
    scores = vibe_scores(images, vibe, anti, temperature=0.02)
    assert scores[0] > 0.99 and scores[1] < 0.01 and scores[2] == pytest.approx(0.5)
    no_anti = vibe_scores(images, vibe, anti[:0], temperature=0.02)
    assert no_anti[0] > 0.5 > no_anti[1]


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_laion_head_loads_a_random_init_file_of_the_same_shape(tmp_path, suffix):
    torch.manual_seed(0)
    state = {k: v.contiguous() for k, v in aes.LaionAestheticHead(768).state_dict().items()}
    path = tmp_path / f"head{suffix}"
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, path)
    head = aes.load_laion_head(path)
    assert head.layers[0].in_features == 768 and head.layers[7].out_features == 1
    scores = aes.laion_scores(head, np.random.default_rng(0).normal(size=(3, 768)))
    assert scores.shape == (3,) and ((scores > 0) & (scores < 1)).all()


def test_laion_loader_rejects_another_state_dict(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(2, 2)}, str(path))
    with pytest.raises(ValueError, match="not an aesthetic-predictor"):
        aes.load_laion_head(path)


def test_clip_proxy_is_a_probability():
    prompts = _unit([[1, 0], [0, 1]])
    scores = aes.clip_proxy_scores(_unit([[1, 0.2], [0.2, 1]]), prompts)
    assert scores[0] > 0.99 and scores[1] < 0.01


def test_total_is_the_rubric_weighted_mean():
    scores = {"q_tech": 1.0, "aesthetic": 0.5, "vibe": 0.0, "typography": 1.0, "composition": 0.0}
    rubric = Rubric(q_tech=1, aesthetic=2, vibe=1, typography=0, composition=0)
    assert total_prelim(scores, rubric) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("q", "size", "faces", "constraints", "reasons"),
    [
        (0.9, (640, 480), 1, HardConstraints(), []),
        (0.1, (640, 480), None, HardConstraints(), ["low_q_tech"]),
        (0.9, (480, 640), 0, HardConstraints(orientation="landscape"), ["wrong_orientation"]),
        (0.9, (640, 635), 0, HardConstraints(orientation="square"), []),
        (0.9, (640, 480), 3, HardConstraints(max_people=2), ["too_many_people"]),
        (0.9, (640, 480), None, HardConstraints(max_people=0), []),
    ],
)
def test_constraints(q, size, faces, constraints, reasons):
    assert constraint_reasons(q, *size, faces, constraints) == reasons


def test_orientation():
    assert [orientation(*s) for s in [(4, 3), (3, 4), (100, 99)]] == [
        "landscape",
        "portrait",
        "square",
    ]
