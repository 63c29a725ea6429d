"""The one exception every media check raises when it refuses a file."""

from __future__ import annotations

from style_pipeline.contracts.media import RejectReason


class MediaRejected(Exception):
    """A dropped file is refused: ``reason`` is the stable code, ``detail`` says why in words."""

    def __init__(self, reason: RejectReason, detail: str):
        super().__init__(f"{reason.value}: {detail}")
        self.reason = RejectReason(reason)
        self.detail = detail
