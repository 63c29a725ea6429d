"""Stored images -> model-ready batches: parallel read, decode and preprocess, in input order.

A bounded thread pool reads each image's bytes from the :class:`Store`, decodes it with
PIL (JPEGs through ``Image.draft``: libjpeg decodes straight to the smallest DCT scale
that still covers the model's input, e.g. 1/4 of a 1080p frame for 224 px) and runs the
PIL half of the model's preprocess (resize, crop). The main thread stacks the uint8
pixels, moves them to the device (pinned memory and ``non_blocking`` on CUDA: 4x fewer
bytes than float) and applies ``ToTensor`` + ``Normalize`` there in one batched op, in
the model's input dtype. While the caller runs the forward of one batch, the pool is
already decoding the next ``prefetch_batches``.

On CUDA with ``gpu_decode``, the threads only read bytes; JPEGs are decoded on the GPU
(``torchvision.io.decode_jpeg(list, device="cuda")``, batched) and resized, cropped and
normalised there with the mean, std, size, interpolation and resize mode read from the
open_clip preprocess (:class:`PreprocessPlan`), so the result matches the CPU path up to
the decoders' rounding. Other formats, and JPEGs the GPU decoder rejects, go through PIL.

A preprocess this module does not recognise is applied as is, in the threads (correct,
just without the batched normalise and the GPU path).
"""

from __future__ import annotations

import io
import logging
import os
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import CenterCrop, InterpolationMode, Normalize, Resize, ToTensor

from style_pipeline.storage.store import Store

log = logging.getLogger(__name__)
_JPEG_MAGIC = b"\xff\xd8\xff"
DecodeMode = Literal["cpu", "gpu"]


@dataclass(frozen=True)
class PreprocessPlan:
    """The open_clip eval preprocess split into a PIL part (threads) and a batched part.

    ``pil_stage`` maps an RGB image to the final-size RGB image (None: the preprocess was
    not recognised and ``preprocess`` runs whole per image). ``resize_mode`` is set only
    when the tensor (GPU) path can reproduce the PIL part: ``shortest`` (short side to
    ``size`` then a centre crop) or ``squash`` (straight to ``size``).
    """

    preprocess: Callable[[Image.Image], Any]
    pil_stage: Callable[[Image.Image], Image.Image] | None
    size: tuple[int, int]  # output (height, width)
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    resize_mode: Literal["shortest", "squash"] | None = None
    interpolation: InterpolationMode = InterpolationMode.BICUBIC
    resize_short: int = 0  # ``shortest``: the short side before the crop (0: size)

    @property
    def draft_size(self) -> tuple[int, int]:
        """(width, height) ``Image.draft`` must keep covering (both sides at least)."""
        height, width = self.size
        side = max(height, width, self.resize_short)
        return (width, height) if self.resize_mode == "squash" else (side, side)

    @property
    def batched(self) -> bool:
        return self.pil_stage is not None


def _pair(size: Any) -> tuple[int, int] | None:
    if isinstance(size, int):
        return (size, size)
    if isinstance(size, list | tuple) and len(size) == 2:
        return (int(size[0]), int(size[1]))
    if isinstance(size, list | tuple) and len(size) == 1:
        return (int(size[0]), int(size[0]))
    return None


def plan_preprocess(preprocess: Callable[[Image.Image], Any], image_size: int) -> PreprocessPlan:
    """Read an open_clip eval transform (``Compose``) into a :class:`PreprocessPlan`.

    Recognised: ``[*PIL->PIL transforms, (Maybe)ToTensor, Normalize]``; the GPU path also
    needs the PIL part to be ``Resize(int) + CenterCrop(square)`` or ``Resize((h, w))``
    (plus open_clip's ``MaybeConvertMode``).
    """
    generic = PreprocessPlan(preprocess, None, (image_size, image_size))
    steps = list(getattr(preprocess, "transforms", ()))
    if len(steps) < 3:
        return generic
    *pil_steps, to_tensor, normalize = steps
    to_tensor_name = type(to_tensor).__name__
    if not (isinstance(to_tensor, ToTensor) or to_tensor_name == "MaybeToTensor"):
        return generic
    if not isinstance(normalize, Normalize) or normalize.inplace:
        return generic
    resizes = [s for s in pil_steps if isinstance(s, Resize)]
    crops = [s for s in pil_steps if isinstance(s, CenterCrop)]
    converts = [s for s in pil_steps if type(s).__name__ == "MaybeConvertMode"]
    if len(resizes) + len(crops) + len(converts) != len(pil_steps):
        return generic  # e.g. ResizeKeepRatio + CenterCropOrPad (open_clip's "longest")
    if len(resizes) != 1 or len(crops) > 1 or resizes[0].max_size is not None:
        return generic
    resize = resizes[0]
    mode: Literal["shortest", "squash"] | None
    if crops:
        crop = _pair(crops[0].size)
        shortest = isinstance(resize.size, int) or (
            isinstance(resize.size, list | tuple) and len(resize.size) == 1
        )
        if crop is None:
            return generic
        size, mode = crop, ("shortest" if shortest and crop[0] == crop[1] else None)
        short = _pair(resize.size)
        resize_short = short[0] if shortest and short else 0
    else:
        pair = _pair(resize.size)
        if pair is None or isinstance(resize.size, int):
            return generic  # a short-side resize without a crop: sizes would vary
        size, mode, resize_short = pair, "squash", 0
    if converts and any(getattr(c, "mode", "RGB") != "RGB" for c in converts):
        mode = None
    interpolation = resize.interpolation
    if interpolation not in (InterpolationMode.BICUBIC, InterpolationMode.BILINEAR):
        mode = None
    return PreprocessPlan(
        preprocess,
        _compose(pil_steps),
        size,
        *_mean_std(normalize),
        resize_mode=mode,
        interpolation=interpolation,
        resize_short=resize_short,
    )


def _mean_std(normalize: Normalize) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return tuple(float(m) for m in normalize.mean), tuple(float(s) for s in normalize.std)


def _compose(steps: Sequence[Callable]) -> Callable[[Image.Image], Image.Image]:
    def run(image: Image.Image) -> Image.Image:
        for step in steps:
            image = step(image)
        return image

    return run


def read_error(key: str, store: Store, err: BaseException) -> ValueError:
    """The one error an unreadable image raises: it names the key and the store."""
    return ValueError(f"cannot read image {key!r} from {store}: {err}")


def decode_pil(data: bytes, draft: tuple[int, int] | None = None) -> Image.Image:
    """RGB image of encoded bytes; a JPEG is decoded at the smallest DCT scale whose
    width and height stay at or above ``draft`` (``None``: full size)."""
    with Image.open(io.BytesIO(data)) as image:
        if draft is not None and image.format == "JPEG":
            image.draft("RGB", draft)
        return image.convert("RGB")


def load_pixels(
    store: Store, key: str, plan: PreprocessPlan, draft: bool, data: bytes | None = None
) -> np.ndarray | torch.Tensor:
    """One image as final-size uint8 HWC pixels (``plan.batched``) or a preprocessed tensor."""
    try:
        if data is None:
            data = store.read_bytes(key)
        image = decode_pil(data, plan.draft_size if draft else None)
        if plan.pil_stage is None:
            return plan.preprocess(image)
        pixels = np.asarray(plan.pil_stage(image), dtype=np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise read_error(key, store, err) from err
    if pixels.shape != (*plan.size, 3):
        raise RuntimeError(f"{key}: preprocess gave {pixels.shape}, expected {(*plan.size, 3)}")
    return pixels


def _read_for_gpu(store: Store, key: str, plan: PreprocessPlan, draft: bool) -> Any:
    """A JPEG's bytes (decoded later on the GPU), or CPU-decoded pixels of anything else."""
    try:
        data = store.read_bytes(key)
    except (OSError, ValueError) as err:
        raise read_error(key, store, err) from err
    if data[:3] == _JPEG_MAGIC:
        return data
    return load_pixels(store, key, plan, draft, data)


class Normalizer:
    """uint8 NHWC (CPU) or NCHW pixels -> normalised batch on ``device`` in ``dtype``."""

    def __init__(self, plan: PreprocessPlan, device: torch.device, dtype: torch.dtype):
        self.device, self.dtype = device, dtype
        self.mean = torch.tensor(plan.mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(plan.std, device=device).view(1, -1, 1, 1)

    def __call__(self, pixels: torch.Tensor, channels_last: bool) -> torch.Tensor:
        if pixels.device != self.device:
            if self.device.type == "cuda" and not pixels.is_pinned():
                pixels = pixels.pin_memory()
            pixels = pixels.to(self.device, non_blocking=True)
        if channels_last:
            pixels = pixels.permute(0, 3, 1, 2)
        # the same float ops, in the same order, as ToTensor + Normalize per image
        batch = pixels.float().div_(255).sub_(self.mean).div_(self.std)
        return batch.to(self.dtype).contiguous()


def resize_tensors(images: Sequence[torch.Tensor], plan: PreprocessPlan) -> torch.Tensor:
    """uint8 CHW images (any sizes, one device) -> uint8 NCHW at ``plan.size``, like PIL.

    Same-sized images are resized together (bicubic/bilinear with antialias, PIL's
    filters), then centre-cropped with torchvision's rounding.
    """
    import torchvision.transforms.v2.functional as tvf

    if plan.resize_mode is None:
        raise ValueError("this preprocess has no tensor equivalent")
    height, width = plan.size
    out = torch.empty((len(images), 3, height, width), dtype=torch.uint8, device=images[0].device)
    groups: dict[tuple[int, int], list[int]] = {}
    for index, image in enumerate(images):
        groups.setdefault((int(image.shape[-2]), int(image.shape[-1])), []).append(index)
    for (h, w), indices in groups.items():
        for start in range(0, len(indices), 64):  # bounds the float copies resize makes
            part = indices[start : start + 64]
            batch = torch.stack([images[i] for i in part])
            if plan.resize_mode == "squash":
                target = [height, width]
            else:
                new_short = plan.resize_short or height
                short, long = min(h, w), max(h, w)
                new_long = int(new_short * long / short)
                target = [new_short, new_long] if h <= w else [new_long, new_short]
            if [h, w] != target:
                batch = tvf.resize(batch, target, interpolation=plan.interpolation, antialias=True)
            if plan.resize_mode == "shortest":
                batch = tvf.center_crop(batch, [height, width])
            out[part] = batch
    return out


def _chw(pixels: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """CPU-decoded HWC uint8 pixels as a CHW tensor on ``device`` (PIL's arrays are
    read-only: copied)."""
    return torch.from_numpy(np.array(pixels, dtype=np.uint8)).permute(2, 0, 1).to(device)


def decode_jpegs(datas: Sequence[bytes], device: torch.device) -> list[torch.Tensor | None]:
    """RGB uint8 CHW tensors decoded on ``device`` (batched); None where decoding failed."""
    from torchvision.io import ImageReadMode, decode_jpeg

    tensors = [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in datas]
    with warnings.catch_warnings():
        # torchvision 0.29 deprecates its decoders in favour of TorchCodec (not a dependency)
        warnings.filterwarnings("ignore", "The image decoding", DeprecationWarning)
        try:
            return list(decode_jpeg(tensors, mode=ImageReadMode.RGB, device=device))
        except RuntimeError as err:  # one bad file fails the whole batch: retry one by one
            log.info("batched JPEG decode on %s failed (%s): decoding one by one", device, err)
        single: list[torch.Tensor | None] = []
        for tensor in tensors:
            try:
                single.append(decode_jpeg(tensor, mode=ImageReadMode.RGB, device=device))
            except RuntimeError:
                single.append(None)
    return single


@dataclass(frozen=True)
class LoaderOptions:
    """How :func:`iter_batches` reads: threads, JPEG draft, GPU decode, look-ahead."""

    batch_size: int = 32
    workers: int = 0  # 0: one per usable core
    draft: bool = True
    gpu_decode: bool = True
    prefetch_batches: int = 2

    def thread_count(self) -> int:
        """``workers``, or for 0 the cores this process may run on."""
        if self.workers:
            return self.workers
        affinity = getattr(os, "sched_getaffinity", None)
        return len(affinity(0)) if affinity else (os.cpu_count() or 1)


def decode_mode(plan: PreprocessPlan, device: torch.device, options: LoaderOptions) -> DecodeMode:
    """``gpu`` when asked for, on CUDA, and the preprocess has a tensor equivalent."""
    usable = options.gpu_decode and device.type == "cuda" and plan.resize_mode is not None
    return "gpu" if usable else "cpu"


class BatchLoader:
    """Iterate ``(start, batch)`` over ``keys`` in order; see the module docstring."""

    def __init__(
        self,
        store: Store,
        keys: Sequence[str],
        plan: PreprocessPlan,
        device: torch.device,
        dtype: torch.dtype,
        options: LoaderOptions = LoaderOptions(),  # noqa: B008 (frozen dataclass)
        decode_device: torch.device | None = None,
    ):
        self.store, self.keys, self.plan, self.options = store, list(keys), plan, options
        self.device = device
        self.normalize = Normalizer(plan, device, dtype)
        self.mode: DecodeMode = decode_mode(plan, device, options)
        # tests run the GPU code path on CPU by naming the decode device explicitly
        self.decode_device = decode_device
        if decode_device is not None and plan.resize_mode is not None:
            self.mode = "gpu"
        elif self.mode == "gpu":
            self.decode_device = device

        self.decode_cpu_s = 0.0  # CPU seconds the threads spent per image, summed
        self.decoded = 0

    def _task(self, key: str) -> Any:
        started = time.thread_time()
        if self.mode == "gpu":
            item = _read_for_gpu(self.store, key, self.plan, self.options.draft)
        else:
            item = load_pixels(self.store, key, self.plan, self.options.draft)
        self.decode_cpu_s += time.thread_time() - started  # a lost update only blurs a mean
        self.decoded += 1
        return item

    def decode_cost(self) -> float | None:
        """Mean CPU seconds one image costs the threads (read + decode + PIL preprocess);
        thread CPU time, so a busy machine does not inflate it. None before any image."""
        return self.decode_cpu_s / self.decoded if self.decoded else None

    def __iter__(self) -> Iterator[tuple[int, torch.Tensor]]:
        n, size = len(self.keys), self.options.batch_size
        window = size * (1 + self.options.prefetch_batches)
        pool = ThreadPoolExecutor(self.options.thread_count(), thread_name_prefix="image-load")
        futures: deque[Future] = deque()
        submitted = 0

        def top_up() -> None:
            nonlocal submitted
            while submitted < n and len(futures) < window:
                futures.append(pool.submit(self._task, self.keys[submitted]))
                submitted += 1

        try:
            for start in range(0, n, size):
                top_up()
                items = [futures.popleft().result() for _ in range(min(size, n - start))]
                top_up()  # keep the threads busy while this batch is assembled and run
                yield start, self._assemble(start, items)
        finally:
            for future in futures:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)

    def _assemble(self, start: int, items: list[Any]) -> torch.Tensor:
        if self.mode == "gpu":
            return self._assemble_gpu(start, items)
        if not self.plan.batched:
            batch = torch.stack(items)
            if self.device.type == "cuda":
                batch = batch.pin_memory()
            return batch.to(self.device, self.normalize.dtype, non_blocking=True)
        pinned = self.device.type == "cuda"
        pixels = torch.empty((len(items), *self.plan.size, 3), dtype=torch.uint8, pin_memory=pinned)
        np.stack(items, out=pixels.numpy())
        return self.normalize(pixels, channels_last=True)

    def _assemble_gpu(self, start: int, items: list[Any]) -> torch.Tensor:
        device = self.decode_device or self.device
        jpeg_at = [i for i, item in enumerate(items) if isinstance(item, bytes)]
        decoded = decode_jpegs([items[i] for i in jpeg_at], device) if jpeg_at else []
        images: list[torch.Tensor | None] = [None] * len(items)
        raw: list[torch.Tensor] = []
        raw_at: list[int] = []
        for i, image in zip(jpeg_at, decoded, strict=True):
            if image is None:  # the GPU decoder refused it: PIL decides (and names the key)
                key = self.keys[start + i]
                pixels = load_pixels(self.store, key, self.plan, self.options.draft, items[i])
                images[i] = _chw(pixels, device)
            else:
                raw.append(image)
                raw_at.append(i)
        if raw:
            for i, image in zip(raw_at, resize_tensors(raw, self.plan), strict=True):
                images[i] = image
        for i, item in enumerate(items):
            if images[i] is None:
                images[i] = _chw(item, device)
        batch = torch.stack([im for im in images if im is not None])
        return self.normalize(batch.to(self.device, non_blocking=True), channels_last=False)


def iter_batches(
    store: Store,
    keys: Sequence[str],
    plan: PreprocessPlan,
    device: torch.device,
    dtype: torch.dtype,
    options: LoaderOptions = LoaderOptions(),  # noqa: B008 (frozen dataclass)
) -> Iterator[tuple[int, torch.Tensor]]:
    """``(start index, batch on device in dtype)`` for ``keys`` in order (see BatchLoader)."""
    return iter(BatchLoader(store, keys, plan, device, dtype, options))
