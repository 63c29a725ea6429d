"""Review routes: ``/review`` (days), ``/review/<date>`` (the grid), thumbnails, day JSON.

Ids from the client are only ever looked up: a frame id must be a row of the day's
frames table, whose ``path`` column is the key that is read.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from style_pipeline.serving.auth import api_token
from style_pipeline.serving.errors import ApiError, checked_date
from style_pipeline.serving.review import DayReview, ReviewData, UnknownDay
from style_pipeline.serving.templating import templates

router = APIRouter()
FRAME_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
# Decisions change with every re-run: pages and day JSON are never cached by the browser.
NO_STORE = {"Cache-Control": "no-store"}


def day_or_404(request: Request, date: str) -> DayReview:
    review: ReviewData = request.app.state.review
    try:
        return review.day(checked_date(date))
    except UnknownDay as err:
        raise ApiError(404, "unknown_date", str(err)) from None


def frame_key_or_404(day: DayReview, frame_id: str) -> str:
    """The storage key of ``frame_id`` from the day's frames table (422 / 404 otherwise)."""
    if not FRAME_ID.match(frame_id):
        raise ApiError(422, "bad_frame_id", "a frame id is 1-128 letters, digits, '_' or '-'")
    key = day.paths.get(frame_id)
    if key is None:
        raise ApiError(404, "unknown_frame", f"no frame {frame_id} on {day.date}")
    return key


@router.get("/", include_in_schema=False)
def home() -> Response:
    return Response(status_code=307, headers={"Location": "/review"})


@router.get("/review", response_class=HTMLResponse)
def review_index(request: Request) -> Response:
    """The days that have frames, newest first."""
    days = request.app.state.review.days()
    return templates.TemplateResponse(request, "review_index.html", {"days": days, "nav": "review"})


@router.get("/review/{date}", response_class=HTMLResponse)
def review_page(request: Request, date: str) -> Response:
    """Every frame of the day with its decision, why-card and override buttons."""
    day = day_or_404(request, date)
    key, overrides = request.app.state.overrides.read(day.date)
    codes = sorted({f["code"] for f in day.frames if f["status"] != "kept" and f["code"]})
    clusters = sorted({f["cluster"] for f in day.frames if f.get("cluster") is not None})
    roles = sorted({f["role"] for f in day.frames if f.get("role")})
    tags: dict[str, set[str]] = {}
    for f in day.frames:
        for tag in f.get("diversity_tags") or ():
            axis, _, value = tag.partition(":")
            tags.setdefault(axis, set()).add(value)
    context: dict[str, Any] = {
        "nav": "review",
        "date": day.date,
        "frames": day.frames,
        "summary": day.summary,
        "tables": day.tables,
        "codes": codes,
        "clusters": clusters,
        "roles": roles,
        "tags": {axis: sorted(values) for axis, values in sorted(tags.items())},
        "characters": day.summary["characters"],  # label -> frames, kept (the filter's options)
        "overrides": overrides,
        "overrides_key": key,
        "active_run": request.app.state.runs.active(day.date),
        "token_required": api_token(request.app.state.serving) is not None,
        "thumb_edge": request.app.state.serving.thumbnail_edge,
    }
    # The rendered page is cached per version of everything it shows: the day's tables,
    # the overrides document, the active run and whether a token is asked for.
    version = (day.signature, overrides.model_dump_json(), repr(context["active_run"]),
               context["token_required"], context["thumb_edge"])  # fmt: skip
    pages: PageCache = request.app.state.pages
    html = pages.get(day.date, version)
    if html is None:
        html = templates.get_template("review.html").render({"request": request, **context})
        pages.put(day.date, version, html)
    return HTMLResponse(html, headers=NO_STORE)


class PageCache:
    """The last rendered review page of each of the ``max_days`` most recent days."""

    def __init__(self, max_days: int = 8) -> None:
        self.max_days = max_days
        self._pages: OrderedDict[str, tuple[object, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, date: str, version: object) -> str | None:
        with self._lock:
            hit = self._pages.get(date)
            return hit[1] if hit is not None and hit[0] == version else None

    def put(self, date: str, version: object, html: str) -> None:
        with self._lock:
            self._pages[date] = (version, html)
            self._pages.move_to_end(date)
            while len(self._pages) > self.max_days:
                self._pages.popitem(last=False)


@router.get("/thumb/{date}/{name}")
def thumbnail(request: Request, date: str, name: str) -> Response:
    """A frame's thumbnail; ``name`` is ``<frame_id>.jpg`` of a frame of that day."""
    if not name.endswith(".jpg"):
        raise ApiError(404, "not_found", "thumbnails are <frame_id>.jpg")
    day = day_or_404(request, date)
    key = frame_key_or_404(day, name.removesuffix(".jpg"))
    try:
        thumb = request.app.state.thumbs.get(key)
    except FileNotFoundError:
        raise ApiError(404, "frame_file_missing", f"the frame's file is gone: {key}") from None
    headers = {"ETag": thumb.etag, "Cache-Control": "public, max-age=86400"}
    if request.headers.get("if-none-match") == thumb.etag:
        return Response(status_code=304, headers=headers)
    return Response(thumb.data, media_type="image/jpeg", headers=headers)


@router.get("/v1/days")
def list_days(request: Request) -> dict[str, list[str]]:
    """Dates with a frames table, newest first."""
    return {"days": request.app.state.review.days()}


@router.get("/v1/days/{date}")
def day_json(request: Request, date: str) -> Response:
    """The review data of the day as JSON (the same data the page shows)."""
    day = day_or_404(request, date)
    return JSONResponse(day.as_json(), headers=NO_STORE)
