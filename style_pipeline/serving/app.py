"""``create_app``: the FastAPI application behind ``style-pipeline serve``.

One app per process; ``app.state`` holds the settings, the Store and the serving section.
Routers live in their own modules (review, overrides, generation, JSON API) and are
included here. Request bodies are capped (413), errors are JSON, and nothing a client
sends is ever used as a path: ids are looked up in the day's tables.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from style_pipeline.paths import resolve_root
from style_pipeline.serving import (
    generate,
    routes_loras,
    routes_overrides,
    routes_pictures,
    routes_review,
)
from style_pipeline.serving.errors import install_error_handlers
from style_pipeline.serving.override_writer import OverridesWriter
from style_pipeline.serving.review import ReviewData
from style_pipeline.serving.runs import RunBook
from style_pipeline.serving.templating import STATIC_DIR
from style_pipeline.serving.thumbnails import ThumbnailCache
from style_pipeline.settings import Settings, load_settings
from style_pipeline.storage.store import Store

if TYPE_CHECKING:
    import dagster as dg


class BodyLimit(BaseHTTPMiddleware):
    """Refuse bodies over ``limit`` bytes with 413, by Content-Length or by counting."""

    def __init__(self, app: object, limit: int) -> None:
        super().__init__(app)  # type: ignore[arg-type]
        self.limit = limit

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return _too_large(self.limit)
        if request.method in ("POST", "PUT", "PATCH"):
            body = b""
            async for chunk in request.stream():
                body += chunk
                if len(body) > self.limit:
                    return _too_large(self.limit)
            request._body = body  # starlette reads the cached body in the route
        return await call_next(request)


class ServerTiming:
    """Adds ``Server-Timing: app;dur=<ms>``: the time from request to response headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                elapsed = (time.perf_counter() - started) * 1000
                headers = list(message.get("headers", []))
                headers.append((b"server-timing", f"app;dur={elapsed:.1f}".encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, timed_send)


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse({"detail": f"request body over {limit} bytes"}, status_code=413)


def create_app(
    settings: Settings | None = None,
    store: Store | None = None,
    instance: dg.DagsterInstance | None = None,
    overrides_store: Store | None = None,
) -> FastAPI:
    """The app for ``settings`` (default: loaded from the config) over ``store``.

    ``instance``: the Dagster instance of in-process re-runs (default: ``DAGSTER_HOME``'s);
    ``overrides_store``: where overrides documents live (default: ``curation.overrides_root``).
    """
    settings = settings or load_settings()
    app = FastAPI(
        title="style_pipeline",
        summary="Review the day's curation, override it, try the LoRA.",
        docs_url="/docs",
    )
    app.state.settings = settings
    app.state.serving = settings.serving
    app.state.store = store or Store(settings.storage_root())
    app.add_middleware(BodyLimit, limit=settings.serving.max_body_bytes)
    app.add_middleware(ServerTiming)  # added last: outermost, so it times the body cap too
    serving = settings.serving
    app.state.review = ReviewData(app.state.store)
    app.state.pages = routes_review.PageCache()
    app.state.thumbs = ThumbnailCache(
        app.state.store, serving.thumbnail_edge, serving.thumbnail_cache_entries
    )
    app.state.overrides = OverridesWriter(
        overrides_store or Store(resolve_root(settings.curation.overrides_root))
    )
    app.state.runs = RunBook(serving.dagster_graphql_url, instance)
    install_error_handlers(app)
    app.include_router(routes_review.router)
    app.include_router(routes_overrides.router)
    app.include_router(generate.router)
    app.include_router(routes_loras.router)
    app.include_router(routes_pictures.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """Liveness: the app answers and its storage root is reachable."""
        app.state.store.exists("healthz-probe")
        return {"status": "ok"}

    return app
