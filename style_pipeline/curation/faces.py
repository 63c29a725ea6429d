"""Face count and largest-face area with OpenCV: YuNet when a model file is configured,
else the frontal-face Haar cascade bundled with OpenCV 4 (``cv2.data.haarcascades``).

OpenCV 5 no longer ships the cascade classifier; without a YuNet model the detector then
reports ``backend == "unavailable"`` and returns ``None`` instead of guessing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from style_pipeline.contracts.curation import FaceConfig

HAAR_FILE = "haarcascade_frontalface_default.xml"


@dataclass(frozen=True)
class FaceStats:
    count: int
    largest_area_fraction: float  # of the image area; 0.0 without faces


class FaceDetector:
    """Detects faces on RGB uint8 images with whichever backend the config allows."""

    def __init__(self, config: FaceConfig):
        self.config = config
        self._yunet = None
        self._haar = None
        self.backend = "disabled"
        if not config.enabled:
            pass
        elif config.yunet_model:
            model = Path(config.yunet_model)
            if not model.is_file():
                raise FileNotFoundError(f"YuNet model not found: {model}")
            self._yunet = cv2.FaceDetectorYN.create(
                str(model), "", (320, 320), config.score_threshold, 0.3, 5000
            )
            self.backend = "yunet"
        else:
            self._haar = _haar_classifier(config.cascade_file)
            self.backend = "haar" if self._haar is not None else "unavailable"
        if self.backend in ("disabled", "unavailable") and (
            config.require_face or config.max_faces is not None
        ):
            raise ValueError(
                f"face requirements are configured but face detection is {self.backend}: "
                "set faces.yunet_model or install OpenCV 4 (bundled Haar cascade)"
            )

    @property
    def available(self) -> bool:
        return self.backend in ("yunet", "haar")

    def detect(self, rgb: np.ndarray) -> FaceStats | None:
        """Face statistics of an RGB uint8 image, or ``None`` when no backend is available."""
        if not self.available:
            return None
        h, w = rgb.shape[:2]
        min_side = max(12, round(self.config.min_face_fraction * min(h, w)))
        if self._yunet is not None:
            self._yunet.setInputSize((w, h))
            _, found = self._yunet.detect(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            boxes = [] if found is None else [b[2:4] for b in found]
        else:
            if self._haar is None:  # ``available`` means YuNet or Haar is loaded
                raise RuntimeError(f"face backend {self.backend!r} has no detector loaded")
            gray = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
            found = self._haar.detectMultiScale(
                gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side)
            )
            boxes = [b[2:4] for b in found]
        areas = [float(bw * bh) for bw, bh in boxes if min(bw, bh) >= min_side]
        return FaceStats(len(areas), max(areas, default=0.0) / float(w * h))


def _haar_classifier(cascade_file: str | None):
    """OpenCV's cascade classifier, or ``None`` when this OpenCV build has none."""
    classifier = getattr(cv2, "CascadeClassifier", None)
    if cascade_file is None:
        folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
        if classifier is None or folder is None:
            return None
        path = os.path.join(folder, HAAR_FILE)
        if not os.path.isfile(path):
            return None
    else:
        path = cascade_file
        if classifier is None:
            raise RuntimeError(f"this OpenCV ({cv2.__version__}) has no CascadeClassifier")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Haar cascade not found: {path}")
    detector = classifier(path)
    if detector.empty():
        raise ValueError(f"could not load Haar cascade {path}")
    return detector
