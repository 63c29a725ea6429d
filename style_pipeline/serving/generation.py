"""The generation engine: one base pipeline per process, LoRA versions swapped in as adapters.

No FastAPI here. ``GenerationEngine`` loads the base pipeline a LoRA was trained on once
(from the version's metadata: its ``model_path`` when that folder exists here, else the same
profile resolved again: the tiny models are rebuilt from their seed, pretrained ones found
offline) and keeps it. Each version is loaded once as a named PEFT adapter
(``load_lora_weights(..., adapter_name=...)``) and selected per request with
``set_adapters([name], adapter_weights=[scale])``. That was chosen over
``cross_attention_kwargs={"scale": s}`` because the adapter weight is state set explicitly
before every call (a failed call cannot leave a scaled layer behind: diffusers scales and
then unscales the layers around each call, and unscaling by 0 is special-cased) and it
covers text-encoder LoRA layers as well as the UNet's. At scale 0 PEFT adds
``0 x lora(x)`` to the base layer's output, so the image equals the base pipeline's
bit for bit (a test asserts it).

``GenerationQueue`` lets one generation run at a time per device; the others wait in
arrival order, each with its position, and more than ``max_waiting`` waiting is refused.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from PIL import Image

from style_pipeline.models.diffusion import find_pretrained, load_pipeline, save_tiny_pipeline
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_ADAPTERS = 4  # adapters kept loaded per base; the least recently used is deleted


class BaseModelUnavailable(RuntimeError):
    """The base pipeline the LoRA was trained on is not on this machine."""


class LoraIntegrityError(RuntimeError):
    """The stored weights do not match the sha256 recorded when they were published."""


class QueueFull(RuntimeError):
    """More generations are waiting than the queue admits."""

    def __init__(self, waiting: int, limit: int) -> None:
        super().__init__(f"{waiting} generations already waiting (limit {limit}): retry later")
        self.waiting = waiting
        self.limit = limit


@dataclass(frozen=True)
class GenerationParams:
    """What one image is made from (``width``/``height`` None: the pipeline's native size)."""

    prompt: str
    negative_prompt: str
    seed: int
    steps: int
    guidance: float
    lora_scale: float
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class LoraVersion:
    """A published version as the engine needs it (from its metadata.json)."""

    version: str
    sha256: str
    weights_key: str
    metadata: dict[str, Any]

    @classmethod
    def from_metadata(cls, version: str, metadata: dict[str, Any]) -> LoraVersion:
        weights = str(metadata.get("weights", "pytorch_lora_weights.safetensors"))
        return cls(
            version, str(metadata["sha256"]), layout.lora_version_file(version, weights), metadata
        )


@dataclass(frozen=True)
class Generated:
    image: Image.Image
    width: int
    height: int
    seconds: float
    base_path: str
    device: str


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def adapter_name(version: str) -> str:
    """A PEFT adapter name for ``version`` (module-dict keys may not contain dots)."""
    return "lora_" + version.replace(".", "_").replace("-", "_")


def base_model_path(metadata: dict[str, Any], model_cache_dir: Path) -> str:
    """The local pipeline folder the version was trained on; raises ``BaseModelUnavailable``."""
    recorded = metadata.get("model_path")
    if recorded and (Path(recorded) / "model_index.json").is_file():
        return str(recorded)
    config = metadata.get("config") or {}
    family = str(metadata.get("family") or config.get("model_family", "sd"))
    if family not in ("sd", "sdxl", "flux"):
        raise BaseModelUnavailable(f"unknown model family {family!r} in the LoRA metadata")
    if metadata.get("model_profile") == "tiny":
        # the tiny models are random-init from a fixed seed: rebuilt identical anywhere
        seed = int(config.get("seed", 0))
        return str(save_tiny_pipeline(model_cache_dir, seed, family))  # type: ignore[arg-type]
    pretrained = str(config.get("pretrained") or recorded or "")
    try:
        return find_pretrained(pretrained)
    except FileNotFoundError as exc:
        raise BaseModelUnavailable(
            f"the base model of this LoRA ({pretrained or 'unrecorded'}) is not on this "
            f"machine: {exc}"
        ) from exc


class GenerationEngine:
    """Holds one base pipeline and its loaded LoRA adapters; not thread-safe by itself
    (``GenerationQueue`` runs one call at a time)."""

    def __init__(
        self,
        store: Store,
        model_cache_dir: Path,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
        loader: Callable[..., Any] = load_pipeline,
    ) -> None:
        self.store = store
        self.model_cache_dir = Path(model_cache_dir)
        self.device = device or default_device()
        # fp16 halves memory and time on GPUs; CPUs have no fast fp16 kernels
        self.dtype = dtype or (torch.float16 if self.device.type == "cuda" else torch.float32)
        self.loader = loader
        self.loads = 0  # base pipelines loaded by this engine (tests count them)
        self.adapter_loads = 0
        self._base_path: str | None = None
        self._pipe: Any = None
        self._adapters: OrderedDict[str, str] = OrderedDict()  # version -> sha256

    def pipeline_for(self, lora: LoraVersion) -> Any:
        """The base pipeline of ``lora``: loaded once, replaced only when the base differs."""
        path = base_model_path(lora.metadata, self.model_cache_dir)
        if self._pipe is None or path != self._base_path:
            if self._pipe is not None:
                log.info("base model changes from %s to %s: reloading", self._base_path, path)
            self._pipe, self._base_path = None, None
            self._adapters.clear()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            pipe = self.loader(path, torch_dtype=self.dtype).to(self.device)
            pipe.set_progress_bar_config(disable=True)
            self._pipe, self._base_path = pipe, path
            self.loads += 1
            log.info("loaded base pipeline %s on %s", path, self.device)
        return self._pipe

    def _activate(self, pipe: Any, lora: LoraVersion, scale: float) -> None:
        name = adapter_name(lora.version)
        if self._adapters.get(lora.version) != lora.sha256:
            if lora.version in self._adapters:  # republished under the same name
                pipe.delete_adapters([name])
                del self._adapters[lora.version]
            with self.store.local_copy(lora.weights_key) as local:
                digest = hashlib.sha256(local.read_bytes()).hexdigest()
                if digest != lora.sha256:
                    raise LoraIntegrityError(
                        f"{lora.weights_key} has sha256 {digest}, metadata says {lora.sha256}"
                    )
                pipe.load_lora_weights(str(local.parent), weight_name=local.name, adapter_name=name)
            self._adapters[lora.version] = lora.sha256
            self.adapter_loads += 1
            while len(self._adapters) > MAX_ADAPTERS:
                old, _ = self._adapters.popitem(last=False)
                pipe.delete_adapters([adapter_name(old)])
        self._adapters.move_to_end(lora.version)
        pipe.set_adapters([name], adapter_weights=[scale])

    def generate(self, params: GenerationParams, lora: LoraVersion) -> Generated:
        """One image with ``lora`` at ``params.lora_scale`` (0: the base model's image)."""
        started = time.perf_counter()
        pipe = self.pipeline_for(lora)
        self._activate(pipe, lora, params.lora_scale)
        size = {k: v for k, v in (("width", params.width), ("height", params.height)) if v}
        image = pipe(
            params.prompt,
            **_family_kwargs(pipe, params, lora),
            num_inference_steps=params.steps,
            guidance_scale=params.guidance,
            generator=torch.Generator(self.device).manual_seed(params.seed),
            **size,
        ).images[0]
        return Generated(
            image,
            image.width,
            image.height,
            time.perf_counter() - started,
            str(self._base_path),
            str(self.device),
        )


def _family_kwargs(pipe: Any, params: GenerationParams, lora: LoraVersion) -> dict[str, Any]:
    """SD/SDXL: the negative prompt. FLUX: none (guidance is its embedding, not CFG), and
    T5 reads as many tokens as the LoRA was trained with."""
    from diffusers import FluxPipeline

    if not isinstance(pipe, FluxPipeline):
        return {"negative_prompt": params.negative_prompt or None}
    length = (lora.metadata.get("config") or {}).get("max_sequence_length")
    return {"max_sequence_length": int(length)} if length else {}


@dataclass(frozen=True)
class QueueState:
    running: bool
    waiting: int
    max_waiting: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class GenerationQueue:
    """One job at a time, the rest waiting in arrival order (thread-based, loop-agnostic).

    Callers run :meth:`run` in a worker thread; it blocks until the job's turn. A job's
    position is the number of jobs ahead of it (0: running now).
    """

    def __init__(self, max_waiting: int) -> None:
        if max_waiting < 1:
            raise ValueError(f"max_waiting must be at least 1, got {max_waiting}")
        self.max_waiting = max_waiting
        self._cond = threading.Condition()
        self._waiting: deque[str] = deque()
        self._running: str | None = None

    def state(self) -> QueueState:
        with self._cond:
            return QueueState(self._running is not None, len(self._waiting), self.max_waiting)

    def position(self, ticket: str) -> int | None:
        """Jobs ahead of ``ticket`` (0: running now), None when it is not queued."""
        with self._cond:
            if ticket == self._running:
                return 0
            try:
                index = self._waiting.index(ticket)
            except ValueError:
                return None
            return index + (1 if self._running is not None else 0)

    def run(self, ticket: str, job: Callable[[], T]) -> tuple[T, int, float]:
        """Run ``job`` at its turn; returns (result, position on arrival, seconds waited)."""
        arrived = time.perf_counter()
        with self._cond:
            busy = self._running is not None
            if ticket == self._running or ticket in self._waiting:
                raise ValueError(f"ticket {ticket!r} is already queued")
            if busy and len(self._waiting) >= self.max_waiting:
                raise QueueFull(len(self._waiting), self.max_waiting)
            self._waiting.append(ticket)
            position = len(self._waiting) - 1 + (1 if busy else 0)
            while self._running is not None or self._waiting[0] != ticket:
                self._cond.wait()
            self._waiting.popleft()
            self._running = ticket
        waited = time.perf_counter() - arrived
        try:
            return job(), position, waited
        finally:
            with self._cond:
                self._running = None
                self._cond.notify_all()


def side_by_side(images: Sequence[Image.Image]) -> Image.Image:
    """The images in one row, left to right (the scale strip)."""
    width = sum(im.width for im in images)
    height = max(im.height for im in images)
    strip = Image.new("RGB", (width, height), "white")
    x = 0
    for im in images:
        strip.paste(im.convert("RGB"), (x, 0))
        x += im.width
    return strip
