"""OpenCLIP image and text embeddings, batched, L2-normalised float32, cached by content.

Images are read, decoded and preprocessed in parallel and ahead of the forward
(:mod:`.image_loading`); inputs are cast to the model's dtype (fp32, fp16 or bf16) and
the vectors always come back float32 and unit length.

The cache maps (image sha256, model id) to one ``.npy`` object in a :class:`Store`:
``embeddings/cache/<model_key>/<sha[:2]>/<sha>.npy``. A re-run of the same frames with
the same model reads every vector back and calls the model zero times. An entry that
cannot be read back (torn, truncated, wrong shape, not finite) is a miss: its key is
logged, the vector recomputed and the entry rewritten, so one bad file never fails a run.
"""

from __future__ import annotations

import io
import logging
import re
import time
import zipfile
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, cast

import numpy as np
import polars as pl
import torch
from PIL import Image

from style_pipeline.curation.image_loading import BatchLoader, LoaderOptions, plan_preprocess
from style_pipeline.models import LoadedModel
from style_pipeline.models.device import auto_batch_size
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store

log = logging.getLogger(__name__)
# What np.load raises on a damaged entry: truncation (ValueError "EOF", EOFError),
# stray bytes (ValueError "pickled data"), a zip-looking head (BadZipFile).
_DECODE_ERRORS = (ValueError, EOFError, zipfile.BadZipFile)


@dataclass(frozen=True)
class ImageRef:
    """One image to embed: its content hash (the cache key) and its storage key."""

    sha256: str
    key: str


@dataclass
class EmbeddingResult:
    """Vectors in input order plus how many were computed vs read from the cache."""

    vectors: np.ndarray
    n_computed: int
    n_cached: int
    unreadable: tuple[str, ...] = ()  # cache keys that could not be read: misses, rewritten
    batch_size: int = 0  # the batch size used (``auto`` resolved)
    decode: str = ""  # how images were decoded, e.g. "cpu:16 threads, jpeg draft"


def model_cache_key(model_id: str) -> str:
    """A storage-safe directory name for a model id (``ViT-B-32@laion2b`` -> same, sanitised)."""
    key = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id).strip("._")
    if not key:
        raise ValueError(f"model id {model_id!r} gives an empty cache key")
    return key


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


class EmbeddingCache:
    """Vectors of one model keyed by content sha256, stored as ``.npy`` (no pickle)."""

    def __init__(self, store: Store, model_id: str, dim: int, prefix: str = layout.EMBEDDING_CACHE):
        self.store = store
        self.dim = dim
        self.prefix = layout.embedding_cache_dir(model_cache_key(model_id), prefix)
        self.unreadable: list[str] = []  # keys of entries that failed to load (then misses)

    def key(self, sha256: str) -> str:
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return layout.embedding_cache_key(self.prefix, sha256)

    def get(self, sha256: str) -> np.ndarray | None:
        """The cached vector, or None on a miss (an unreadable entry is a logged miss)."""
        key = self.key(sha256)
        if not self.store.exists(key):
            return None
        # Store errors (an S3 outage) propagate: only the entry's own bytes make a miss.
        data = self.store.read_bytes(key)
        problem: str | None
        try:
            vec = np.load(io.BytesIO(data), allow_pickle=False)
        except _DECODE_ERRORS as exc:
            problem = f"{type(exc).__name__}: {exc}"
        else:
            problem = self._problem(vec)
        if problem is None:
            return vec
        self.unreadable.append(key)
        log.warning("embedding cache entry %s is unreadable (%s): a miss", key, problem[:200])
        return None

    def _problem(self, vec: object) -> str | None:
        if not isinstance(vec, np.ndarray):
            return f"holds {type(vec).__name__}, not an array"
        if vec.dtype != np.float32 or vec.shape != (self.dim,):
            return f"holds {vec.dtype}{vec.shape}, expected float32[{self.dim}]"
        if not np.isfinite(vec).all():
            return "holds non-finite values"
        return None

    def put(self, sha256: str, vector: np.ndarray) -> None:
        vec = np.asarray(vector, dtype=np.float32)
        if vec.shape != (self.dim,):
            raise ValueError(f"vector shape {vec.shape} != ({self.dim},)")
        buf = io.BytesIO()
        np.save(buf, vec, allow_pickle=False)
        self.store.put_bytes(buf.getvalue(), self.key(sha256))


def _encoder(loaded: LoadedModel, name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The CLIP model's ``encode_image``/``encode_text`` method (``nn.Module``'s stubs type
    unknown attributes as ``Tensor | Module``)."""
    return cast(Callable[[torch.Tensor], torch.Tensor], getattr(loaded.model, name))


def encode_image_batch(loaded: LoadedModel, batch: torch.Tensor) -> torch.Tensor:
    """Image features of a preprocessed batch, cast to the model's device and input dtype
    first (fp16/bf16 weights need fp16/bf16 inputs); the features come back as float32."""
    batch = batch.to(loaded.device, loaded.input_dtype, non_blocking=True)
    return _encoder(loaded, "encode_image")(batch).float()


def embed_images(
    loaded: LoadedModel, images: Sequence[Image.Image], batch_size: int = 32
) -> np.ndarray:
    """(n, dim) float32 unit vectors of in-memory PIL images, in order (any precision)."""
    out = np.zeros((len(images), loaded.dim), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            batch = torch.stack([loaded.preprocess(im.convert("RGB")) for im in chunk])
            out[start : start + len(chunk)] = encode_image_batch(loaded, batch).cpu().numpy()
    return l2_normalize(out)


def embed_texts(loaded: LoadedModel, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
    """(n, dim) float32 unit vectors of texts (for zero-shot labels); tokens stay integer,
    open_clip casts the token embeddings to the weights' dtype itself."""
    out = np.zeros((len(texts), loaded.dim), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            chunk = list(texts[start : start + batch_size])
            tokens = loaded.tokenizer(chunk).to(loaded.device)
            feats = _encoder(loaded, "encode_text")(tokens)
            out[start : start + len(chunk)] = feats.float().cpu().numpy()
    return l2_normalize(out)


def image_bytes_per_item(loaded: LoadedModel, gpu_decode: bool) -> int:
    """Rough peak device bytes one image costs in a forward (for ``batch_size: auto``).

    Transformer activations (~24 x tokens x width values, attention maps included for
    ViT sizes), the float input twice, and with GPU decode a decoded 1080p frame plus the
    float copy its resize makes.
    """
    visual = loaded.model.visual
    grid = getattr(visual, "grid_size", None)
    tokens = int(grid[0] * grid[1]) + 1 if isinstance(grid, tuple) else 257
    width = int(getattr(getattr(visual, "transformer", None), "width", 1024))
    elem = torch.finfo(loaded.input_dtype).bits // 8
    activations = 24 * tokens * width * elem
    inputs = 2 * 3 * loaded.image_size**2 * 4
    decoded = 3 * 1920 * 1080 * (1 + 4 + 4) if gpu_decode else 0
    return activations + inputs + decoded


def resolve_batch_size(
    loaded: LoadedModel, batch_size: int | Literal["auto"], gpu_decode: bool = False
) -> int:
    """``batch_size`` itself, or for ``auto`` one from free CUDA memory (32 on CPU/MPS)."""
    if batch_size != "auto":
        return int(batch_size)
    return auto_batch_size(loaded.device, image_bytes_per_item(loaded, gpu_decode))


def _to_host(feats: torch.Tensor) -> tuple[torch.Tensor, torch.cuda.Event | None]:
    """Start copying features to the host; on CUDA without waiting (pinned + event)."""
    if feats.device.type != "cuda":
        return feats.cpu(), None
    host = torch.empty(feats.shape, dtype=feats.dtype, pin_memory=True)
    host.copy_(feats, non_blocking=True)
    event = torch.cuda.Event()
    event.record()
    return host, event


class ForwardThreads:
    """The CPU forward's intra-op threads beside the decode threads (CPU devices only).

    torch's OpenMP threads and the decode threads share the cores; when both are busy,
    or the machine is, the forward's barriers stall (measured on 2 loaded cores: the tiny
    model's forward ran 15-30x slower on 2 threads than on 1). So the first batch is
    measured: ``CALIBRATE`` images on one thread, timed with the thread's CPU clock; if
    one image's forward costs less CPU than decoding it (decode-bound: tiny models, small
    inputs) the forward keeps one thread and the cores decode. Else (compute-bound) the
    next ``CALIBRATE`` images run on the threads torch had, kept if they took ``GAIN``
    times less wall time per image (an idle machine: ~1.8x on 2 cores), else one thread
    (a loaded machine, where they were slower). Never more threads than torch had; restored
    afterwards. ``threads`` > 0 fixes the count instead.
    """

    CALIBRATE = 8
    GAIN = 1.25

    def __init__(self, loader: BatchLoader, device: torch.device, threads: int = 0):
        self.loader, self.enabled = loader, device.type == "cpu"
        self.base = torch.get_num_threads()
        self.fixed = min(threads, self.base) if threads else 0
        self.chosen = self.fixed or self.base
        # calibration: "one" (1 thread) -> "base" (torch's threads) -> "done"
        self.phase = "done" if self.fixed or self.base == 1 else "one"
        self.one_wall: float | None = None  # wall seconds per image on one thread
        self.forward_cost: float | None = None  # CPU seconds per image on one thread

    def restore(self) -> None:
        if self.enabled:
            torch.set_num_threads(self.base)

    def encode(self, loaded: LoadedModel, batch: torch.Tensor) -> torch.Tensor:
        """Features of ``batch``; while calibrating, its head is the measured sample."""
        if not self.enabled:
            return encode_image_batch(loaded, batch)
        parts = []
        while self.phase != "done" and len(batch):
            head, batch = batch[: self.CALIBRATE], batch[self.CALIBRATE :]
            parts.append(self._measure(loaded, head))
        if len(batch):
            torch.set_num_threads(self.chosen)
            parts.append(encode_image_batch(loaded, batch))
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _measure(self, loaded: LoadedModel, batch: torch.Tensor) -> torch.Tensor:
        threads = 1 if self.phase == "one" else self.base
        torch.set_num_threads(threads)
        wall, cpu = time.perf_counter(), time.thread_time()
        feats = encode_image_batch(loaded, batch)
        wall, cpu = (time.perf_counter() - wall) / len(batch), (time.thread_time() - cpu)
        if self.phase == "one":
            self.one_wall, self.forward_cost = wall, cpu / len(batch)
            decode = self.loader.decode_cost() or 0.0
            if self.forward_cost < decode:  # decode-bound: leave the cores to decoding
                self.chosen, self.phase = 1, "done"
            else:
                self.phase = "base"
        else:
            # more threads must pay for the CPU they burn: at least GAIN faster per image
            self.chosen = self.base if wall * self.GAIN < (self.one_wall or 0.0) else 1
            self.phase = "done"
        return feats


def encode_batches(
    loaded: LoadedModel,
    batches: Iterator[tuple[int, torch.Tensor]],
    threads: ForwardThreads | None = None,
) -> Generator[tuple[int, np.ndarray], None, None]:
    """``(start, unit vectors)`` per batch, one batch behind the forward: on CUDA the next
    batch is assembled and queued while the GPU still runs this one. A loading error is
    raised only after the vectors already computed were handed out (and cached)."""
    pending: tuple[int, torch.Tensor, torch.cuda.Event | None] | None = None

    def done(item: tuple[int, torch.Tensor, torch.cuda.Event | None]) -> tuple[int, np.ndarray]:
        start, host, event = item
        if event is not None:
            event.synchronize()
        return start, l2_normalize(host.numpy())

    with torch.inference_mode():
        try:
            for start, batch in batches:
                if threads is None:
                    feats = encode_image_batch(loaded, batch)
                else:
                    feats = threads.encode(loaded, batch)
                queued = (start, *_to_host(feats))
                if pending is not None:
                    yield done(pending)
                pending = queued
        except Exception:
            if pending is not None:
                yield done(pending)
            raise
        if pending is not None:
            yield done(pending)


def embed_refs(
    loaded: LoadedModel,
    refs: Sequence[ImageRef],
    image_store: Store,
    cache: EmbeddingCache | None = None,
    batch_size: int | Literal["auto"] = 32,
    *,
    workers: int = 0,
    draft: bool = True,
    gpu_decode: bool = True,
    prefetch_batches: int = 2,
    forward_threads: int = 0,
) -> EmbeddingResult:
    """Embeddings of ``refs`` (images in ``image_store``), computing only cache misses.

    Identical content (same sha256) is embedded once. New vectors are written to
    ``cache`` as soon as each batch finishes, so an interrupted run keeps its progress;
    unreadable entries count as misses (``n_computed``) and are listed in ``unreadable``.
    Images are read, decoded and preprocessed by ``workers`` threads (0: one per core),
    JPEGs through ``Image.draft`` unless ``draft`` is off, on the GPU with ``gpu_decode``
    on CUDA (see :mod:`.image_loading`); an image that cannot be read raises a
    ``ValueError`` naming its key. On CPU the forward runs on ``forward_threads`` torch
    threads (0: chosen by :class:`ForwardThreads`).
    """
    if cache is not None and cache.dim != loaded.dim:
        raise ValueError(f"cache dim {cache.dim} != model dim {loaded.dim}")
    unreadable_before = len(cache.unreadable) if cache is not None else 0
    found: dict[str, np.ndarray] = {}
    missing: dict[str, str] = {}
    for ref in refs:
        if ref.sha256 in found or ref.sha256 in missing:
            continue
        vec = cache.get(ref.sha256) if cache is not None else None
        if vec is None:
            missing[ref.sha256] = ref.key
        else:
            found[ref.sha256] = vec
    n_cached = len(found)
    todo = list(missing.items())
    plan = plan_preprocess(loaded.preprocess, loaded.image_size)
    options = LoaderOptions(
        batch_size=resolve_batch_size(loaded, batch_size, gpu_decode),
        workers=workers,
        draft=draft,
        gpu_decode=gpu_decode,
        prefetch_batches=prefetch_batches,
    )
    loader = BatchLoader(
        image_store, [key for _, key in todo], plan, loaded.device, loaded.input_dtype, options
    )
    threads = ForwardThreads(loader, loaded.device, forward_threads)
    if todo:
        batches = encode_batches(loaded, iter(loader), threads)
        try:
            for start, vecs in batches:
                for (sha, _), vec in zip(todo[start : start + len(vecs)], vecs, strict=True):
                    found[sha] = vec
                    if cache is not None:
                        cache.put(sha, vec)
        finally:
            batches.close()
            threads.restore()
    vectors = np.zeros((len(refs), loaded.dim), dtype=np.float32)
    for i, ref in enumerate(refs):
        vectors[i] = found[ref.sha256]
    unreadable = tuple(cache.unreadable[unreadable_before:]) if cache is not None else ()
    return EmbeddingResult(
        vectors,
        n_computed=len(todo),
        n_cached=n_cached,
        unreadable=unreadable,
        batch_size=options.batch_size,
        decode=f"{loader.mode}:{options.thread_count()} threads"
        + (", jpeg draft" if draft and loader.mode == "cpu" else "")
        + (f", forward on {threads.chosen} torch threads" if threads.enabled else ""),
    )


def embeddings_frame(
    frame_ids: Sequence[str], refs: Sequence[ImageRef], vectors: np.ndarray, loaded: LoadedModel
) -> pl.DataFrame:
    """The ``embeddings`` table: one row per frame, ``embedding`` as Array(Float32, dim)."""
    if not (len(frame_ids) == len(refs) == len(vectors)):
        raise ValueError("frame_ids, refs and vectors must have the same length")
    vectors = np.asarray(vectors, dtype=np.float32).reshape(len(frame_ids), loaded.dim)
    return pl.DataFrame(
        {
            "frame_id": pl.Series(list(frame_ids), dtype=pl.String),
            "sha256": pl.Series([r.sha256 for r in refs], dtype=pl.String),
            "model_name": pl.Series([loaded.model_name] * len(refs), dtype=pl.String),
            "pretrained": pl.Series([loaded.pretrained] * len(refs), dtype=pl.String),
            "model_id": pl.Series([loaded.model_id] * len(refs), dtype=pl.String),
            "dim": pl.Series([loaded.dim] * len(refs), dtype=pl.Int64),
            "embedding": pl.Series(vectors, dtype=pl.Array(pl.Float32, loaded.dim)),
        }
    )


def vectors_from_frame(frame: pl.DataFrame) -> np.ndarray:
    """The (n, dim) float32 matrix of an ``embeddings`` table (also for zero rows)."""
    dtype = frame.schema["embedding"]
    if frame.height == 0:
        if not isinstance(dtype, pl.Array):
            raise TypeError(f"embedding must be a fixed-size array column, got {dtype}")
        return np.zeros((0, dtype.size), dtype=np.float32)
    return np.ascontiguousarray(frame["embedding"].to_numpy(), dtype=np.float32)
