"""Embeddings: batching, normalisation, the content-addressed cache and the table form."""

from __future__ import annotations

import hashlib
import io
import logging
import uuid

import numpy as np
import pytest
from PIL import Image

from style_pipeline.contracts.models import ModelConfig
from style_pipeline.curation.embeddings import (
    EmbeddingCache,
    ImageRef,
    embed_images,
    embed_refs,
    embed_texts,
    embeddings_frame,
    l2_normalize,
    model_cache_key,
    vectors_from_frame,
)
from style_pipeline.models import load_model
from style_pipeline.storage.store import Store
from style_pipeline_tests.curation.factories import scene


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    cache = tmp_path_factory.mktemp("models")
    return load_model(ModelConfig(profile="tiny", cache_dir=str(cache)))


class CallCounter:
    """Wraps ``encode_image`` and counts the images it sees."""

    def __init__(self, loaded):
        self.images = 0
        self._inner = loaded.model.encode_image

    def __call__(self, batch, *args, **kwargs):
        self.images += int(batch.shape[0])
        return self._inner(batch, *args, **kwargs)


@pytest.fixture
def counter(tiny, monkeypatch):
    wrapped = CallCounter(tiny)
    monkeypatch.setattr(tiny.model, "encode_image", wrapped)
    return wrapped


def _put_images(store: Store, seeds: list[int]) -> list[ImageRef]:
    refs = []
    for i, seed in enumerate(seeds):
        buffer = io.BytesIO()
        Image.fromarray(scene(seed, 72, 96)).save(buffer, format="JPEG", quality=90)
        data = buffer.getvalue()
        key = f"frames/2026-01-01/{i:03d}.jpg"
        store.put_bytes(data, key)
        refs.append(ImageRef(hashlib.sha256(data).hexdigest(), key))
    return refs


def test_embed_images_unit_float32_and_batch_invariant(tiny):
    images = [Image.fromarray(scene(s, 64, 80)) for s in range(5)]
    one = embed_images(tiny, images, batch_size=1)
    four = embed_images(tiny, images, batch_size=4)
    assert one.dtype == np.float32 and one.shape == (5, tiny.dim)
    np.testing.assert_allclose(np.linalg.norm(one, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(one, four, atol=1e-5)
    assert not np.allclose(one[0], one[1])


def test_embed_texts_unit_vectors(tiny):
    vecs = embed_texts(tiny, ["a photo of a cat.", "golden hour lighting.", "a photo of a cat."])
    assert vecs.shape == (3, tiny.dim) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(vecs[0], vecs[2])
    assert not np.allclose(vecs[0], vecs[1])


@pytest.mark.parametrize("root", ["local", "memory"])
def test_rerun_computes_nothing_new(tiny, counter, tmp_path, root):
    url = str(tmp_path / "storage") if root == "local" else f"memory://emb-{uuid.uuid4().hex}"
    store = Store(url)
    refs = _put_images(store, [1, 2, 3, 1])  # the last is the same content as the first
    cache = EmbeddingCache(store, tiny.model_id, tiny.dim)
    first = embed_refs(tiny, refs, store, cache, batch_size=2)
    assert (first.n_computed, first.n_cached, counter.images) == (3, 0, 3)
    np.testing.assert_array_equal(first.vectors[0], first.vectors[3])
    second = embed_refs(tiny, refs, store, cache, batch_size=2)
    assert (second.n_computed, second.n_cached, counter.images) == (0, 3, 3)
    np.testing.assert_array_equal(first.vectors, second.vectors)
    key = f"embeddings/cache/{model_cache_key(tiny.model_id)}/{refs[0].sha256[:2]}"
    assert store.list(key) == [f"{key}/{refs[0].sha256}.npy"]


def test_new_frames_only_compute_the_misses(tiny, counter, tmp_path):
    store = Store(str(tmp_path / "storage"))
    refs = _put_images(store, [10, 11, 12])
    cache = EmbeddingCache(store, tiny.model_id, tiny.dim)
    embed_refs(tiny, refs[:2], store, cache)
    result = embed_refs(tiny, refs, store, cache)
    assert (result.n_computed, result.n_cached, counter.images) == (1, 2, 3)


def test_cache_is_per_model(tiny, counter, tmp_path):
    store = Store(str(tmp_path / "storage"))
    refs = _put_images(store, [5])
    embed_refs(tiny, refs, store, EmbeddingCache(store, tiny.model_id, tiny.dim))
    other = EmbeddingCache(store, "ViT-B-32@laion2b_s34b_b79k", tiny.dim)
    assert other.get(refs[0].sha256) is None
    assert embed_refs(tiny, refs, store, other).n_computed == 1


def test_cache_rejects_bad_keys_and_vectors(tmp_path):
    store = Store(str(tmp_path))
    cache = EmbeddingCache(store, "m@1", 4)
    with pytest.raises(ValueError, match="sha256"):
        cache.key("../../etc/passwd")
    with pytest.raises(ValueError, match="shape"):
        cache.put("a" * 64, np.zeros(3))


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


GOOD = _npy(np.ones(4, dtype=np.float32) / 2)


@pytest.mark.parametrize(
    ("damaged", "problem"),
    [
        (GOOD[: len(GOOD) // 2], "EOF"),  # a torn write
        (GOOD[:20], "EOF"),  # cut inside the header
        (b"", "EOFError"),
        (b"\x00garbage", "pickled"),
        (b"PK\x03\x04junk", "BadZipFile"),
        (_npy(np.zeros(5, dtype=np.float32)), "expected float32[4]"),
        (_npy(np.zeros(4, dtype=np.float64)), "expected float32[4]"),
        (_npy(np.array([1, np.nan, 0, 0], dtype=np.float32)), "non-finite"),
    ],
)
def test_an_unreadable_entry_is_a_logged_miss(tmp_path, caplog, damaged, problem):
    store = Store(str(tmp_path))
    cache = EmbeddingCache(store, "m@1", 4)
    key = cache.key("b" * 64)
    store.put_bytes(damaged, key)
    with caplog.at_level(logging.WARNING, logger="style_pipeline.curation.embeddings"):
        assert cache.get("b" * 64) is None
    assert cache.unreadable == [key]
    [record] = caplog.records
    assert key in record.getMessage() and problem in record.getMessage()
    store.put_bytes(GOOD, key)
    np.testing.assert_array_equal(cache.get("b" * 64), np.ones(4, dtype=np.float32) / 2)


@pytest.mark.parametrize("root", ["local", "memory"])
def test_damaged_entries_are_recomputed_rewritten_and_match_a_clean_run(
    tiny, counter, tmp_path, caplog, root
):
    url = str(tmp_path / "storage") if root == "local" else f"memory://emb-{uuid.uuid4().hex}"
    store = Store(url)
    refs = _put_images(store, [21, 22, 23])
    cache = EmbeddingCache(store, tiny.model_id, tiny.dim)
    clean = embed_refs(tiny, refs, store, cache, batch_size=2)
    torn, garbage = cache.key(refs[0].sha256), cache.key(refs[2].sha256)
    whole = store.read_bytes(torn)
    store.put_bytes(whole[: len(whole) - 100], torn)
    store.put_bytes(b"\x13\x37 not an npy", garbage)

    caplog.set_level(logging.WARNING, logger="style_pipeline.curation.embeddings")
    again = EmbeddingCache(store, tiny.model_id, tiny.dim)
    result = embed_refs(tiny, refs, store, again, batch_size=2)
    assert (result.n_computed, result.n_cached, counter.images) == (2, 1, 5)
    assert result.unreadable == (torn, garbage)
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert torn in logged and garbage in logged
    np.testing.assert_allclose(result.vectors, clean.vectors, atol=1e-6)
    third = embed_refs(tiny, refs, store, EmbeddingCache(store, tiny.model_id, tiny.dim))
    assert (third.n_computed, third.n_cached, third.unreadable) == (0, 3, ())  # rewritten
    np.testing.assert_array_equal(third.vectors, result.vectors)


def test_unreadable_image_names_the_key(tiny, tmp_path):
    store = Store(str(tmp_path))
    store.put_bytes(b"not an image", "frames/bad.jpg")
    with pytest.raises(ValueError, match="frames/bad.jpg"):
        embed_refs(tiny, [ImageRef("c" * 64, "frames/bad.jpg")], store)


@pytest.mark.parametrize(
    ("model_id", "key"),
    [
        ("ViT-B-32@laion2b_s34b_b79k", "ViT-B-32_laion2b_s34b_b79k"),
        ("tiny-vit-abc@sha256:0123", "tiny-vit-abc_sha256_0123"),
        ("a/b c", "a_b_c"),
    ],
)
def test_model_cache_key(model_id, key):
    assert model_cache_key(model_id) == key


def test_l2_normalize_keeps_zero_rows():
    out = l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])


def test_table_round_trip(tiny, tmp_path):
    store = Store(str(tmp_path))
    refs = _put_images(store, [7, 8])
    vectors = embed_refs(tiny, refs, store).vectors
    table = embeddings_frame(["f1", "f2"], refs, vectors, tiny)
    assert table.columns == [
        "frame_id",
        "sha256",
        "model_name",
        "pretrained",
        "model_id",
        "dim",
        "embedding",
    ]
    assert table["dim"].to_list() == [tiny.dim] * 2
    np.testing.assert_array_equal(vectors_from_frame(table), vectors)
    empty = embeddings_frame([], [], np.zeros((0, tiny.dim)), tiny)
    assert vectors_from_frame(empty).shape == (0, tiny.dim)
