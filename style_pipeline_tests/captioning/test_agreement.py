"""Image-caption agreement: a caption describing another image is flagged and re-captioned.

The CLIP is the project's tiny random-init open_clip model, trained here for 60 steps to
tell red squares from blue circles, so its similarities mean something.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from style_pipeline.captioning.agreement import (
    LOOK_AGAIN,
    Agreement,
    AgreementChecker,
    check_and_recaption,
    clip_text,
    reference_columns,
    retry_prompts,
)
from style_pipeline.captioning.captioners import CaptionResult
from style_pipeline.captioning.factory import SelectedCaptioner
from style_pipeline.captioning.pipeline import caption_images
from style_pipeline.captioning.validation import Vocabulary
from style_pipeline.contracts.caption_checks import CaptionCheckConfig
from style_pipeline.contracts.captioning import CaptionConfig
from style_pipeline.contracts.models import BlipModelConfig, ModelConfig
from style_pipeline.models.clip import load_tiny

TRIGGER = "sps_style"
RED = ["a red square", "a small red square", "a red square on white", "a big red square"]
BLUE = ["a blue circle", "a small blue circle", "a blue circle on white", "a big blue circle"]
STEPS = 60
CHECK = CaptionCheckConfig(enabled="on", use_itm="off")


def shape(kind: int, rng: random.Random) -> Image.Image:
    """A red square (0) or a blue circle (1) of random size and place on white."""
    image = Image.new("RGB", (64, 64), (245, 245, 245))
    draw = ImageDraw.Draw(image)
    size = rng.randint(16, 40)
    x, y = rng.randint(0, 64 - size), rng.randint(0, 64 - size)
    if kind == 0:
        draw.rectangle([x, y, x + size, y + size], fill=(210 + rng.randint(-20, 20), 30, 30))
    else:
        draw.ellipse([x, y, x + size, y + size], fill=(30, 40, 200 + rng.randint(-30, 30)))
    return image


@pytest.fixture(scope="module")
def trained_clip(tmp_path_factory):
    """The tiny CLIP after 60 steps of classifying shapes against their caption texts."""
    config = ModelConfig(
        profile="tiny", cache_dir=str(tmp_path_factory.mktemp("clip")), device="cpu"
    )
    loaded = load_tiny(config)
    rng = random.Random(0)
    torch.manual_seed(0)
    model = loaded.model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4)
    kinds = torch.tensor([i % 2 for i in range(8)])
    for _ in range(STEPS):
        images = torch.stack([loaded.preprocess(shape(int(k), rng)) for k in kinds])
        texts = loaded.tokenizer([rng.choice(RED), rng.choice(BLUE)])
        image_features = F.normalize(model.encode_image(images), dim=-1)
        text_features = F.normalize(model.encode_text(texts), dim=-1)
        loss = F.cross_entropy(image_features @ text_features.T * 20, kinds)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    assert loss.item() < 0.1, f"the tiny CLIP did not learn the shapes (loss {loss.item()})"
    return loaded


def day(seed: int = 1) -> tuple[list[Image.Image], list[str]]:
    """Four red squares and four blue circles, alternating, each with its right caption."""
    rng = random.Random(seed)
    kinds = [0, 1] * 4
    images = [shape(k, rng) for k in kinds]
    captions = [f"{TRIGGER}, {(RED, BLUE)[k][i // 2]}" for i, k in enumerate(kinds)]
    return images, captions


def test_a_caption_of_another_image_is_flagged_and_the_right_ones_are_not(trained_clip):
    images, captions = day()
    captions[0] = f"{TRIGGER}, a small blue circle"  # image 0 is a red square
    checker = AgreementChecker(trained_clip, CHECK)
    kept, results, _ = check_and_recaption(
        checker, images, captions, [[TRIGGER]] * len(images), None, None
    )
    assert kept == captions
    assert [r.first.mismatch for r in results] == [True] + [False] * 7
    assert results[0].first.clip_margin is not None and results[0].first.clip_margin < 0
    assert all(r.first.clip_margin > 0 for r in results[1:])
    # on its own image the right caption beats the swapped one in absolute terms too
    texts = [clip_text(c, [TRIGGER]) for c in captions]
    matrix, vectors = _matrix(checker, images, texts)
    right = checker.rescore(images, [0], ["a small red square"], texts, matrix, vectors)
    assert right[0].clip_similarity > results[0].first.clip_similarity
    assert not right[0].mismatch


def _matrix(checker, images, texts):
    vectors = checker.image_vectors(images)
    return checker.score(images, texts, vectors)[1], vectors


class ShapeCaptioner:
    """Captions shapes by colour; with the prompt ``describe`` it names ``wrong`` wrongly."""

    name = "stub"
    model_id = "stub-shapes"

    def __init__(self, wrong: Image.Image):
        self.wrong = wrong
        self.calls: list[list[str]] = []

    def caption(self, images, prompts=None, labels=None):
        prompts = [prompts] * len(images) if isinstance(prompts, str | None) else list(prompts)
        self.calls.append([p or "" for p in prompts])
        out = []
        for image, prompt in zip(images, prompts, strict=True):
            rgb = np.asarray(image, dtype=np.int64).reshape(-1, 3)
            red = rgb[:, 0].sum() > rgb[:, 2].sum()
            if prompt == "describe" and image is self.wrong:
                red = not red  # the mismatch
            text = "a red square" if red else "a blue circle"
            out.append(CaptionResult(text, self.name, self.model_id, prompt or ""))
        return out


def test_recaption_replaces_a_mismatched_caption(trained_clip):
    images, _ = day(2)
    captioner = ShapeCaptioner(wrong=images[0])
    selected = SelectedCaptioner(captioner, "stub", "describe", "test", {})
    vocabulary = Vocabulary.build(["red square", "blue circle"])
    config = CaptionConfig(trigger_word=TRIGGER, check=CHECK, style="sentence")
    checker = AgreementChecker(trained_clip, CHECK)
    rows = caption_images(selected, images, config, vocabulary, checker=checker)
    assert captioner.calls[1] == ["describe" + LOOK_AGAIN]  # only image 0 is re-captioned
    first = rows[0]
    assert first.caption_mismatch and not first.still_mismatched
    assert first.caption == f"{TRIGGER}, a red square"
    assert first.first_caption == f"{TRIGGER}, a blue circle"
    assert first.recaption_attempts == 1
    assert first.clip_similarity > first.first_clip_similarity
    assert not any(r.caption_mismatch or r.recaption_attempts for r in rows[1:])
    assert all(r.clip_similarity is not None for r in rows)


def test_recaption_keeps_the_first_caption_when_the_retry_is_no_better(trained_clip):
    images, captions = day(3)
    captions[0] = f"{TRIGGER}, a big blue circle"
    checker = AgreementChecker(trained_clip, CHECK.model_copy(update={"recaption_attempts": 2}))
    calls = []

    def recaption(indices, prompts):
        calls.append((indices, prompts))
        return [f"{TRIGGER}, a blue circle on white" for _ in indices]  # still wrong

    kept, results, _ = check_and_recaption(
        checker, images, captions, [[TRIGGER]] * 8, recaption, ["p1", "p2"]
    )
    assert calls == [([0], ["p1"]), ([0], ["p2"])]
    assert results[0].attempts == 2 and results[0].kept.mismatch
    if not results[0].replaced:
        assert kept[0] == captions[0]


def test_itm_scores_are_probabilities_and_their_threshold_flags(trained_clip, tmp_path):
    from style_pipeline.models.blip_itm import load_blip_itm

    itm = load_blip_itm(
        BlipModelConfig(profile="tiny", cache_dir=str(tmp_path), device="cpu"), ["red", "blue"]
    )
    images, captions = day(4)
    strict = CHECK.model_copy(update={"min_itm": 1.0})  # no probability reaches 1
    checker = AgreementChecker(trained_clip, strict, itm)
    _, results, _ = check_and_recaption(checker, images, captions, [[TRIGGER]] * 8, None, None)
    for r in results:
        assert r.first.itm_score is not None and 0 < r.first.itm_score < 1
        assert any(f.startswith("itm ") for f in r.first.failures)
    assert checker.metadata()["itm_profile_used"] == "tiny"


def test_absolute_mode_and_too_few_references_use_the_similarity_floor(trained_clip):
    images, captions = day(5)
    absolute = CHECK.model_copy(update={"clip_mode": "absolute", "min_clip_similarity": 0.99})
    _, results, _ = check_and_recaption(
        AgreementChecker(trained_clip, absolute), images, captions, [[TRIGGER]] * 8, None, None
    )
    assert all(r.first.mismatch and r.first.clip_margin is None for r in results)
    few = CHECK.model_copy(update={"min_references": 8, "min_clip_similarity": -1.0})
    _, results, _ = check_and_recaption(
        AgreementChecker(trained_clip, few), images, captions, [[TRIGGER]] * 8, None, None
    )
    assert not any(r.first.mismatch or r.first.clip_margin is not None for r in results)


@pytest.mark.parametrize(
    ("texts", "own", "text", "expected"),
    [
        (["a", "b", "c"], 0, "a", [1, 2]),
        (["a", "b", "b", "a"], 0, "a", [1]),  # duplicates once; the own text never
        (["a", "b", "c"], 1, "c", [0]),  # a re-caption equal to another caption skips it
    ],
)
def test_reference_columns(texts, own, text, expected):
    assert reference_columns(texts, own, text) == expected


@pytest.mark.parametrize(
    ("backend", "prompt", "attempts", "configured", "expected"),
    [
        ("blip", "a photo in the style of x, ", 2, (), ["", "a picture of "]),
        ("template", "", 1, (), None),
        ("openai", "Caption it.", 1, (), ["Caption it." + LOOK_AGAIN]),
        ("vlm", "<CAPTION>", 3, ("<DETAILED_CAPTION>", "{prompt} again"),
         ["<DETAILED_CAPTION>", "<CAPTION> again", "<DETAILED_CAPTION>"]),
        ("blip", "", 0, (), []),
        ("vlm", "<MORE_DETAILED_CAPTION>", 2, (), ["<CAPTION>", "<DETAILED_CAPTION>"]),
        ("vlm", "Describe the image.", 1, (), ["Describe the image." + LOOK_AGAIN]),
        ("vlm", "", 2, (), ["a picture of ", "a picture of "]),  # BLIP-2's empty prefix
    ],
)  # fmt: skip
def test_retry_prompts(backend, prompt, attempts, configured, expected):
    assert retry_prompts(backend, prompt, attempts, configured) == expected


def test_rank_prefers_fewer_failures_then_itm_then_margin():
    failed = Agreement(0.3, 0.1, None, ("clip margin",))
    passed = Agreement(0.1, 0.01, None, ())
    assert passed.rank() > failed.rank()
    assert Agreement(0.1, 0.5, 0.9).rank() > Agreement(0.9, 0.9, 0.5).rank()
    assert (
        clip_text(f"{TRIGGER}, ohwx_ann, a woman, film", [TRIGGER, "ohwx_ann"]) == "a woman, film"
    )
