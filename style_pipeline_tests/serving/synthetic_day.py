"""A synthetic day written straight into a Store: the six tables the review page reads,
with the pipeline's column names and types, and one small JPEG per frame.

For route tests and ``benchmarks/bench_review.py`` (1,000 frames in a second); the
end-to-end tests use a real run on generated media instead.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
import polars as pl
from PIL import Image

from style_pipeline.storage import layout
from style_pipeline.storage.store import Store

K = 5  # neighbours per frame in the clusters table
CATEGORIES = (("subject", "person"), ("setting", "indoors"), ("lighting", "soft light"))


def frame_ids(n: int, seed: int = 0) -> list[str]:
    return [hashlib.sha256(f"{seed}:{i}".encode()).hexdigest() for i in range(n)]


def _jpeg(i: int, size: tuple[int, int]) -> bytes:
    rng = np.random.default_rng(i)
    pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=80)
    return out.getvalue()


def write_day(
    store: Store,
    date: str,
    n: int,
    *,
    seed: int = 0,
    clusters: int = 8,
    size: tuple[int, int] = (96, 64),
    skip: tuple[str, ...] = (),
) -> list[str]:
    """Write ``n`` frames of ``date`` (tables named in ``skip`` are left out); their ids."""
    ids = frame_ids(n, seed)
    rng = np.random.default_rng(seed)
    paths = [layout.frame_key(date, fid) for fid in ids]
    for i, path in enumerate(paths):
        store.put_bytes(_jpeg(seed * 100_000 + i, size), path)
    cluster = [(i % (clusters + 1)) - 1 for i in range(n)]  # -1: outliers
    passed = [i % 7 != 3 for i in range(n)]
    dup_of = [ids[i - 1] if i % 11 == 10 else None for i in range(n)]
    keep = [p and d is None and c >= 0 and i % 3 == 0
            for i, (p, d, c) in enumerate(zip(passed, dup_of, cluster, strict=True))]  # fmt: skip
    codes = ["selected" if k else ("ineligible" if not p or d else "over_budget")
             for k, p, d in zip(keep, passed, dup_of, strict=True)]  # fmt: skip
    tables = {
        "frames": pl.DataFrame({
            "frame_id": ids, "media_id": [hashlib.sha256(f.encode()).hexdigest() for f in ids],
            "source_name": [f"{date}/photo_{i:04d}.jpg" for i in range(n)],
            "kind": ["image"] * n, "mode": ["still"] * n, "timestamp_s": [0.0] * n,
            "path": paths, "width": [size[0]] * n, "height": [size[1]] * n,
            "sha256": ids, "scene_score": pl.Series([None] * n, dtype=pl.Float64),
        }),
        "quality_scores": pl.DataFrame({
            "frame_id": ids, "sharpness": rng.uniform(50, 4000, n),
            "mean_luminance": rng.uniform(0, 1, n), "noise_sigma": rng.uniform(0, 15, n),
            "colorfulness": rng.uniform(0, 90, n),
            "ssim_prev": pl.Series([None] * n, dtype=pl.Float64),
            "face_count": rng.integers(0, 3, n), "largest_face_fraction": rng.uniform(0, .4, n),
            "brisque": pl.Series([None] * n, dtype=pl.Float64),
            "clip_iqa": rng.uniform(0, 1, n), "passed": passed,
            "reasons": [[] if p else ["blurry"] for p in passed],
            "score": rng.uniform(1, 4, n),
        }),
        "dedup_set": pl.DataFrame({
            "frame_id": ids,
            "group_id": [d or f for f, d in zip(ids, dup_of, strict=True)],
            "group_size": [2 if (d or (i + 1 < n and dup_of[i + 1])) else 1
                           for i, d in enumerate(dup_of)],
            "is_duplicate": [d is not None for d in dup_of], "duplicate_of": dup_of,
            "duplicate_partition": [date if d else None for d in dup_of],
            "distance": pl.Series([3 if d else None for d in dup_of], dtype=pl.Int64),
        }),
        "clusters": pl.DataFrame({
            "frame_id": ids, "cluster": cluster, "is_outlier": [c < 0 for c in cluster],
            "membership": rng.uniform(0, 1, n).astype(np.float32),
            "outlier_score": rng.uniform(0, 1, n).astype(np.float32),
            "is_medoid": [0 <= c and i == c + 1 for i, c in enumerate(cluster)],
            "neighbor_ids": pl.Series([[ids[(i + j + 1) % n] for j in range(K)]
                                       for i in range(n)], dtype=pl.Array(pl.String, K)),
            "neighbor_sims": pl.Series([[0.9 - 0.01 * j for j in range(K)] for _ in range(n)],
                                       dtype=pl.Array(pl.Float32, K)),
        }),
        "curated_frames": pl.DataFrame({
            "frame_id": ids, "keep": keep, "code": codes,
            "reason": [f"{c}: synthetic decision {i}" for i, c in enumerate(codes)],
            "cluster": cluster, "quality": rng.uniform(1, 4, n),
            "pick": pl.Series([i if k else None for i, k in enumerate(keep)], dtype=pl.Int64),
            "gain": pl.Series([0.1 if k else None for k in keep], dtype=pl.Float64),
            "path": paths, "media_id": [hashlib.sha256(f.encode()).hexdigest() for f in ids],
            "labels": [[{"category": c, "term": t, "score": 0.25} for c, t in CATEGORIES]] * n,
        }),
    }  # fmt: skip
    kept_ids = [f for f, k in zip(ids, keep, strict=True) if k]
    tables["captions"] = pl.DataFrame(
        {"frame_id": kept_ids, "caption": [f"sty1e, a photo {f[:6]}" for f in kept_ids]}
    )
    for name, table in tables.items():
        if name in skip:
            continue
        out = io.BytesIO()
        table.write_parquet(out)
        store.put_bytes(out.getvalue(), layout.table_key(name, date))
    return ids
