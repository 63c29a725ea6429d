"""Scale benchmark of the curation core: ``clusters`` + ``curated_frames`` and embeddings.

1. Wall time of clustering (faiss k-NN graph, PCA, HDBSCAN, medoids) and selection
   (facility location, lazy greedy) on 10k and 100k synthetic 512-d embeddings:
   Gaussian blobs with a low-rank (8-d) spread plus isotropic noise and 2% scattered
   outliers, L2-normalised. Recovery is checked with the adjusted Rand index.
2. Embedding throughput (images/s) through ``embed_refs`` (JPEG read + preprocess +
   forward) with the tiny model and a ViT-B-32-shaped random-init model at 224 px.

Nothing is downloaded. Usage::

    .venv/bin/python benchmarks/bench_curation_scale.py [--sizes 10000 100000]
        [--images 128] [--write-docs docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.metrics import adjusted_rand_score

from style_pipeline.contracts.curation import ClusterConfig, SelectionConfig
from style_pipeline.contracts.models import ClipArch, ModelConfig
from style_pipeline.curation.clustering import cluster_embeddings
from style_pipeline.curation.embeddings import EmbeddingCache, ImageRef, embed_refs
from style_pipeline.curation.selection import select_frames
from style_pipeline.models import load_tiny
from style_pipeline.storage.store import Store

SECTION = "## Curation: embeddings, clustering, selection"

from docs_section import write_section  # noqa: E402


def synthetic_embeddings(n: int, dim: int = 512, blobs: int = 50, seed: int = 0):
    """Unit vectors in ``blobs`` Gaussian clusters (+2% uniform outliers) and true labels."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(blobs, dim))
    spreads = rng.normal(scale=0.35, size=(blobs, 8, dim))
    n_out = n // 50
    truth = rng.integers(0, blobs, n - n_out)
    latent = rng.normal(size=(n - n_out, 8))
    x = centers[truth] + np.einsum("nk,nkd->nd", latent, spreads[truth])
    x += rng.normal(scale=0.3, size=x.shape)
    x = np.vstack([x, rng.normal(scale=3.0, size=(n_out, dim))])
    truth = np.concatenate([truth, np.full(n_out, -1)])
    order = rng.permutation(n)
    x, truth = x[order], truth[order]
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), truth


def bench_scale(n: int, budget: int) -> dict:
    x, truth = synthetic_embeddings(n)
    rng = np.random.default_rng(1)
    ids = [f"{i:08d}" for i in range(n)]
    quality = rng.random(n)
    failed = rng.random(n) < 0.1
    ineligible = {ids[i]: "failed gate (blurry)" for i in np.flatnonzero(failed)}
    t0 = time.perf_counter()
    clusters = cluster_embeddings(x, ClusterConfig())
    t1 = time.perf_counter()
    result = select_frames(
        ids,
        quality,
        x,
        clusters.labels,
        SelectionConfig(budget=budget),
        ineligible=ineligible,
        outlier_scores=clusters.outlier_scores,
        knn=clusters.knn,
    )
    t2 = time.perf_counter()
    inliers = truth >= 0
    return {
        "n": n,
        "budget": budget,
        "clusters_s": t1 - t0,
        "selection_s": t2 - t1,
        "total_s": t2 - t0,
        "n_clusters": clusters.n_clusters,
        "outlier_frac": clusters.n_outliers / n,
        "ari": adjusted_rand_score(truth[inliers], clusters.labels[inliers]),
        "kept": len(result.kept_ids),
        "kept_clusters": len({d.cluster for d in result.decisions if d.keep and d.cluster >= 0}),
        "coverage": result.coverage,
        "knn": clusters.notes[0],
        "stages": clusters.timings,
        "load": os.getloadavg()[0],
        "greedy": result.notes[-1],
    }


def _jpeg_store(root: Path, count: int, size=(640, 360)) -> tuple[Store, list[ImageRef]]:
    import hashlib

    store, refs, rng = Store(str(root)), [], np.random.default_rng(0)
    for i in range(count):
        pixels = rng.integers(0, 255, size=(size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
        im = Image.fromarray(pixels).resize(size, Image.BILINEAR)
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=90)
        data = buf.getvalue()
        key = f"frames/{i:05d}.jpg"
        store.put_bytes(data, key)
        refs.append(ImageRef(hashlib.sha256(data).hexdigest(), key))
    return store, refs


def bench_embeddings(arch: ClipArch, count: int, batch_size: int = 32) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        config = ModelConfig(profile="tiny", cache_dir=str(Path(tmp) / "models"), tiny=arch)
        t0 = time.perf_counter()
        loaded = load_tiny(config)
        load_s = time.perf_counter() - t0
        store, refs = _jpeg_store(Path(tmp) / "storage", count)
        cache = EmbeddingCache(store, loaded.model_id, loaded.dim)
        embed_refs(loaded, refs[:batch_size], store, None, batch_size)  # warm-up
        t0 = time.perf_counter()
        first = embed_refs(loaded, refs, store, cache, batch_size)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = embed_refs(loaded, refs, store, cache, batch_size)
        warm = time.perf_counter() - t0
        assert again.n_computed == 0 and np.array_equal(first.vectors, again.vectors)
        params = sum(p.numel() for p in loaded.model.visual.parameters())
    return {
        "model": loaded.model_name,
        "image_size": loaded.image_size,
        "visual_params_m": params / 1e6,
        "build_and_load_s": load_s,
        "images": count,
        "images_per_s": count / cold,
        "cached_images_per_s": count / warm,
    }


def render(scale: list[dict], embeds: list[dict]) -> str:
    lines = [
        SECTION,
        "",
        f"Machine: {os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__} (threads {torch.get_num_threads()}), shared with other jobs "
        f"(load average at start {os.getloadavg()[0]:.1f}). "
        "Command: `.venv/bin/python benchmarks/bench_curation_scale.py`.",
        "",
        "### `clusters` + `curated_frames` on synthetic embeddings (dim 512)",
        "",
        "50 Gaussian blobs (8-d low-rank spread + isotropic noise) and 2% scattered outliers; "
        "10% of frames marked failed-gate; default `ClusterConfig` / `SelectionConfig`. "
        "Goal: 100k in under 2 minutes.",
        "",
        "| n | k-NN graph | PCA s | k-NN s | HDBSCAN s | clusters s | selection s | total s "
        "| goal | load avg (1 min) | clusters found | outliers | ARI (inliers) | kept (budget) "
        "| clusters covered | coverage |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in scale:
        goal = "" if r["n"] < 100_000 else ("met" if r["total_s"] < 120 else "**missed**")
        st = r["stages"]
        lines.append(
            f"| {r['n']:,} | {r['knn'].removeprefix('knn: ')} | {st['pca_s']:.1f} "
            f"| {st['knn_s']:.1f} | {st['hdbscan_s']:.1f} | {r['clusters_s']:.1f} "
            f"| {r['selection_s']:.1f} | {r['total_s']:.1f} | {goal} | {r['load']:.1f} "
            f"| {r['n_clusters']} | {r['outlier_frac']:.1%} | {r['ari']:.3f} "
            f"| {r['kept']} ({r['budget']}) | {r['kept_clusters']} | {r['coverage']:.3f} |"
        )
    greedy = {r["n"]: r["greedy"] for r in scale}  # identical across repeats (deterministic)
    lines += ["", "Greedy: " + "; ".join(f"n={n:,}: {g}" for n, g in greedy.items()), ""]
    if embeds:
        lines += [
            "### `embeddings` throughput (random-init weights, no download)",
            "",
            "640x360 JPEGs read from a local `Store`, preprocessed and embedded in batches "
            "of 32 on CPU; second pass served entirely from the embedding cache.",
            "",
            "| model | input px | visual params | images | images/s | cached images/s |",
            "|---|---|---|---|---|---|",
        ]
        for e in embeds:
            lines.append(
                f"| {e['model']} | {e['image_size']} | {e['visual_params_m']:.1f}M "
                f"| {e['images']} | {e['images_per_s']:.1f} | {e['cached_images_per_s']:.0f} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--budget", type=int, default=SelectionConfig().budget)
    parser.add_argument("--repeat", type=int, default=1, help="runs per size")
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--skip-embeddings", action="store_true")
    parser.add_argument("--write-docs", type=Path, default=None)
    args = parser.parse_args()
    scale = []
    for n in args.sizes:
        for _ in range(args.repeat):
            scale.append(bench_scale(n, args.budget))
            print(scale[-1], flush=True)
    embeds = []
    if not args.skip_embeddings:
        for arch in (ClipArch(), ClipArch.vit_b_32()):
            embeds.append(bench_embeddings(arch, args.images))
            print(embeds[-1], flush=True)
    text = render(scale, embeds)
    print(text)
    if args.write_docs:
        write_section(SECTION, text, args.write_docs)


if __name__ == "__main__":
    main()
