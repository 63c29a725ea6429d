from __future__ import annotations

import imagehash
import numpy as np
import pytest
from PIL import Image

from style_pipeline.curation import hashing
from style_pipeline_tests.curation.factories import jpeg, save, scene


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hex_matches_imagehash(seed):
    image = Image.fromarray(scene(seed))
    hashes = hashing.hash_image(image)
    assert hashing.to_hex(hashes.phash) == str(imagehash.phash(image))
    assert hashing.to_hex(hashes.dhash) == str(imagehash.dhash(image))
    assert hashing.from_hex(hashing.to_hex(hashes.phash)) == hashes.phash


@pytest.mark.parametrize("bad", ["", "abc", "0" * 17, "zz" * 8])
def test_from_hex_rejects_malformed(bad):
    with pytest.raises(ValueError):
        hashing.from_hex(bad)


@pytest.mark.parametrize("value", [-1, 1 << 64])
def test_to_hex_rejects_out_of_range(value):
    with pytest.raises(ValueError):
        hashing.to_hex(value)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [(0, 0, 0), (0, 1, 1), (0, (1 << 64) - 1, 64), (0b1010, 0b0101, 4), (1 << 63, 0, 1)],
)
def test_hamming(a, b, expected):
    assert hashing.hamming(a, b) == expected
    assert hashing.hamming_many(np.array([a], np.uint64), np.array([b], np.uint64))[0] == expected


def test_popcount_matches_int_bit_count():
    values = np.random.default_rng(0).integers(0, 2**64 - 1, 500, dtype=np.uint64)
    assert hashing.popcount(values).tolist() == [int(v).bit_count() for v in values]


def test_bits_to_int_rejects_wrong_size():
    with pytest.raises(ValueError):
        hashing.bits_to_int(np.zeros((4, 4), dtype=bool))


def _codes_with_neighbours(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 2**64 - 1, n, dtype=np.uint64)
    for i in range(0, n - 1, 3):  # plant neighbours at distances 0..15
        flips = rng.choice(64, size=int(rng.integers(0, 16)), replace=False)
        codes[i + 1] = codes[i] ^ np.uint64(sum(1 << int(f) for f in flips))
    return codes


def _naive(query, base, radius, upper):
    return {
        (i, j)
        for i, q in enumerate(query)
        for j, b in enumerate(base)
        if (not upper or i < j) and hashing.hamming(int(q), int(b)) <= radius
    }


@pytest.mark.parametrize("radius", [0, 3, 7, 12])
@pytest.mark.parametrize("indexed", [False, True])
def test_radius_pairs_self_join_equals_naive(radius, indexed, monkeypatch):
    if indexed:
        monkeypatch.setattr(hashing, "_BRUTE_FORCE_PAIRS", 0)
    codes = _codes_with_neighbours(radius, 240)
    i, j, d = hashing.radius_pairs(codes, radius=radius)
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == _naive(codes, codes, radius, True)
    assert (d <= radius).all()
    expected = [hashing.hamming(int(codes[a]), int(codes[b])) for a, b in zip(i, j, strict=True)]
    assert d.tolist() == expected


@pytest.mark.parametrize("radius", [2, 9, 14])
@pytest.mark.parametrize("indexed", [False, True])
def test_radius_pairs_against_base_equals_naive(radius, indexed, monkeypatch):
    if indexed:
        monkeypatch.setattr(hashing, "_BRUTE_FORCE_PAIRS", 0)
    codes = _codes_with_neighbours(7, 300)
    query, base = codes[::2], codes[1::2]
    i, j, _ = hashing.radius_pairs(query, base, radius)
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == _naive(query, base, radius, False)


def test_radius_pairs_empty_and_invalid():
    empty = np.empty(0, np.uint64)
    assert all(a.size == 0 for a in hashing.radius_pairs(empty, radius=4))
    with pytest.raises(ValueError):
        hashing.radius_pairs(np.zeros(3, np.uint64), radius=65)


@pytest.mark.parametrize("seed", [3, 4])
def test_hash_file_is_stable_under_recompression(tmp_path, seed):
    image = scene(seed)
    original = hashing.hash_file(save(image, tmp_path / "a.jpg"))
    recompressed = hashing.hash_file(save(jpeg(image, 40), tmp_path / "b.jpg", 40))
    other = hashing.hash_file(save(scene(seed + 100), tmp_path / "c.jpg"))
    assert hashing.hamming(original.phash, recompressed.phash) <= 4
    assert hashing.hamming(original.phash, other.phash) > 16


def test_hash_files_keeps_order(tmp_path):
    paths = [save(scene(s), tmp_path / f"{s}.jpg") for s in range(5)]
    assert hashing.hash_files(paths, workers=2) == [hashing.hash_file(p) for p in paths]
