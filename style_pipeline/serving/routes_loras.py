"""LoRA routes: the ``/loras`` page (versions, which is live, promotion history) and the
promote / rollback actions behind it (bearer token), the same as ``style-pipeline lora``.

A version name from the client is checked against the published list by
``training.promotion`` before anything is read; refusals come back as JSON with the
promotion's reason code.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from style_pipeline.contracts.training import LiveLora
from style_pipeline.serving import loras
from style_pipeline.serving.auth import require_token
from style_pipeline.serving.errors import ApiError
from style_pipeline.serving.templating import templates
from style_pipeline.training import promotion

router = APIRouter()
_NOT_FOUND = {"bad_version", "unknown_version"}


class PromotionRequest(BaseModel):
    """Promote (or roll back to) one version; ``version`` None on rollback: the previous."""

    model_config = ConfigDict(extra="forbid")

    version: str | None = Field(None, max_length=32, pattern=loras.VERSION_PATTERN.pattern)
    reason: str = Field("", max_length=500)
    by: str | None = Field(None, max_length=64, pattern=r"^[\w .@-]+$")


def _who(request: Request, body: PromotionRequest) -> str:
    client = request.client.host if request.client else "unknown"
    return body.by or f"loras page ({client})"


def _answer(live: LiveLora) -> dict[str, Any]:
    return live.model_dump(mode="json")


def _refused(err: promotion.PromotionError) -> ApiError:
    status = 404 if err.code in _NOT_FOUND else 409
    return ApiError(status, err.code, str(err))


@router.get("/loras", response_class=HTMLResponse)
def loras_page(request: Request) -> Response:
    """Published versions newest first, the live one marked, and the promotion history."""
    store = request.app.state.store
    catalogue = loras.catalogue(store)
    history = list(reversed(promotion.read_live(store).history))
    context = {"catalogue": catalogue, "history": history, "nav": "loras"}
    return templates.TemplateResponse(request, "loras.html", context)


@router.post("/v1/loras/promote", dependencies=[Depends(require_token)])
def promote(request: Request, body: PromotionRequest) -> dict[str, Any]:
    """Make ``version`` live (its weights' sha256 checked first)."""
    if body.version is None:
        raise ApiError(422, "version_required", "name the version to promote")
    try:
        live = promotion.promote(request.app.state.store, body.version, _who(request, body),
                                 body.reason)  # fmt: skip
    except promotion.PromotionError as err:
        raise _refused(err) from None
    return _answer(live)


@router.post("/v1/loras/rollback", dependencies=[Depends(require_token)])
def rollback(request: Request, body: PromotionRequest) -> dict[str, Any]:
    """Make ``version`` live again, or the version that was live before the current one."""
    try:
        live = promotion.rollback(request.app.state.store, _who(request, body), body.reason,
                                  body.version)  # fmt: skip
    except promotion.PromotionError as err:
        raise _refused(err) from None
    return _answer(live)
