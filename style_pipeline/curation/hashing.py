"""Perceptual hashes (imagehash pHash and dHash) as 64-bit integers and Hamming search.

A hash is a Python ``int`` in ``[0, 2**64)``; its hex form (16 digits) equals ``str()`` of
the matching ``imagehash.ImageHash``. Many hashes are held as ``numpy.uint64`` arrays, and
:func:`radius_pairs` finds every pair within a Hamming radius with multi-index hashing
(Norouzi et al.): the 64 bits are cut into 16-bit blocks; two codes within distance ``r``
agree within ``r // blocks`` bits on at least one block (pigeonhole), so only codes that
share a bucket with one of those block neighbours are compared.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import imagehash
import numpy as np
from PIL import Image

HASH_BITS = 64
_BLOCK_BITS = 16
_BLOCKS = HASH_BITS // _BLOCK_BITS
_BRUTE_FORCE_PAIRS = 4_000_000  # below this many pairs a dense comparison is faster
_MAX_SUB_RADIUS = 3  # beyond it the index probes more buckets than a dense scan compares
_CHUNK_ELEMENTS = 4_000_000  # bound on temporary array sizes


@dataclass(frozen=True)
class ImageHashes:
    """pHash and dHash of one image as 64-bit integers."""

    phash: int
    dhash: int


def bits_to_int(bits: np.ndarray) -> int:
    """A boolean 8x8 hash matrix (row-major, first bit most significant) as an int."""
    flat = np.asarray(bits, dtype=bool).ravel()
    if flat.size != HASH_BITS:
        raise ValueError(f"expected {HASH_BITS} hash bits, got {flat.size}")
    return int.from_bytes(np.packbits(flat).tobytes(), "big")


def to_hex(value: int) -> str:
    """16 lowercase hex digits, the format of ``str(imagehash.ImageHash)``."""
    if not 0 <= value < 1 << HASH_BITS:
        raise ValueError(f"hash out of 64-bit range: {value}")
    return f"{value:016x}"


def from_hex(text: str) -> int:
    """Inverse of :func:`to_hex`; raises on anything but 16 hex digits."""
    if len(text) != 16:
        raise ValueError(f"expected 16 hex digits, got {text!r}")
    return int(text, 16)


def hex_array(texts: Iterable[str]) -> np.ndarray:
    """Hex hashes -> ``uint64`` array."""
    return np.array([from_hex(t) for t in texts], dtype=np.uint64)


def hash_image(image: Image.Image) -> ImageHashes:
    """pHash and dHash (8x8, imagehash defaults) of a PIL image."""
    gray = image if image.mode == "L" else image.convert("L")
    return ImageHashes(
        phash=bits_to_int(imagehash.phash(gray).hash),
        dhash=bits_to_int(imagehash.dhash(gray).hash),
    )


def hash_file(path: str | os.PathLike) -> ImageHashes:
    """Hash an image file. JPEGs are decoded at reduced scale (DCT scaling), which is
    several times faster and leaves the 32x32 pHash input practically unchanged."""
    with Image.open(path) as image:
        image.draft("L", (128, 128))
        return hash_image(image.convert("L"))


def hash_files(paths: Sequence[str | os.PathLike], workers: int = 2) -> list[ImageHashes]:
    """:func:`hash_file` over many files, in order; decoding runs in ``workers`` threads
    (Pillow releases the GIL while decoding and resizing)."""
    if workers <= 1 or len(paths) < 2:
        return [hash_file(p) for p in paths]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(hash_file, paths))


def hamming(a: int, b: int) -> int:
    """Hamming distance of two 64-bit hashes."""
    return (a ^ b).bit_count()


def popcount(values: np.ndarray) -> np.ndarray:
    """Set bits per element of an unsigned integer array (vectorized)."""
    return np.bitwise_count(np.asarray(values, dtype=np.uint64)).astype(np.int64)


def hamming_many(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise Hamming distances of two equal-length (or broadcastable) hash arrays."""
    return popcount(np.bitwise_xor(np.asarray(a, np.uint64), np.asarray(b, np.uint64)))


def _within(query: np.ndarray, base: np.ndarray, radius: int) -> np.ndarray:
    """Boolean mask of ``hamming(query, base) <= radius`` (broadcasting, no int64 copy)."""
    return np.bitwise_count(np.bitwise_xor(query, base)) <= radius


def _brute_pairs(query: np.ndarray, base: np.ndarray, radius: int, upper: bool):
    out_q, out_b = [], []
    rows = max(1, _CHUNK_ELEMENTS // base.size)
    for start in range(0, query.size, rows):
        stop = min(query.size, start + rows)
        # In a self-join row i only needs the columns after it.
        cols = base[start + 1 :] if upper else base
        offset = start + 1 if upper else 0
        qi, bj = np.nonzero(_within(query[start:stop, None], cols[None, :], radius))
        qi += start
        bj += offset
        if upper:
            keep = qi < bj
            qi, bj = qi[keep], bj[keep]
        out_q.append(qi)
        out_b.append(bj)
    return np.concatenate(out_q), np.concatenate(out_b)


def _block_masks(sub_radius: int) -> np.ndarray:
    """All 16-bit masks with at most ``sub_radius`` set bits."""
    masks = [0]
    for k in range(1, sub_radius + 1):
        for bits in itertools.combinations(range(_BLOCK_BITS), k):
            masks.append(sum(1 << b for b in bits))
    return np.array(masks, dtype=np.int32)


def _block_keys(codes: np.ndarray, block: int) -> np.ndarray:
    return ((codes >> np.uint64(block * _BLOCK_BITS)) & np.uint64(0xFFFF)).astype(np.int32)


def _indexed_pairs(query: np.ndarray, base: np.ndarray, radius: int, upper: bool):
    masks = _block_masks(radius // _BLOCKS)
    found: list[np.ndarray] = []
    for block in range(_BLOCKS):
        base_keys, query_keys = _block_keys(base, block), _block_keys(query, block)
        counts = np.bincount(base_keys, minlength=1 << _BLOCK_BITS).astype(np.int32)
        starts = np.concatenate(([0], np.cumsum(counts, dtype=np.int64)))
        order = np.argsort(base_keys, kind="stable").astype(np.int32)
        step = max(1, _CHUNK_ELEMENTS // query.size)
        for m0 in range(0, masks.size, step):
            chunk = masks[m0 : m0 + step]
            probe = query_keys[:, None] ^ chunk[None, :]
            hits = counts[probe]
            if upper:
                # A self-join meets each pair from both ends: probe upwards only (mask 0
                # stays in the own bucket and meets its pairs twice; unique() drops one).
                hits[probe < query_keys[:, None]] = 0
            flat = np.flatnonzero(hits)
            if flat.size == 0:
                continue
            n = hits.ravel()[flat]
            ends = np.cumsum(n, dtype=np.int64)
            offsets = np.arange(ends[-1], dtype=np.int64) - np.repeat(ends - n, n)
            qi = np.repeat((flat // chunk.size).astype(np.int32), n)
            bj = order[np.repeat(starts[probe.ravel()[flat]], n) + offsets]
            keep = _within(query[qi], base[bj], radius)
            qi, bj = qi[keep].astype(np.int64), bj[keep].astype(np.int64)
            if upper:
                qi, bj = np.minimum(qi, bj), np.maximum(qi, bj)
                distinct = qi != bj
                qi, bj = qi[distinct], bj[distinct]
            found.append(qi * base.size + bj)
    if not found:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    # A pair close on several blocks is found once per block: keep one copy.
    key = np.unique(np.concatenate(found))
    return key // base.size, key % base.size


def radius_pairs(
    query: np.ndarray, base: np.ndarray | None = None, radius: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair ``(i, j)`` with ``hamming(query[i], base[j]) <= radius``.

    With ``base=None`` it is a self-join over ``query`` returning each unordered pair once
    (``i < j``). Returns ``(i, j, distance)`` arrays sorted by ``(i, j)``. Small inputs are
    compared densely; larger ones through the multi-index described in the module docstring
    as long as ``radius < 16`` (each 16-bit block then needs at most 697 probes; at larger
    radii a dense scan is cheaper).
    """
    if not 0 <= radius <= HASH_BITS:
        raise ValueError(f"radius must be in [0, {HASH_BITS}], got {radius}")
    query = np.asarray(query, dtype=np.uint64).ravel()
    upper = base is None
    base = query if base is None else np.asarray(base, dtype=np.uint64).ravel()
    if query.size == 0 or base.size == 0:
        empty = np.empty(0, np.int64)
        return empty, empty, empty
    if query.size * base.size <= _BRUTE_FORCE_PAIRS or radius // _BLOCKS > _MAX_SUB_RADIUS:
        qi, bj = _brute_pairs(query, base, radius, upper)
    else:
        qi, bj = _indexed_pairs(query, base, radius, upper)
    order = np.lexsort((bj, qi))
    qi, bj = qi[order].astype(np.int64), bj[order].astype(np.int64)
    return qi, bj, hamming_many(query[qi], base[bj])
