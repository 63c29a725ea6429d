"""The parallel image loader behind ``embed_refs``: same vectors as the one-at-a-time path,
input order with many threads, the clear error on an unreadable image, the preprocess plan
read from open_clip, and the GPU decode path's tensor code run on CPU."""

from __future__ import annotations

import hashlib
import io
from dataclasses import replace

import numpy as np
import pytest
import torch
from open_clip.transform import image_transform
from PIL import Image

from style_pipeline.contracts.models import ModelConfig
from style_pipeline.curation.embeddings import (
    EmbeddingCache,
    ImageRef,
    embed_images,
    embed_refs,
)
from style_pipeline.curation.image_loading import (
    BatchLoader,
    LoaderOptions,
    decode_pil,
    plan_preprocess,
)
from style_pipeline.models import load_model
from style_pipeline.storage.store import Store
from style_pipeline_tests.curation.factories import scene


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    cache = tmp_path_factory.mktemp("models")
    return load_model(ModelConfig(profile="tiny", cache_dir=str(cache), device="cpu"))


def _jpeg(seed: int, height: int = 180, width: int = 320, fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(scene(seed, height, width)).save(buffer, format=fmt, quality=90)
    return buffer.getvalue()


def _put(store: Store, blobs: list[bytes], ext: str = "jpg") -> list[ImageRef]:
    refs = []
    for i, data in enumerate(blobs):
        key = store.put_bytes(data, f"frames/2026-01-01/{i:03d}.{ext}")
        refs.append(ImageRef(hashlib.sha256(data).hexdigest(), key))
    return refs


def _sequential(loaded, store: Store, refs: list[ImageRef]) -> np.ndarray:
    """The old path: open each image in the main thread, preprocess, forward."""
    images = []
    for ref in refs:
        with store.local_copy(ref.key) as path, Image.open(path) as im:
            images.append(im.convert("RGB"))
    return embed_images(loaded, images, batch_size=4)


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)  # rows are unit vectors


def test_parallel_path_matches_the_sequential_one(tiny, tmp_path):
    store = Store(str(tmp_path))
    refs = _put(store, [_jpeg(s) for s in range(7)])
    old = _sequential(tiny, store, refs)
    exact = embed_refs(tiny, refs, store, batch_size=3, workers=4, draft=False)
    assert _cos(old, exact.vectors).min() >= 0.9999
    np.testing.assert_allclose(exact.vectors, old, atol=1e-5)  # same pixels, same float ops
    drafted = embed_refs(tiny, refs, store, batch_size=3, workers=4, draft=True)
    assert "jpeg draft" in drafted.decode and drafted.batch_size == 3
    assert _cos(old, drafted.vectors).min() >= 0.99
    assert not np.array_equal(old, drafted.vectors)  # 320x180 really was drafted to 1/2


def test_draft_decodes_a_smaller_jpeg_that_still_covers_the_input():
    data = _jpeg(3, 360, 640)
    assert decode_pil(data).size == (640, 360)
    assert decode_pil(data, (64, 64)).size == (160, 90)  # 1/4: 1/8 would be 45 px high
    assert decode_pil(data, (224, 224)).size == (640, 360)  # 1/2 would be under 224
    png = _jpeg(3, 360, 640, fmt="PNG")
    assert decode_pil(png, (64, 64)).size == (640, 360)  # not a JPEG: untouched


def test_order_is_kept_with_many_threads_and_duplicates(tiny, tmp_path):
    store = Store(str(tmp_path))
    seeds = [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 5, 17, 18, 19, 20, 7, 21]
    refs = _put(store, [_jpeg(s, 72, 96) for s in seeds])
    result = embed_refs(tiny, refs, store, batch_size=3, workers=8, prefetch_batches=3)
    assert (result.n_computed, result.n_cached) == (17, 0)  # two duplicates embedded once
    expected = _sequential(tiny, store, refs)
    assert _cos(expected, result.vectors).min() >= 0.9999
    similarity = result.vectors @ expected.T
    assert [seeds[j] for j in similarity.argmax(axis=1)] == seeds


def test_an_unreadable_image_names_its_key_and_earlier_batches_are_cached(tiny, tmp_path):
    store = Store(str(tmp_path))
    blobs = [_jpeg(s, 72, 96) for s in range(30, 36)]
    blobs[4] = b"\xff\xd8\xff not really a jpeg"
    refs = _put(store, blobs)
    cache = EmbeddingCache(store, tiny.model_id, tiny.dim)
    with pytest.raises(ValueError, match=r"cannot read image 'frames/2026-01-01/004.jpg'"):
        embed_refs(tiny, refs, store, cache, batch_size=2, workers=4)
    cached = [cache.get(ref.sha256) is not None for ref in refs]
    assert cached[:4] == [True, True, True, True]  # batches before the bad one were written
    assert cached[4] is False


def test_a_missing_image_names_its_key(tiny, tmp_path):
    store = Store(str(tmp_path))
    with pytest.raises(ValueError, match="frames/gone.jpg"):
        embed_refs(tiny, [ImageRef("d" * 64, "frames/gone.jpg")], store, workers=2)


def test_the_plan_is_read_from_the_open_clip_preprocess(tiny):
    plan = plan_preprocess(tiny.preprocess, tiny.image_size)
    assert plan.batched and plan.resize_mode == "shortest" and plan.size == (64, 64)
    assert plan.mean == pytest.approx((0.48145466, 0.4578275, 0.40821073))
    assert plan.std == pytest.approx((0.26862954, 0.26130258, 0.27577711))
    assert plan.draft_size == (64, 64)
    squash = plan_preprocess(image_transform(64, False, resize_mode="squash"), 64)
    assert squash.batched and squash.resize_mode == "squash" and squash.size == (64, 64)
    longest = plan_preprocess(image_transform(64, False, resize_mode="longest"), 64)
    assert not longest.batched and longest.resize_mode is None  # run as is, per image
    assert not plan_preprocess(lambda im: im, 64).batched


def test_a_resize_larger_than_the_crop_is_followed_on_both_paths(tiny, tmp_path):
    """Resize(80) + CenterCrop(64): the tensor path resizes the short side to 80 too."""
    from torchvision import transforms as T

    preprocess = T.Compose(
        [
            T.Resize(80, interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(64),
            T.ToTensor(),
            T.Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
        ]
    )
    plan = plan_preprocess(preprocess, 64)
    assert (plan.resize_mode, plan.resize_short, plan.draft_size) == ("shortest", 80, (80, 80))
    store = Store(str(tmp_path))
    keys = [store.put_bytes(_jpeg(s, 120, 200), f"f/{s}.jpg") for s in range(3)]
    cpu = torch.device("cpu")
    options = LoaderOptions(batch_size=3, workers=2, draft=False)
    pil = next(iter(BatchLoader(store, keys, plan, cpu, torch.float32, options)))[1]
    gpu_style = BatchLoader(store, keys, plan, cpu, torch.float32, options, decode_device=cpu)
    tensors = next(iter(gpu_style))[1]
    assert (tensors - pil).abs().mul(0.25 * 255).max() <= 6
    reference = torch.stack([preprocess(decode_pil(store.read_bytes(k))) for k in keys])
    np.testing.assert_allclose(pil.numpy(), reference.numpy(), atol=1e-6)


@pytest.mark.parametrize("mode", ["squash", "longest"])
def test_other_resize_modes_match_the_sequential_path(tiny, tmp_path, mode):
    loaded = replace(tiny, preprocess=image_transform(64, False, resize_mode=mode))
    store = Store(str(tmp_path))
    refs = _put(store, [_jpeg(s, 90, 150) for s in range(3)])
    vectors = embed_refs(loaded, refs, store, batch_size=2, workers=2, draft=False).vectors
    np.testing.assert_allclose(vectors, _sequential(loaded, store, refs), atol=1e-5)


def test_gpu_decode_path_on_cpu_matches_pil(tiny, tmp_path):
    """decode_jpeg + tensor resize/crop/normalise (what runs on CUDA), here on the CPU,
    with a PNG (decoded by PIL in a thread) and odd sizes mixed in."""
    store = Store(str(tmp_path))
    blobs = [_jpeg(1, 180, 320), _jpeg(2, 180, 320), _jpeg(3, 200, 150), _jpeg(4, 99, 131)]
    blobs.append(_jpeg(5, 120, 160, fmt="PNG"))
    keys = [store.put_bytes(b, f"f/{i}.{'png' if i == 4 else 'jpg'}") for i, b in enumerate(blobs)]
    plan = plan_preprocess(tiny.preprocess, tiny.image_size)
    cpu = torch.device("cpu")
    options = LoaderOptions(batch_size=3, workers=2, draft=False)
    pil = torch.cat([b for _, b in BatchLoader(store, keys, plan, cpu, torch.float32, options)])
    gpu_style = BatchLoader(store, keys, plan, cpu, torch.float32, options, decode_device=cpu)
    assert gpu_style.mode == "gpu"
    tensors = torch.cat([b for _, b in gpu_style])
    assert tensors.shape == pil.shape == (5, 3, 64, 64)
    # PIL and torch's antialiased bicubic differ by rounding: a few levels of 255 at most
    assert (tensors - pil).abs().mul(plan.std[0] * 255).max() <= 6
    assert (tensors[4] == pil[4]).all()  # the PNG took the PIL path in both
    with torch.inference_mode():
        a = torch.nn.functional.normalize(tiny.model.encode_image(pil), dim=-1)
        b = torch.nn.functional.normalize(tiny.model.encode_image(tensors), dim=-1)
    assert (a * b).sum(-1).min() >= 0.99


def test_gpu_decode_path_falls_back_to_pil_and_names_a_bad_file(tiny, tmp_path):
    store = Store(str(tmp_path))
    keys = [store.put_bytes(_jpeg(1, 72, 96), "f/ok.jpg")]
    keys.append(store.put_bytes(b"\xff\xd8\xff\xe0 truncated", "f/bad.jpg"))
    plan = plan_preprocess(tiny.preprocess, tiny.image_size)
    cpu = torch.device("cpu")
    loader = BatchLoader(store, keys, plan, cpu, torch.float32, LoaderOptions(), decode_device=cpu)
    with pytest.raises(ValueError, match="cannot read image 'f/bad.jpg'"):
        list(loader)


def test_gpu_decode_is_only_chosen_on_cuda(tiny):
    plan = plan_preprocess(tiny.preprocess, tiny.image_size)
    loader = BatchLoader(Store("memory://x"), [], plan, torch.device("cpu"), torch.float32)
    assert loader.mode == "cpu"


def test_a_decode_bound_forward_runs_on_one_thread_and_threads_are_restored(tiny, tmp_path):
    store = Store(str(tmp_path))
    refs = _put(store, [_jpeg(s, 360, 640) for s in range(40, 56)])
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        result = embed_refs(tiny, refs, store, batch_size=8, workers=2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
    assert "forward on 1 torch threads" in result.decode  # the tiny forward is cheaper


class _Loader:
    def __init__(self, cost):
        self.cost = cost

    def decode_cost(self):
        return self.cost


def test_forward_threads_follow_the_bottleneck(tiny):
    from style_pipeline.curation.embeddings import ForwardThreads, encode_image_batch

    batch = torch.randn(20, 3, 64, 64)
    with torch.inference_mode():
        expected = encode_image_batch(tiny, batch)
    cpu = torch.device("cpu")
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        decode_bound = ForwardThreads(_Loader(10.0), cpu)
        with torch.inference_mode():
            feats = decode_bound.encode(tiny, batch)  # 8 measured on 1 thread, then 12
        torch.testing.assert_close(feats, expected, atol=1e-5, rtol=1e-4)
        assert (decode_bound.phase, decode_bound.chosen, torch.get_num_threads()) == ("done", 1, 1)
        assert decode_bound.forward_cost is not None and decode_bound.forward_cost < 10.0
        decode_bound.restore()
        assert torch.get_num_threads() == 2

        compute_bound = ForwardThreads(_Loader(0.0), cpu)
        with torch.inference_mode():
            feats = compute_bound.encode(tiny, batch)  # 8 on 1 thread, 8 on 2, the rest
        torch.testing.assert_close(feats, expected, atol=1e-5, rtol=1e-4)
        assert compute_bound.phase == "done" and compute_bound.chosen in (1, 2)
        compute_bound.restore()

        fixed = ForwardThreads(_Loader(10.0), cpu, threads=5)
        assert (fixed.phase, fixed.chosen) == ("done", 2)  # never more than torch had
        assert not ForwardThreads(_Loader(1.0), torch.device("cuda")).enabled
        torch.set_num_threads(1)
        assert ForwardThreads(_Loader(0.0), cpu).phase == "done"  # nothing to choose
    finally:
        torch.set_num_threads(previous)
