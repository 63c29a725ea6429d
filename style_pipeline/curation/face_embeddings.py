"""Faces of an image: boxes, detector scores, landmarks, blur and face descriptors.

``find_faces`` downscales the image to ``max_edge``, detects there (dlib's HOG or CNN
detector with ``upsample``, or OpenCV's YuNet / Haar fallback), maps every box back to
the image's pixels, and then works on the full-resolution image: dlib's 5-point shape
predictor places the landmarks (YuNet brings its own five, Haar none), the aligned
150 px chip gives the 128-d descriptor (faces shorter than ``min_face_px``: none), and the
blur is the variance of the Laplacian of the grey face crop. Euclidean distance between
two descriptors below ~0.6 means the same person (dlib's calibration).

``faces_in_files`` runs it over many image files with bounded parallelism, in threads by
default: dlib's HOG detector (most of the time per frame) releases the GIL, its
descriptor network does not, and a worker process would pay for importing
``style_pipeline.models`` (torch and open_clip, seconds) before its first frame.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np
from PIL import Image

from style_pipeline.contracts.characters import CharacterSettings
from style_pipeline.contracts.curation import FaceConfig
from style_pipeline.models.faces import FaceModels, load_face_models
from style_pipeline.parallel import ItemError, Progress, map_bounded

CHIP_SIZE = 150  # the descriptor network's input, with dlib's default 0.25 padding
CHIP_PADDING = 0.25
HAAR_MIN_PX = 24  # the cascade's window


@dataclass(frozen=True, eq=False)
class DetectedFace:
    """One face: ``box`` (x0, y0, x1, y1; x1 and y1 exclusive, clipped to the image),
    ``landmarks`` (x, y of each point), in the pixels of the image it was found in."""

    box: tuple[int, int, int, int]
    score: float
    landmarks: tuple[float, ...]
    blur: float
    embedding: np.ndarray | None  # float32 (dim,); None: too small or no embedder

    @property
    def area(self) -> int:
        x0, y0, x1, y1 = self.box
        return (x1 - x0) * (y1 - y0)

    @property
    def short_side(self) -> int:
        x0, y0, x1, y1 = self.box
        return min(x1 - x0, y1 - y0)

    def scaled(self, sx: float, sy: float) -> DetectedFace:
        """The same face in an image ``sx`` times wider and ``sy`` times taller."""
        x0, y0, x1, y1 = self.box
        box = (round(x0 * sx), round(y0 * sy), round(x1 * sx), round(y1 * sy))
        points = [v * (sx if i % 2 == 0 else sy) for i, v in enumerate(self.landmarks)]
        return replace(self, box=box, landmarks=tuple(points))


@dataclass(frozen=True)
class _Candidate:
    """A detection in the downscaled image: float box (exclusive end), score, landmarks."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: tuple[float, ...] = ()


def as_rgb(image: np.ndarray) -> np.ndarray:
    """``image`` as a C-contiguous (H, W, 3) uint8 array, or ``ValueError``."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.dtype}{image.shape}")
    return np.ascontiguousarray(image)


def find_faces(
    image_rgb: np.ndarray, models: FaceModels, settings: CharacterSettings
) -> list[DetectedFace]:
    """Every face of an RGB image, largest first (ties: top, then left)."""
    image = as_rgb(image_rgb)
    height, width = image.shape[:2]
    scale = min(1.0, settings.max_edge / max(height, width))
    small = image
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    faces = []
    for candidate in _detect(small, models, settings):
        face = _describe(image, candidate, 1.0 / scale, models, settings)
        if face is not None:
            faces.append(face)
    faces.sort(key=lambda f: (-f.area, f.box[1], f.box[0]))
    return faces


def _detect(image: np.ndarray, models: FaceModels, settings: CharacterSettings) -> list[_Candidate]:
    name = models.detector_name
    if name == "dlib_hog":
        rects, scores, _ = models.detector.run(
            image, settings.upsample, settings.min_detector_score
        )
        return [_Candidate(_dlib_box(r), float(s)) for r, s in zip(rects, scores, strict=True)]
    if name == "dlib_cnn":
        found = models.detector(image, settings.upsample)
        return [
            _Candidate(_dlib_box(d.rect), float(d.confidence))
            for d in found
            if d.confidence >= settings.min_detector_score
        ]
    if name == "opencv_yunet":
        return _yunet(image, models.detector)
    if name == "opencv_haar":
        return _haar(image, models.detector)
    raise ValueError(f"unknown face detector {name!r}")


def _dlib_box(rect: Any) -> tuple[float, float, float, float]:
    """A dlib rectangle (inclusive right/bottom) as a float box with exclusive ends."""
    return (rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1)


def _yunet(image: np.ndarray, yunet: Any) -> list[_Candidate]:
    height, width = image.shape[:2]
    yunet.setInputSize((width, height))
    _, found = yunet.detect(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    out = []
    for row in [] if found is None else found:
        x, y, w, h = (float(v) for v in row[:4])
        out.append(_Candidate((x, y, x + w, y + h), float(row[14]), tuple(map(float, row[4:14]))))
    return out


def _haar(image: np.ndarray, cascade: Any) -> list[_Candidate]:
    gray = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
    rects, _, weights = cascade.detectMultiScale3(
        gray,
        scaleFactor=1.1,
        minNeighbors=5,
        minSize=(HAAR_MIN_PX, HAAR_MIN_PX),
        outputRejectLevels=True,
    )
    return [
        _Candidate((float(x), float(y), float(x + w), float(y + h)), float(score))
        for (x, y, w, h), score in zip(rects, np.ravel(weights), strict=True)
    ]


def _describe(
    image: np.ndarray,
    candidate: _Candidate,
    factor: float,
    models: FaceModels,
    settings: CharacterSettings,
) -> DetectedFace | None:
    """The candidate mapped to ``image`` (``factor``: image px per detection px) with its
    landmarks, blur and descriptor; None when its box lies outside the image."""
    height, width = image.shape[:2]
    left, top, right, bottom = (v * factor for v in candidate.box)
    box = (
        max(0, round(left)),
        max(0, round(top)),
        min(width, round(right)),
        min(height, round(bottom)),
    )
    if box[2] <= box[0] or box[3] <= box[1]:
        return None
    shape = None
    if models.shape_predictor is not None:
        import dlib

        rect = dlib.rectangle(round(left), round(top), round(right) - 1, round(bottom) - 1)
        shape = models.shape_predictor(image, rect)
        landmarks = tuple(float(v) for p in shape.parts() for v in (p.x, p.y))
    else:
        landmarks = tuple(v * factor for v in candidate.landmarks)
    embedding = None
    if shape is not None and models.encoder is not None:
        if min(box[2] - box[0], box[3] - box[1]) >= settings.min_face_px:
            embedding = embed_shape(image, shape, models)
    return DetectedFace(box, candidate.score, landmarks, laplacian_variance(image, box), embedding)


def embed_shape(image: np.ndarray, shape: Any, models: FaceModels) -> np.ndarray:
    """The descriptor of the face ``shape`` (dlib full_object_detection) outlines."""
    import dlib

    chip = dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
    vector = models.encoder.compute_face_descriptor(chip)  # type: ignore[union-attr]
    return np.asarray(vector, dtype=np.float32).reshape(models.embedding_dim)


def laplacian_variance(image: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Variance of the Laplacian of the grey crop ``box`` (low: blurred; 0 when empty)."""
    x0, y0, x1, y1 = box
    crop = image[y0:y1, x0:x1]
    if crop.size == 0:
        return 0.0
    gray = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def read_rgb(path: str) -> np.ndarray:
    """An image file as an (H, W, 3) uint8 RGB array (EXIF orientation is the frames
    stage's business: frames are stored upright)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


# Many files ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaceJob:
    """One image file to scan, with what the worker needs to load the same models."""

    path: str
    settings: CharacterSettings
    opencv: FaceConfig | None = None


_local = threading.local()


def _thread_models(
    settings: CharacterSettings, opencv: FaceConfig | None
) -> tuple[dict[tuple[str, str], FaceModels], tuple[str, str]]:
    key = (settings.model_dump_json(), opencv.model_dump_json() if opencv else "")
    return _local.__dict__.setdefault("models", {}), key


def _remember(settings: CharacterSettings, opencv: FaceConfig | None, models: FaceModels) -> None:
    cache, key = _thread_models(settings, opencv)
    cache[key] = models


def _models_for(settings: CharacterSettings, opencv: FaceConfig | None) -> FaceModels:
    """This thread's face models for ``settings`` (dlib's detector and network are not
    safe to share between threads), loaded on first use."""
    cache, key = _thread_models(settings, opencv)
    if key not in cache:
        cache[key] = load_face_models(settings, opencv)
    return cache[key]


def faces_in_file(job: FaceJob) -> list[DetectedFace]:
    """``find_faces`` on one image file (a worker's unit of work)."""
    return find_faces(read_rgb(job.path), _models_for(job.settings, job.opencv), job.settings)


def faces_in_files(
    paths: Iterable[str],
    settings: CharacterSettings,
    opencv: FaceConfig | None = None,
    *,
    workers: int = 0,
    threads: bool = True,
    total: int | None = None,
    progress: Progress | None = None,
    models: FaceModels | None = None,
) -> Iterator[list[DetectedFace] | ItemError]:
    """Faces of every file, in input order; an unreadable file yields an ``ItemError``.

    ``workers`` (0: one per CPU, 1: in this thread) threads, or processes when
    ``threads`` is false; each loads its own models once (~0.35 s: dlib's detector and
    network are not thread-safe). ``models`` (loaded for ``settings`` and ``opencv``)
    serve this thread, so an inline scan loads nothing again. benchmarks/bench_faces.py
    compares the three.
    """
    if models is not None:
        _remember(settings, opencv, models)
    jobs = (FaceJob(path, settings, opencv) for path in paths)
    yield from map_bounded(
        faces_in_file, jobs, workers, total=total, progress=progress, threads=threads
    )
