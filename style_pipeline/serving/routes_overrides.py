"""Override routes: lock in / exclude / clear a frame, then re-run curation for the date.

``POST /v1/days/<date>/overrides`` (bearer token) validates the frame against the day's
frames table, writes the overrides document and requests a run of ``curated_frames`` and
everything downstream; ``GET /v1/runs/<id>`` follows that run.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from style_pipeline.serving.auth import require_token
from style_pipeline.serving.errors import ApiError, checked_date
from style_pipeline.serving.graphql_client import DagsterGraphQLError
from style_pipeline.serving.routes_review import day_or_404, frame_key_or_404

router = APIRouter()
RUN_ID = re.compile(r"^[0-9a-f]{32}$")


class OverrideRequest(BaseModel):
    """One review action on one frame."""

    model_config = ConfigDict(extra="forbid")

    frame_id: str = Field(min_length=1, max_length=128)
    action: Literal["lock_in", "exclude", "clear"]
    by: str | None = Field(
        None, max_length=64, pattern=r"^[\w .@-]+$", description="who asks (default: client)"
    )


def _document(key: str, overrides: Any) -> dict[str, Any]:
    return {"key": key, **overrides.model_dump(mode="json")}


@router.get("/v1/days/{date}/overrides")
def read_overrides(request: Request, date: str) -> dict[str, Any]:
    """The day's overrides document as the ``curated_frames`` asset will read it."""
    key, overrides = request.app.state.overrides.read(checked_date(date))
    return _document(key, overrides)


@router.post("/v1/days/{date}/overrides", dependencies=[Depends(require_token)])
def post_override(request: Request, date: str, body: OverrideRequest) -> dict[str, Any]:
    """Record the action, then request the re-run; answers the document and the run."""
    day = day_or_404(request, date)
    frame_key_or_404(day, body.frame_id)
    client = request.client.host if request.client else "unknown"
    by = body.by or f"review page ({client})"
    try:
        key, overrides = request.app.state.overrides.apply(day.date, body.frame_id, body.action, by)
    except ValueError as err:  # e.g. two override files for the date: which one wins is unclear
        raise ApiError(409, "overrides_conflict", str(err)) from None
    try:
        run = request.app.state.runs.request(day.date)
    except DagsterGraphQLError as err:
        raise ApiError(
            502,
            "run_not_launched",
            f"the override was saved ({key}) but the re-run was not launched: {err}",
            overrides=_document(key, overrides),
        ) from None
    return {"overrides": _document(key, overrides), "run": run}


@router.get("/v1/runs/{run_id}")
def run_status(request: Request, run_id: str) -> dict[str, Any]:
    """A re-run requested by this app: status QUEUED, STARTED, SUCCESS, FAILURE, CANCELED."""
    if not RUN_ID.match(run_id):
        raise ApiError(422, "bad_run_id", "a run id is 32 lower-case hex digits")
    record: dict[str, Any] | None = request.app.state.runs.get(run_id)
    if record is None:
        raise ApiError(404, "unknown_run", f"no run {run_id} was requested from this server")
    return record
