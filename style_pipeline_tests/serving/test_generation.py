"""The generation engine on tiny models: scale 0 is the base model, one base load, LoRA swaps,
determinism, integrity, and the one-at-a-time queue with positions and a limit."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

from style_pipeline.models.diffusion import load_pipeline
from style_pipeline.serving import loras
from style_pipeline.serving.generation import (
    BaseModelUnavailable,
    GenerationEngine,
    GenerationParams,
    GenerationQueue,
    LoraIntegrityError,
    LoraVersion,
    QueueFull,
    adapter_name,
    base_model_path,
    side_by_side,
)
from style_pipeline.training import trainer
from style_pipeline_tests.serving.lora_fixtures import publish_two_versions

PROMPT = "sks style, a picture"


def params(scale: float, seed: int = 0) -> GenerationParams:
    return GenerationParams(PROMPT, "", seed, 2, 7.5, scale, 64, 64)


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    return publish_two_versions(tmp_path_factory.mktemp("published"))


@pytest.fixture()
def engine(published):
    loaded = []

    def counting_loader(path, **kwargs):
        loaded.append(path)
        return load_pipeline(path, **kwargs)

    engine = GenerationEngine(
        published.store, published.cache_dir, torch.device("cpu"), loader=counting_loader
    )
    engine.loaded_paths = loaded  # type: ignore[attr-defined]
    return engine


def lora(published, which: str = "first") -> LoraVersion:
    version = getattr(published, which)
    return LoraVersion.from_metadata(version.version, version.metadata)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image).astype(np.int16)


def test_scale_zero_is_the_base_pipeline_bit_for_bit_and_scale_one_differs(published, engine):
    pipe = load_pipeline(published.model.path)
    pipe.set_progress_bar_config(disable=True)
    base = pipe(
        PROMPT, num_inference_steps=2, guidance_scale=7.5, width=64, height=64,
        generator=torch.Generator("cpu").manual_seed(0),
    ).images[0]  # fmt: skip
    at_zero = engine.generate(params(0.0), lora(published, "second")).image
    at_one = engine.generate(params(1.0), lora(published, "second")).image
    assert np.array_equal(pixels(at_zero), pixels(base))
    assert np.abs(pixels(at_one) - pixels(base)).max() > 0


def test_base_is_loaded_once_and_versions_swap_without_reloading(published, engine):
    first = engine.generate(params(1.0), lora(published, "first")).image
    second = engine.generate(params(1.0), lora(published, "second")).image
    again = engine.generate(params(1.0), lora(published, "first")).image
    engine.generate(params(0.5), lora(published, "second"))
    assert engine.loads == 1 and engine.loaded_paths == [published.model.path]
    assert engine.adapter_loads == 2  # each version read from storage once
    assert not np.array_equal(pixels(first), pixels(second))
    assert np.array_equal(pixels(first), pixels(again))  # swapping back restores it exactly


def test_same_seed_same_image_other_seed_other_image(published, engine):
    version = lora(published)
    one = engine.generate(params(1.0, seed=3), version)
    two = engine.generate(params(1.0, seed=3), version)
    other = engine.generate(params(1.0, seed=4), version)
    assert (one.width, one.height) == (64, 64) and one.seconds > 0
    assert np.array_equal(pixels(one.image), pixels(two.image))
    assert not np.array_equal(pixels(one.image), pixels(other.image))


def test_weights_that_do_not_match_their_sha256_are_refused(published, engine):
    meta = {**published.first.metadata, "sha256": "0" * 64}
    with pytest.raises(LoraIntegrityError, match="metadata says 0000"):
        engine.generate(params(1.0), LoraVersion.from_metadata(published.first.version, meta))
    assert engine.adapter_loads == 0


def test_base_model_is_rebuilt_for_tiny_and_refused_for_a_missing_pretrained(published, tmp_path):
    moved = {**published.first.metadata, "model_path": str(tmp_path / "gone")}
    rebuilt = base_model_path(moved, tmp_path / "cache")
    assert rebuilt.startswith(str(tmp_path / "cache")) and rebuilt.endswith(
        published.model.path.rsplit("/", 1)[-1]
    )  # same fingerprint: the same seeded random weights
    pretrained = {**moved, "model_profile": "pretrained", "config": {"pretrained": "no/such"}}
    with pytest.raises(BaseModelUnavailable, match="no/such"):
        base_model_path(pretrained, tmp_path / "cache")


def test_adapter_names_have_no_dots():
    assert adapter_name("2026-01-01.002") == "lora_2026_01_01_002"


def test_metadata_name_matches_the_trainer():
    assert loras.METADATA_NAME == trainer.METADATA_NAME


def test_side_by_side_strip():
    strip = side_by_side([Image.new("RGB", (64, 48), c) for c in ("red", "green", "blue")])
    assert strip.size == (192, 48) and strip.getpixel((100, 10)) == (0, 128, 0)


def test_queue_runs_one_at_a_time_in_order_with_positions_and_a_limit():
    queue = GenerationQueue(max_waiting=2)
    release = threading.Event()
    order: list[str] = []
    answers: dict[str, tuple] = {}

    def job(name: str):
        def work():
            if name == "a":
                release.wait(10)
            order.append(name)
            return name

        return work

    def submit(name: str) -> threading.Thread:
        thread = threading.Thread(
            target=lambda: answers.__setitem__(name, queue.run(name, job(name)))
        )
        thread.start()
        return thread

    threads = [submit("a")]
    _wait_for(lambda: queue.position("a") == 0)
    threads.append(submit("b"))
    _wait_for(lambda: queue.position("b") == 1)
    threads.append(submit("c"))
    _wait_for(lambda: queue.position("c") == 2)
    assert queue.state().as_dict() == {"running": True, "waiting": 2, "max_waiting": 2}
    with pytest.raises(QueueFull, match="limit 2"):
        queue.run("d", job("d"))
    with pytest.raises(ValueError, match="already queued"):
        queue.run("b", job("b"))
    release.set()
    for thread in threads:
        thread.join(10)
    assert order == ["a", "b", "c"]
    assert [answers[n][1] for n in "abc"] == [0, 1, 2]  # position on arrival
    assert queue.state().running is False and queue.position("a") is None


def test_a_failing_job_frees_the_queue():
    queue = GenerationQueue(max_waiting=1)
    with pytest.raises(RuntimeError, match="boom"):
        queue.run("x", lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    assert queue.run("y", lambda: 42)[0] == 42


def _wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)
