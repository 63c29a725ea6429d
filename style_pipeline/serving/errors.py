"""JSON errors with a reason code: ``{"code": "unknown_frame", "detail": "..."}``.

Routes raise ``ApiError``; request validation failures become 422 ``invalid_request`` with
FastAPI's list of problems; other HTTP errors keep their ``detail`` and gain a ``code``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from style_pipeline.storage import layout


class ApiError(Exception):
    """A client error: HTTP status, reason code and a sentence for people."""

    def __init__(self, status: int, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.extra = status, code, detail, extra


def checked_date(date: str) -> str:
    """``date`` when it is a ``YYYY-MM-DD`` day, else 422 ``bad_date``."""
    try:
        return layout.check_partition(date)
    except ValueError:
        raise ApiError(422, "bad_date", "the date must be a YYYY-MM-DD day") from None


def install_error_handlers(app: FastAPI) -> None:
    """Every error answered as JSON with a reason code."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            {"code": exc.code, "detail": exc.detail, **exc.extra}, status_code=exc.status
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own list of problems (loc, msg, type, input), with a reason code
        detail = jsonable_encoder(exc.errors())
        return JSONResponse({"code": "invalid_request", "detail": detail}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}
        return JSONResponse(
            {"code": codes.get(exc.status_code, "http_error"), "detail": exc.detail},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )
