"""Quality checks: a face that is too small, too blurred or too sideways is reported with
the reason instead of being classified (:func:`assess_quality`, limits in
:class:`QualityConfig`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from spherefer.core.images import ImageInput
from spherefer.face.align import align_face
from spherefer.face.results import DetectedFace, image_to_rgb

__all__ = [
    "QualityConfig",
    "SHARPNESS_SIZE",
    "sharpness",
    "yaw_ratio",
    "assess_quality",
]


# ---------------------------------------------------------------- quality checks

SHARPNESS_SIZE = 48
"""Side of the greyscale crop :func:`sharpness` is measured on (the training crops' size)."""


@dataclass(frozen=True)
class QualityConfig:
    """Limits under which a face is reported instead of classified.

    * ``min_face``: the detector box's shorter side in pixels of the photo.
    * ``min_sharpness``: :func:`sharpness` of the face aligned at 48 px. 0.08 flags 0.5%
      of 596 FER+ training faces aligned by this module (1st percentile 0.097, median
      0.35) and 98.7% of the same faces blurred by a Gaussian of sigma 1.5 px at 48 px
      (99th percentile 0.083); at sigma 1 px the median is 0.06, so a moderate blur is
      flagged too. Measured by ``tools/measure_face_template.py``.
    * ``max_yaw``: :func:`yaw_ratio` in absolute value. 0.8 flags 1.2% of the same FER+
      faces (median 0.08, 95th percentile 0.47): about a head turned 55-60 degrees.

    A value of None switches that check off.
    """

    min_face: float | None = 24.0
    min_sharpness: float | None = 0.08
    max_yaw: float | None = 0.8


def sharpness(crop: np.ndarray) -> float:
    """Contrast-independent sharpness of a face crop: the variance of its Laplacian divided by
    its own variance, on a :data:`SHARPNESS_SIZE` greyscale version (so crops of any size and
    exposure compare). Blur removes the high frequencies the Laplacian responds to."""
    grey = np.asarray(crop)
    if grey.ndim == 3:
        grey = cv2.cvtColor(grey[:, :, :3], cv2.COLOR_RGB2GRAY)
    grey = grey.astype(np.float32)
    if grey.shape != (SHARPNESS_SIZE, SHARPNESS_SIZE):
        interpolation = cv2.INTER_AREA if grey.shape[0] > SHARPNESS_SIZE else cv2.INTER_LINEAR
        grey = cv2.resize(grey, (SHARPNESS_SIZE, SHARPNESS_SIZE), interpolation=interpolation)
    variance = float(grey.var())
    if variance < 1e-6:
        return 0.0
    return float(cv2.Laplacian(grey, cv2.CV_32F).var()) / variance


def yaw_ratio(face: DetectedFace) -> float | None:
    """How far the nose tip sits from the eyes' midpoint along the eye line, in inter-ocular
    distances: 0 for a frontal face, growing as the head turns (positive when the nose
    points to the image's right). None when the face lacks eyes or nose.

    With the nose tip about half an inter-ocular distance in front of the eyes, a head
    turned by angle a gives roughly ``0.5 tan(a)``: 0.29 at 30 degrees, 0.5 at 45.
    """
    right, left, nose = face.point("right_eye"), face.point("left_eye"), face.point("nose_tip")
    if right is None or left is None or nose is None:
        return None
    axis = left - right
    distance = float(np.hypot(*axis))
    if distance < 1e-6:
        return None
    return float(np.dot(nose - (right + left) / 2, axis / distance) / distance)


def assess_quality(
    face: DetectedFace, image: ImageInput, config: QualityConfig = QualityConfig()
) -> tuple[dict[str, float | None], list[str]]:
    """Measurements and failed checks of one face of ``image`` (the photo it was found in).

    Returns ``{"size", "sharpness", "yaw"}`` and a list of short reasons such as
    ``"too small: 18 px < 24 px"``; an empty list means usable. Sharpness is measured on the
    face aligned at :data:`SHARPNESS_SIZE` px, whatever the model's input size.
    """
    rgb = image_to_rgb(image)
    measured: dict[str, Any] = {
        "size": round(face.size, 1),
        "sharpness": round(sharpness(align_face(rgb, face, SHARPNESS_SIZE)), 4),
        "yaw": yaw_ratio(face),
    }
    if measured["yaw"] is not None:
        measured["yaw"] = round(measured["yaw"], 3)
    issues = []
    if config.min_face is not None and face.size < config.min_face:
        issues.append(
            f"too small: {math.floor(10 * face.size) / 10:g} px < {config.min_face:g} px"
        )  # floored: never "24 px < 24 px"
    if config.min_sharpness is not None and measured["sharpness"] < config.min_sharpness:
        issues.append(f"too blurred: sharpness {measured['sharpness']:.3f} < {config.min_sharpness:g}")
    if config.max_yaw is not None and measured["yaw"] is not None and abs(measured["yaw"]) > config.max_yaw:
        issues.append(f"too sideways: yaw {measured['yaw']:+.2f} beyond {config.max_yaw:g}")
    return measured, issues
