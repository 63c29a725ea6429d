"""Record models for every asset table, and their polars / JSON Schema forms."""

from style_pipeline.contracts.media import (
    FrameRecord,
    MediaKind,
    MediaStatus,
    RawMediaRecord,
    RejectReason,
)
from style_pipeline.contracts.tables import polars_schema, records_to_frame

__all__ = [
    "FrameRecord",
    "MediaKind",
    "MediaStatus",
    "RawMediaRecord",
    "RejectReason",
    "polars_schema",
    "records_to_frame",
]
