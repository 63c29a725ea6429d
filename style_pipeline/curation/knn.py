"""PCA and the faiss k-nearest-neighbour graph of unit embeddings (cosine similarity).

Exact ``IndexFlatIP`` up to ``exact_max_n`` points; beyond that an ``IndexIVFFlat``
(``nlist`` ~ sqrt(n), ``nprobe``) searched on PCA-reduced vectors, whose neighbours are
then re-scored with exact full-dimension cosine similarity.
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np

from style_pipeline.contracts.curation import KnnConfig


@dataclass
class KnnGraph:
    """Row i's neighbours ``indices[i]`` (best first, -1 = none) and cosine ``sims[i]``."""

    indices: np.ndarray
    sims: np.ndarray
    method: str

    @property
    def n(self) -> int:
        return int(self.indices.shape[0])


def pca_fit(
    x: np.ndarray, dim: int, sample: int = 20_000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and the top-``dim`` principal axes (d, dim) of ``x``, fit on a seeded sample."""
    n, d = x.shape
    if n < 2:
        raise ValueError(f"PCA needs at least 2 rows, got {n}")
    dim = min(dim, d, n)
    rows = x if n <= sample else x[np.random.default_rng(seed).choice(n, sample, replace=False)]
    mean = rows.mean(axis=0, dtype=np.float64)
    centred = (rows - mean).astype(np.float32)
    cov = (centred.T @ centred).astype(np.float64) / (len(rows) - 1)
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1][:dim]
    axes = vectors[:, order]
    # Fix each axis' sign (largest |component| positive) so results are reproducible.
    signs = np.sign(axes[np.abs(axes).argmax(axis=0), np.arange(axes.shape[1])])
    axes = axes * np.where(signs == 0, 1.0, signs)
    return mean.astype(np.float32), axes.astype(np.float32)


def pca_apply(x: np.ndarray, mean: np.ndarray, axes: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray((x - mean) @ axes, dtype=np.float32)


def _drop_self(idx: np.ndarray, sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's own id (or the last hit when absent) and keep ``k`` columns."""
    own = idx == np.arange(idx.shape[0])[:, None]
    absent = ~own.any(axis=1)
    own[absent, -1] = True
    order = np.argsort(own, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(idx, order, 1), np.take_along_axis(sims, order, 1)


def _exact_sims(x: np.ndarray, idx: np.ndarray, chunk: int = 8192) -> np.ndarray:
    sims = np.zeros(idx.shape, dtype=np.float32)
    for s in range(0, idx.shape[0], chunk):
        block = idx[s : s + chunk]
        sims[s : s + chunk] = np.einsum("nd,nkd->nk", x[s : s + chunk], x[np.maximum(block, 0)])
    return np.where(idx >= 0, sims, 0.0).astype(np.float32)


def knn_graph(
    x: np.ndarray, config: KnnConfig | None = None, reduced: np.ndarray | None = None
) -> KnnGraph:
    """The k-NN graph of unit rows ``x`` (n, d) by inner product (= cosine).

    ``reduced`` optionally gives PCA projections of ``x`` (components in decreasing
    variance, at least ``ivf_dim`` of them) so the IVF path need not fit its own PCA.
    """
    config = config or KnnConfig()
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = x.shape[0]
    k = min(config.k, max(n - 1, 0))
    if k == 0:
        empty = np.zeros((n, 0), dtype=np.int64)
        return KnnGraph(empty, empty.astype(np.float32), "none")
    if n <= config.exact_max_n:
        index = faiss.IndexFlatIP(x.shape[1])
        index.add(x)
        sims, idx = index.search(x, k + 1)
        idx, sims = _drop_self(idx.astype(np.int64), sims, k)
        return KnnGraph(idx, np.where(idx >= 0, sims, 0.0).astype(np.float32), "exact")
    search = x
    if config.ivf_dim is not None and config.ivf_dim < x.shape[1]:
        if reduced is None or reduced.shape[1] < config.ivf_dim:
            mean, axes = pca_fit(x, config.ivf_dim, config.pca_sample, config.seed)
            reduced = pca_apply(x, mean, axes)
        search = np.ascontiguousarray(reduced[:, : config.ivf_dim])
        search /= np.maximum(np.linalg.norm(search, axis=1, keepdims=True), 1e-12)
    dim = search.shape[1]
    nlist = min(config.ivf_nlist or max(1, round(np.sqrt(n))), n)
    quantizer = faiss.IndexFlatIP(dim)
    ivf = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.cp.seed = config.seed
    rng = np.random.default_rng(config.seed)
    train_n = min(n, max(config.pca_sample, 40 * nlist))
    ivf.train(search if train_n == n else search[rng.choice(n, train_n, replace=False)])
    ivf.add(search)
    ivf.nprobe = min(config.ivf_nprobe, nlist)
    _, idx = ivf.search(search, k + 1)
    idx, _ = _drop_self(idx.astype(np.int64), np.zeros(idx.shape, np.float32), k)
    sims = _exact_sims(x, idx)
    order = np.argsort(np.where(idx >= 0, -sims, np.inf), axis=1, kind="stable")
    idx, sims = np.take_along_axis(idx, order, 1), np.take_along_axis(sims, order, 1)
    method = f"ivf(nlist={nlist},nprobe={ivf.nprobe},dim={dim})"
    return KnnGraph(idx, sims, method)
