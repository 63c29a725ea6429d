"""Routes for trying a LoRA: ``GET /v1/loras``, ``POST /v1/generate`` (+ ``/strip``), ``/generate``.

Generation needs the bearer token; the request body is validated against the caps of the
``serving:`` section (422); a version is looked up among the published ones (404) and
defaults to the live one (409 while none is live). One generation runs at a time per
process: the rest wait in ``GenerationQueue`` (429 past ``serving.max_queue``) on a thread
pool of their own, so waiting generations never starve the other routes' threads.
The engine (torch, diffusers) is imported on the first generation, not with the app.
"""

from __future__ import annotations

import asyncio
import base64
import io
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from style_pipeline.contracts.serving import ServingSettings
from style_pipeline.paths import resolve_local
from style_pipeline.serving import loras
from style_pipeline.serving.auth import require_token

if TYPE_CHECKING:  # torch is loaded with the first generation, not with the app
    from PIL import Image

    from style_pipeline.serving.generation import GenerationEngine, GenerationQueue

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
router = APIRouter()
DEFAULT_STRIP = (0.0, 0.5, 1.0)


class GenerateBody(BaseModel):
    """``POST /v1/generate``; the caps of the ``serving:`` section are checked on top."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1)
    negative_prompt: str = ""
    seed: int | None = Field(None, ge=0, le=2**63 - 1, description="None: drawn and returned")
    steps: int = Field(25, ge=1)
    guidance: float = Field(7.5, ge=0, le=50)
    width: int | None = Field(None, ge=64, description="None: the model's native size")
    height: int | None = Field(None, ge=64)
    lora_scale: float = Field(1.0, ge=0, le=1.5, description="0: the base model")
    version: str | None = Field(
        None, pattern=loras.VERSION_PATTERN.pattern, description="None: the live version"
    )
    format: Literal["png", "json"] = "png"
    ticket: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_-]{1,64}$", description="names the job for /v1/queue"
    )

    @field_validator("width", "height")
    @classmethod
    def _multiple_of_8(cls, value: int | None) -> int | None:
        if value is not None and value % 8:
            raise ValueError(f"must be a multiple of 8, got {value}")
        return value


class StripBody(GenerateBody):
    """``POST /v1/generate/strip``: the same image at several LoRA scales, side by side."""

    scales: list[float] = Field(list(DEFAULT_STRIP), min_length=1, max_length=4)

    @field_validator("scales")
    @classmethod
    def _scale_range(cls, values: list[float]) -> list[float]:
        bad = [v for v in values if not 0 <= v <= 1.5]
        if bad:
            raise ValueError(f"every scale must be in [0, 1.5], got {bad}")
        return values


def check_caps(body: GenerateBody, serving: ServingSettings) -> None:
    """422 (FastAPI's validation shape) for what exceeds the configured caps."""
    errors: list[dict[str, Any]] = []

    def over(field: str, value: Any, cap: int, what: str) -> None:
        errors.append(
            {"type": "less_than_equal", "loc": ("body", field), "input": value,
             "msg": f"{what} over the cap of {cap}", "ctx": {"le": cap}}
        )  # fmt: skip

    for field in ("prompt", "negative_prompt"):
        if len(getattr(body, field)) > serving.max_prompt_chars:
            over(field, len(getattr(body, field)), serving.max_prompt_chars, "characters")
    if body.steps > serving.max_generation_steps:
        over("steps", body.steps, serving.max_generation_steps, "steps")
    for field in ("width", "height"):
        value = getattr(body, field)
        if value is not None and value > serving.max_generation_edge:
            over(field, value, serving.max_generation_edge, "pixels")
    if errors:
        raise RequestValidationError(errors)


@dataclass
class GenerationService:
    """The process's engine, its queue and the threads waiting generations block in."""

    engine: GenerationEngine
    queue: GenerationQueue
    executor: ThreadPoolExecutor


def service(request: Request) -> GenerationService:
    """The app's generation service, created (without loading any model) on first use."""
    state = request.app.state
    existing: GenerationService | None = getattr(state, "generation", None)
    if existing is None:
        from style_pipeline.serving.generation import GenerationEngine, GenerationQueue

        serving: ServingSettings = state.serving
        cache = resolve_local(state.settings.training.model_cache_dir)
        existing = GenerationService(
            GenerationEngine(state.store, cache),
            GenerationQueue(serving.max_queue),
            # the running job + every waiting one each hold a thread while they wait
            ThreadPoolExecutor(serving.max_queue + 1, thread_name_prefix="generation"),
        )
        state.generation = existing
    return existing


def error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    headers = {"Retry-After": "5"} if status == 429 else None
    return JSONResponse(
        {"detail": message, "code": code, **extra}, status_code=status, headers=headers
    )


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@router.get("/v1/loras")
def list_loras(request: Request) -> dict[str, Any]:
    """Published LoRA versions, newest first, with date, sha256, profile, metrics, live flag."""
    return loras.catalogue(request.app.state.store)


@router.get("/v1/queue")
def queue_state(request: Request, ticket: str | None = None) -> dict[str, Any]:
    """The generation queue: running, waiting, the limit and (with ``ticket``) its position."""
    svc = service(request)
    state = svc.queue.state().as_dict()
    if ticket is not None:
        state["ticket"] = ticket
        state["position"] = svc.queue.position(ticket)
    return state


async def _run(request: Request, body: GenerateBody, scales: tuple[float, ...]) -> Response:
    """Validate, resolve the version, queue the generation(s) and render the answer."""
    from style_pipeline.serving.generation import (
        BaseModelUnavailable,
        GenerationParams,
        LoraIntegrityError,
        LoraVersion,
        QueueFull,
    )

    check_caps(body, request.app.state.serving)
    store = request.app.state.store
    try:
        version = loras.resolve_version(store, body.version)
        lora = LoraVersion.from_metadata(version, loras.read_metadata(store, version))
    except loras.UnknownVersion:
        return error(404, "unknown_version", f"{body.version} is not a published LoRA version")
    except loras.NoLoraPublished as exc:
        return error(409, "no_lora", str(exc))
    except ValidationError as exc:
        return error(500, "live_lora_unreadable", f"the live-LoRA document is invalid: {exc}")
    seed = body.seed if body.seed is not None else secrets.randbelow(2**31)
    params = [
        GenerationParams(
            body.prompt, body.negative_prompt, seed, body.steps, body.guidance, scale,
            body.width, body.height,
        )
        for scale in scales
    ]  # fmt: skip
    svc = service(request)
    ticket = body.ticket or secrets.token_hex(8)

    def job() -> list[Any]:
        return [svc.engine.generate(p, lora) for p in params]

    loop = asyncio.get_running_loop()
    try:
        results, position, waited = await loop.run_in_executor(
            svc.executor, svc.queue.run, ticket, job
        )
    except QueueFull as exc:
        return error(429, "queue_full", str(exc), max_queue=exc.limit)
    except ValueError as exc:
        return error(409, "ticket_in_use", str(exc))
    except BaseModelUnavailable as exc:
        return error(503, "base_model_unavailable", str(exc))
    except LoraIntegrityError as exc:
        return error(500, "lora_integrity", str(exc))
    first = results[0]
    described = {
        **{k: v for k, v in asdict(params[0]).items() if k != "lora_scale"},
        "width": first.width,
        "height": first.height,
        "scales": list(scales),
        "version": version,
        "sha256": lora.sha256,
    }
    timing = {
        "queue_position": position,
        "queue_wait_ms": round(waited * 1000, 1),
        "generation_ms": [round(r.seconds * 1000, 1) for r in results],
        "device": first.device,
    }
    if body.format == "json":
        return JSONResponse(
            {
                "parameters": described,
                **timing,
                "images_png_base64": [
                    base64.b64encode(png_bytes(r.image)).decode() for r in results
                ],
            }
        )
    from style_pipeline.serving.generation import side_by_side

    image = first.image if len(results) == 1 else side_by_side([r.image for r in results])
    headers = {
        "X-Seed": str(seed),
        "X-Steps": str(body.steps),
        "X-Guidance": str(body.guidance),
        "X-Width": str(first.width),
        "X-Height": str(first.height),
        "X-Lora-Scale": ",".join(str(s) for s in scales),
        "X-Lora-Version": version,
        "X-Lora-Sha256": lora.sha256,
        "X-Queue-Position": str(position),
        "X-Queue-Wait-Ms": str(timing["queue_wait_ms"]),
        "X-Generation-Ms": ",".join(str(ms) for ms in timing["generation_ms"]),
    }
    return Response(png_bytes(image), media_type="image/png", headers=headers)


@router.post("/v1/generate", dependencies=[Depends(require_token)])
async def generate(request: Request, body: GenerateBody) -> Response:
    """One image: PNG with the parameters in ``X-*`` headers, or JSON with a base64 PNG."""
    return await _run(request, body, (body.lora_scale,))


@router.post("/v1/generate/strip", dependencies=[Depends(require_token)])
async def generate_strip(request: Request, body: StripBody) -> Response:
    """The same seed at each of ``scales`` (default 0, 0.5, 1.0): one PNG, left to right."""
    return await _run(request, body, tuple(body.scales))


@router.get("/generate", response_class=HTMLResponse)
def generate_page(request: Request) -> Response:
    """The generation page; it calls the API with a token typed into the page."""
    catalogue = loras.catalogue(request.app.state.store)
    serving: ServingSettings = request.app.state.serving
    return templates.TemplateResponse(
        request,
        "generate.html",
        {
            "catalogue": catalogue,
            "serving": serving,
            "strip_scales": DEFAULT_STRIP,
            "nav": "generate",
        },
    )


@router.get("/generate/static/generate.js")
def generate_script() -> FileResponse:
    return FileResponse(HERE / "static" / "generate.js", media_type="text/javascript")
