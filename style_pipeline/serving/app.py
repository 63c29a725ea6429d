"""``create_app``: the FastAPI application behind ``style-pipeline serve``.

One app per process; ``app.state`` holds the settings, the Store and the serving section.
Routers live in their own modules (review, overrides, generation, JSON API) and are
included here. Request bodies are capped (413), errors are JSON, and nothing a client
sends is ever used as a path: ids are looked up in the day's tables.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import Response

from style_pipeline.settings import Settings, load_settings
from style_pipeline.storage.store import Store


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


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse({"detail": f"request body over {limit} bytes"}, status_code=413)


def create_app(settings: Settings | None = None, store: Store | None = None) -> FastAPI:
    """The app for ``settings`` (default: loaded from the config) over ``store``."""
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

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """Liveness: the app answers and its storage root is reachable."""
        app.state.store.exists("healthz-probe")
        return {"status": "ok"}

    return app
