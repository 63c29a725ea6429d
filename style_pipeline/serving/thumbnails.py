"""Grid thumbnails: a frame's JPEG read from the Store, resized on the fly, kept in an LRU.

The caller passes a storage key it looked up in the day's frames table; nothing here
builds a key from client input. Frames are content-addressed (a frame id names its
bytes), so a cached thumbnail never goes stale and its ETag is the hash of its bytes.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections import OrderedDict
from dataclasses import dataclass

from PIL import Image

from style_pipeline.storage.store import Store


@dataclass(frozen=True)
class Thumbnail:
    data: bytes
    etag: str


def make_thumbnail(jpeg: bytes, edge: int, quality: int = 85) -> bytes:
    """``jpeg`` scaled so its long edge is at most ``edge`` pixels, as JPEG bytes."""
    with Image.open(io.BytesIO(jpeg)) as source:
        source.draft("RGB", (edge, edge))  # JPEG: decode at a reduced scale, much faster
        image = source.convert("RGB")
    image.thumbnail((edge, edge), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality, optimize=True)
    return out.getvalue()


class ThumbnailCache:
    """Thumbnails of stored frames, ``entries`` most recently used kept in memory."""

    def __init__(self, store: Store, edge: int, entries: int) -> None:
        self.store = store
        self.edge = edge
        self.entries = entries
        self._items: OrderedDict[str, Thumbnail] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Thumbnail:
        """The thumbnail of the frame stored at ``key`` (``FileNotFoundError`` if gone)."""
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
        data = make_thumbnail(self.store.read_bytes(key), self.edge)
        thumb = Thumbnail(data, '"' + hashlib.sha256(data).hexdigest()[:32] + '"')
        if self.entries:
            with self._lock:
                self._items[key] = thumb
                while len(self._items) > self.entries:
                    self._items.popitem(last=False)
        return thumb

    def __len__(self) -> int:
        return len(self._items)
