"""Face models: a detector, dlib's 5-point shape predictor and its 128-d face descriptor.

Every weight file comes from an installed PyPI package, never from a download: dlib
(the ``dlib-bin`` wheel) brings its HOG frontal-face detector compiled in, and
``face-recognition-models`` ships ``shape_predictor_5_face_landmarks.dat``,
``dlib_face_recognition_resnet_model_v1.dat`` (128-d descriptors: the same person lies
within ~0.6 euclidean) and ``mmod_human_face_detector.dat`` (the CNN detector: seconds
per frame on a CPU, so not the default). That package's ``__init__`` imports
``pkg_resources``; its files are found through its import spec, never by importing it.

``detector``: ``auto`` takes dlib's HOG detector when dlib and the weights package are
installed, else OpenCV (YuNet with a model file, else the Haar cascade bundled with
OpenCV 4: ``curation.quality.faces`` names them), which finds boxes but embeds nothing.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from style_pipeline.contracts.characters import CharacterSettings
from style_pipeline.contracts.curation import FaceConfig

log = logging.getLogger(__name__)

WEIGHTS_PACKAGE = "face_recognition_models"
SHAPE_PREDICTOR_FILE = "shape_predictor_5_face_landmarks.dat"
ENCODER_FILE = "dlib_face_recognition_resnet_model_v1.dat"
CNN_DETECTOR_FILE = "mmod_human_face_detector.dat"
HAAR_FILE = "haarcascade_frontalface_default.xml"
DLIB_EMBEDDER = "dlib_resnet_v1"
DLIB_EMBEDDING_DIM = 128


class FaceModelsUnavailable(RuntimeError):
    """The configured face detector or its weights are not installed."""


@dataclass(frozen=True, eq=False)
class FaceModels:
    """Loaded face models and what they are (``detector``, ``shape_predictor``, ``encoder``
    are dlib or OpenCV objects; not safe to share between threads)."""

    detector_name: str  # dlib_hog | dlib_cnn | opencv_yunet | opencv_haar
    embedder_name: str | None  # dlib_resnet_v1, or None: boxes only
    embedding_dim: int  # 0 without an embedder
    detector: Any
    shape_predictor: Any | None = None
    encoder: Any | None = None
    files: tuple[str, ...] = ()  # the weight files loaded
    versions: tuple[str, ...] = ()  # library versions that shape the results
    fallback_reason: str = ""  # why ``auto`` took OpenCV ('' otherwise)

    @property
    def is_dlib(self) -> bool:
        return self.detector_name.startswith("dlib_")

    @cached_property
    def identity(self) -> str:
        """A short hash of the detector, embedder, weight files (name and size) and library
        versions: two loads with the same identity give the same faces."""
        parts = [self.detector_name, self.embedder_name or "-", *self.versions]
        parts += [f"{Path(f).name}:{os.path.getsize(f)}" for f in self.files]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]

    def metadata(self) -> dict[str, str | int]:
        return {
            "detector": self.detector_name,
            "embedder": self.embedder_name or "none",
            "embedding_dim": self.embedding_dim,
            "models_identity": self.identity,
        }


def weights_dir() -> Path | None:
    """``face_recognition_models/models`` of the installed package (None: not installed)."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def dlib_installed() -> bool:
    return importlib.util.find_spec("dlib") is not None


def weight_file(folder: Path, name: str) -> Path:
    """``folder/name``, or ``FaceModelsUnavailable`` naming what is missing and why."""
    path = folder / name
    if not path.is_file():
        raise FaceModelsUnavailable(
            f"face model file {path} is missing: reinstall face-recognition-models "
            "(pip install --force-reinstall 'face-recognition-models>=0.3,<0.4')"
        )
    return path


def load_face_models(
    settings: CharacterSettings,
    opencv: FaceConfig | None = None,
    weights: Path | None = None,
) -> FaceModels:
    """The detector ``settings.detector`` asks for, with landmarks and embeddings for dlib.

    ``opencv``: YuNet model or Haar cascade for the OpenCV detector (default: OpenCV's
    bundled cascade); ``weights``: the folder of the ``.dat`` files (default: the
    installed face-recognition-models). ``auto`` falls back to OpenCV, logged, only when
    dlib or the weights package is not installed; a missing file of an installed package
    is an error.
    """
    choice = settings.detector
    folder = weights if weights is not None else weights_dir()
    if choice == "auto":
        missing = [
            what
            for what, ok in (("dlib", dlib_installed()), ("face-recognition-models", folder))
            if not ok
        ]
        if missing:
            reason = f"{' and '.join(missing)} not installed: OpenCV finds faces, none embedded"
            log.warning("face detector auto: %s", reason)
            return _opencv_models(opencv or FaceConfig(), reason)
        choice = "dlib_hog"
    if choice == "opencv":
        return _opencv_models(opencv or FaceConfig(), "")
    if not dlib_installed():
        raise FaceModelsUnavailable(
            f"face detector {choice} needs dlib: pip install 'dlib-bin>=20,<21'"
        )
    if folder is None:
        raise FaceModelsUnavailable(
            f"face detector {choice} needs face-recognition-models: "
            "pip install 'face-recognition-models>=0.3,<0.4'"
        )
    return _dlib_models(choice, folder)


def _dlib_models(choice: str, folder: Path) -> FaceModels:
    import dlib

    shape_file = weight_file(folder, SHAPE_PREDICTOR_FILE)
    encoder_file = weight_file(folder, ENCODER_FILE)
    files = [shape_file, encoder_file]
    if choice == "dlib_cnn":
        cnn_file = weight_file(folder, CNN_DETECTOR_FILE)
        detector = dlib.cnn_face_detection_model_v1(str(cnn_file))
        files.append(cnn_file)
    else:
        detector = dlib.get_frontal_face_detector()
    return FaceModels(
        detector_name=choice,
        embedder_name=DLIB_EMBEDDER,
        embedding_dim=DLIB_EMBEDDING_DIM,
        detector=detector,
        shape_predictor=dlib.shape_predictor(str(shape_file)),
        encoder=dlib.face_recognition_model_v1(str(encoder_file)),
        files=tuple(str(f) for f in files),
        versions=(f"dlib {dlib.__version__}",),
    )


def _opencv_models(config: FaceConfig, fallback_reason: str) -> FaceModels:
    import cv2

    versions = (f"opencv {cv2.__version__}",)
    if config.yunet_model:
        model = Path(config.yunet_model)
        if not model.is_file():
            raise FaceModelsUnavailable(f"YuNet model not found: {model}")
        yunet = cv2.FaceDetectorYN.create(
            str(model), "", (320, 320), config.score_threshold, 0.3, 5000
        )
        return FaceModels(
            "opencv_yunet", None, 0, yunet, files=(str(model),), versions=versions,
            fallback_reason=fallback_reason,
        )  # fmt: skip
    cascade = _haar_file(config.cascade_file)
    classifier = cv2.CascadeClassifier(str(cascade))
    if classifier.empty():
        raise FaceModelsUnavailable(f"could not load Haar cascade {cascade}")
    return FaceModels(
        "opencv_haar", None, 0, classifier, files=(str(cascade),), versions=versions,
        fallback_reason=fallback_reason,
    )  # fmt: skip


def _haar_file(cascade_file: str | None) -> Path:
    import cv2

    if cascade_file is not None:
        path = Path(cascade_file)
    else:
        folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
        if folder is None or not hasattr(cv2, "CascadeClassifier"):
            raise FaceModelsUnavailable(
                f"OpenCV {cv2.__version__} ships no Haar cascade: install dlib-bin and "
                "face-recognition-models, or set curation.quality.faces.yunet_model"
            )
        path = Path(folder) / HAAR_FILE
    if not path.is_file():
        raise FaceModelsUnavailable(f"Haar cascade not found: {path}")
    return path
