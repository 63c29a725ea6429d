"""Routes for trying a LoRA: ``GET /v1/loras``, ``POST /v1/generate``, the ``/generate`` page."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from style_pipeline.serving import loras

router = APIRouter()


@router.get("/v1/loras")
def list_loras(request: Request) -> dict[str, Any]:
    """Published LoRA versions, newest first, with date, sha256, profile, metrics, live flag."""
    return loras.catalogue(request.app.state.store)
