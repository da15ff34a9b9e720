"""Face detection with OpenCV's bundled Haar cascades: a cvat-aa function plugin.

The cascades ship inside the ``opencv-python-headless`` wheel (``cv2.data.haarcascades``),
so the function runs without downloading weights. It is the example third-party plugin of
cvat-aa; see the README beside ``pyproject.toml`` for how it is put together.

Haar cascades give no calibrated confidence, so the shapes carry no score and the run's
confidence threshold (``context.conf_threshold``) is ignored. Tune ``min_neighbors`` instead:
higher values give fewer, surer detections.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import cv2
import cvat_aa
import numpy as np
import PIL.Image
from cvat_sdk import models

__all__ = ["CASCADES", "EYE_LABEL_ID", "FACE_LABEL_ID", "FaceDetectionFunction", "create"]

logger = logging.getLogger(__name__)

FACE_LABEL_ID = 0
EYE_LABEL_ID = 1

#: Face cascades that can be chosen with the ``cascade`` parameter.
CASCADES = (
    "frontalface_default",
    "frontalface_alt",
    "frontalface_alt2",
    "profileface",
)

# Eyes sit in the upper part of a face; searching only there keeps the eye cascade from
# firing on nostrils and mouth corners.
_EYE_REGION_HEIGHT = 0.6
# An eye is roughly a fifth of the face's width; smaller hits inside a face are texture.
_EYE_MIN_SIZE_RATIO = 0.15


def _load_cascade(name: str) -> cv2.CascadeClassifier:
    path = Path(cv2.data.haarcascades) / f"haarcascade_{name}.xml"
    classifier = cv2.CascadeClassifier(str(path))
    if classifier.empty():
        raise RuntimeError(
            f"OpenCV could not load the cascade {str(path)!r}; reinstall opencv-python-headless"
            " (a 4.x release: OpenCV 5 no longer ships Haar cascades)"
        )
    return classifier


def _to_corners(boxes: Sequence[Sequence[int]], dx: int = 0, dy: int = 0) -> list[list[float]]:
    """OpenCV's ``(x, y, w, h)`` boxes, shifted by ``(dx, dy)``, as CVAT's ``[x1, y1, x2, y2]``."""
    return [
        [float(x + dx), float(y + dy), float(x + dx + w), float(y + dy + h)] for x, y, w, h in boxes
    ]


class FaceDetectionFunction:
    """Detects faces, and optionally eyes inside them, as rectangles.

    Build it with :func:`create`, which checks the parameters.
    """

    #: Annotated, so that ``cvat-aa functions list`` tells its kind without building it.
    spec: cvat_aa.DetectionFunctionSpec

    def __init__(
        self,
        *,
        scale_factor: float,
        min_neighbors: int,
        min_size: int,
        cascade: str,
        eyes: bool,
    ) -> None:
        self._scale_factor = scale_factor
        self._min_neighbors = min_neighbors
        self._min_size = min_size
        self._faces = _load_cascade(cascade)
        self._eyes = _load_cascade("eye") if eyes else None

        labels = [cvat_aa.label_spec("face", FACE_LABEL_ID, type="rectangle")]
        if eyes:
            labels.append(cvat_aa.label_spec("eye", EYE_LABEL_ID, type="rectangle"))
        self.spec = cvat_aa.DetectionFunctionSpec(labels=labels)

    def detect(
        self, context: cvat_aa.DetectionFunctionContext, image: PIL.Image.Image
    ) -> list[models.LabeledShapeRequest]:
        gray = np.asarray(image.convert("L"))
        # As in OpenCV's face detection tutorial: equalizing makes dim and washed-out faces
        # look like the well-lit ones the cascades respond to.
        gray = cv2.equalizeHist(gray)
        faces = self._faces.detectMultiScale(
            gray,
            scaleFactor=self._scale_factor,
            minNeighbors=self._min_neighbors,
            minSize=(self._min_size, self._min_size),
        )
        shapes = [cvat_aa.rectangle(FACE_LABEL_ID, box) for box in _to_corners(faces)]
        if self._eyes is not None:
            for face in faces:
                shapes.extend(self._detect_eyes(self._eyes, gray, face))
        logger.debug("%s: %d faces", context.frame_name, len(faces))
        return shapes

    def _detect_eyes(
        self, cascade: cv2.CascadeClassifier, gray: np.ndarray, face: Sequence[int]
    ) -> list[models.LabeledShapeRequest]:
        x, y, w, h = face
        region = gray[y : y + int(h * _EYE_REGION_HEIGHT), x : x + w]
        min_eye = max(1, int(w * _EYE_MIN_SIZE_RATIO))
        eyes = cascade.detectMultiScale(
            region,
            scaleFactor=self._scale_factor,
            minNeighbors=self._min_neighbors,
            minSize=(min_eye, min_eye),
        )
        return [cvat_aa.rectangle(EYE_LABEL_ID, box) for box in _to_corners(eyes, x, y)]


def create(
    scale_factor: float = 1.1,
    min_neighbors: int = 5,
    min_size: int = 24,
    cascade: str = "frontalface_default",
    eyes: bool = False,
) -> FaceDetectionFunction:
    """Detect faces (and optionally eyes) with OpenCV's bundled Haar cascades; no downloads.

    :param scale_factor: how much the search window grows between scales (> 1); smaller
        values find more faces, slower.
    :param min_neighbors: how many overlapping candidates a detection needs; higher values
        give fewer false positives. Use this instead of a confidence threshold, which Haar
        cascades do not provide.
    :param min_size: the smallest face to report, in pixels (width and height).
    :param cascade: which face cascade to use: one of ``CASCADES``.
    :param eyes: also detect eyes inside each face, as an ``eye`` label.
    """
    if not scale_factor > 1:
        raise ValueError(f"scale_factor must be greater than 1, got {scale_factor}")
    if min_neighbors < 0:
        raise ValueError(f"min_neighbors must be 0 or more, got {min_neighbors}")
    if min_size < 1:
        raise ValueError(f"min_size must be at least 1 pixel, got {min_size}")
    if cascade not in CASCADES:
        raise ValueError(f"unknown cascade {cascade!r}; choose one of {', '.join(CASCADES)}")
    return FaceDetectionFunction(
        scale_factor=scale_factor,
        min_neighbors=min_neighbors,
        min_size=min_size,
        cascade=cascade,
        eyes=eyes,
    )
