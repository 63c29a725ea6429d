"""``/pictures/<key>``: the report pictures and evaluation samples the Dagster UI shows.

Dagster renders markdown images from http(s) URLs only, so the assets' metadata links
here. Only keys that ``layout.is_public_picture`` accepts are read (frame strips, loss
curves, sample grids and samples); anything else of the store is a 404 by construction.
Pictures are rewritten when their day is re-run, so they are revalidated by ETag.
"""

from __future__ import annotations

import hashlib

from fastapi import APIRouter, Request
from fastapi.responses import Response

from style_pipeline.serving.errors import ApiError
from style_pipeline.storage import layout

router = APIRouter()
MEDIA_TYPES = {"jpg": "image/jpeg", "png": "image/png"}


@router.get("/pictures/{key:path}")
def picture(request: Request, key: str) -> Response:
    """A stored picture named by its storage key."""
    if not layout.is_public_picture(key):
        raise ApiError(404, "not_a_picture", "only report pictures and samples are served")
    try:
        data = request.app.state.store.read_bytes(key)
    except FileNotFoundError:
        raise ApiError(404, "picture_missing", f"no picture at {key}") from None
    etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=MEDIA_TYPES[key.rsplit(".", 1)[1]], headers=headers)
