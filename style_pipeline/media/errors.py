"""The one exception every media check raises when it refuses a file, and its detail scrub.

Reject details are shown in logs, stored in ``raw_media`` and in quarantine reason files;
a dropped file may hold secrets, so no detail carries the file's bytes. Library messages
sometimes quote bytes they choke on (Pillow's ``broken PNG file (chunk b'...')``):
``without_content`` replaces every bytes literal and caps the length.
"""

from __future__ import annotations

import re

from style_pipeline.contracts.media import RejectReason

MAX_DETAIL_CHARS = 500
_BYTES_LITERAL = re.compile(r"""(?<!\w)b(['"])(?:\\.|(?!\1).)*\1""")


def without_content(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    """``text`` with bytes literals (``b'...'``) replaced, at most ``limit`` characters."""
    text = _BYTES_LITERAL.sub("<bytes>", text)
    if len(text) > limit:
        text = text[: limit - 1] + "\u2026"
    return text


class MediaRejected(Exception):
    """A dropped file is refused: ``reason`` is the stable code, ``detail`` says why in words
    (passed through ``without_content``)."""

    def __init__(self, reason: RejectReason, detail: str):
        detail = without_content(detail)
        super().__init__(f"{reason.value}: {detail}")
        self.reason = RejectReason(reason)
        self.detail = detail
