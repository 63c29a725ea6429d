"""Named tensors in the Store, keyed by content, for the LoRA training caches.

One ``.safetensors`` object per entry under ``layout.training_cache_dir(kind, model_hash)``.
An entry that cannot be read back (torn, truncated, other tensor names or shapes, not
finite) is a miss: its key is logged, the tensors recomputed and the entry rewritten, so a
bad file never fails a night (as ``curation.embeddings.EmbeddingCache`` does). Also here:
:func:`module_hash`, the identity of an encoder's weights that names its cache folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from style_pipeline.storage import layout
from style_pipeline.storage.store import Store

log = logging.getLogger(__name__)
# tensor name -> (shape, dtype); a None dtype accepts any (it is part of the model hash)
Spec = Mapping[str, tuple[tuple[int, ...], torch.dtype | None]]
CACHE_FORMAT = "style_pipeline.training_cache/1"
_IO_THREADS = 8  # object-store reads and writes are latency-bound


def digest(*parts: object) -> str:
    """sha256 of the canonical JSON of ``parts`` (the key of one entry)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _tensor_bytes(tensor: torch.Tensor) -> bytes:
    flat = tensor.detach().contiguous().reshape(-1)
    return flat.view(torch.uint8).cpu().numpy().tobytes()


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def module_hash(modules: Sequence[torch.nn.Module], prefixes: tuple[str, ...] = (), **extra) -> str:
    """sha256 of the weights (names, dtypes, shapes, bytes) of ``modules`` whose state-dict
    names start with one of ``prefixes`` (all when empty), plus ``extra`` facts.

    Each tensor is hashed on its own in a thread pool (hashlib releases the GIL), then the
    list of digests. Torch itself runs on the calling thread only: a torch op on a pool
    thread starts another OpenMP team there, which slowed the next convolutions ~20x on
    two cores.
    """
    named = [
        (f"{index}.{name}", tensor)
        for index, module in enumerate(modules)
        for name, tensor in module.state_dict().items()
        if not prefixes or name.startswith(prefixes)
    ]
    with ThreadPoolExecutor(_IO_THREADS) as pool:
        futures = [
            pool.submit(
                _sha256_hex, f"{name} {t.dtype} {tuple(t.shape)} ".encode() + _tensor_bytes(t)
            )
            for name, t in named
        ]
        digests = [f.result() for f in futures]
    return digest(CACHE_FORMAT, digests, extra)


@dataclass
class CacheStats:
    """What one training run found in (hits) and added to (misses) one cache."""

    hits: int = 0
    misses: int = 0
    unreadable: list[str] = field(default_factory=list)

    def as_metadata(self) -> dict:
        return {"hits": self.hits, "misses": self.misses, "unreadable": list(self.unreadable)}


class TensorCache:
    """Entries of one encoder (``kind`` + ``model_hash``) in a :class:`Store`."""

    def __init__(self, store: Store, kind: str, model_hash: str):
        self.store = store
        self.prefix = layout.training_cache_dir(kind, model_hash[:16])
        self.stats = CacheStats()

    def key(self, entry: str) -> str:
        return layout.training_cache_key(self.prefix, entry)

    def get(self, entry: str, spec: Spec) -> dict[str, torch.Tensor] | None:
        """The tensors of ``entry`` if they match ``spec`` (names, shapes, dtypes), else None:
        a miss (an unreadable entry is logged and listed in ``stats.unreadable``)."""
        return self._decode(entry, self._read(entry), spec)

    def _read(self, entry: str) -> bytes | None:
        key = self.key(entry)
        # Store errors (an S3 outage) propagate: only the entry's own bytes make a miss.
        return self.store.read_bytes(key) if self.store.exists(key) else None

    def _decode(self, entry: str, data: bytes | None, spec: Spec) -> dict[str, torch.Tensor] | None:
        if data is None:
            return None
        try:
            tensors = load_safetensors(data)
        except (SafetensorError, ValueError, RuntimeError) as exc:
            problem: str | None = f"{type(exc).__name__}: {exc}"
        else:
            problem = _problem(tensors, spec)
        if problem is None:
            return tensors
        key = self.key(entry)
        self.stats.unreadable.append(key)
        log.warning("training cache entry %s is unreadable (%s): a miss", key, problem[:200])
        return None

    def get_many(self, entries: Sequence[tuple[str, Spec]]) -> list[dict[str, torch.Tensor] | None]:
        """:meth:`get` of each (entry, spec): bytes read in parallel, decoded here (torch
        stays on this thread, see :func:`module_hash`)."""
        with ThreadPoolExecutor(_IO_THREADS) as pool:
            blobs = list(pool.map(self._read, [entry for entry, _ in entries]))
        return [
            self._decode(entry, blob, spec)
            for (entry, spec), blob in zip(entries, blobs, strict=True)
        ]

    def put_many(self, items: Sequence[tuple[str, dict[str, torch.Tensor]]]) -> None:
        """Write entries, serialised here, stored in parallel (each atomically)."""
        blobs = [
            (
                self.key(entry),
                save_safetensors({k: v.detach().cpu().contiguous() for k, v in t.items()}),
            )
            for entry, t in items
        ]
        with ThreadPoolExecutor(_IO_THREADS) as pool:
            list(pool.map(lambda kb: self.store.put_bytes(kb[1], kb[0]), blobs))


def _problem(tensors: dict[str, torch.Tensor], spec: Spec) -> str | None:
    if set(tensors) != set(spec):
        return f"holds {sorted(tensors)}, expected {sorted(spec)}"
    for name, tensor in tensors.items():
        shape, dtype = spec[name]
        if tuple(tensor.shape) != shape or dtype not in (None, tensor.dtype):
            return f"{name} is {tensor.dtype}{tuple(tensor.shape)}, expected {dtype}{shape}"
        if not torch.isfinite(tensor).all():
            return f"{name} holds non-finite values"
    return None
