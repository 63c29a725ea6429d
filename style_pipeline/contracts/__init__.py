"""Contracts: pydantic records, documents and config sections (no torch, polars or Store).

One module per group (``media``, ``ingest``, ``curation``, ``captioning``, ``training``,
``models``); any layer may import them. JSON Schemas: ``schemas.py``.
"""

from style_pipeline.contracts.media import (
    FrameRecord,
    MediaKind,
    MediaStatus,
    RawMediaRecord,
    RejectReason,
)

__all__ = ["FrameRecord", "MediaKind", "MediaStatus", "RawMediaRecord", "RejectReason"]
