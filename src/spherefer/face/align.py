"""Alignment of a detected face to the training framing.

A similarity transform (rotation, uniform scale, shift; weighted least squares in closed
form) takes the face's eyes, nose tip and mouth centre onto :data:`TEMPLATE`, their
median positions in FER+ training crops, so a photo's face is framed like the faces the
model learnt from (:func:`align_face`). Faces without eyes are aligned from their box
(:data:`BOX_TEMPLATES`). :func:`warp_image` and :func:`invert_similarity` are the image
geometry shared with the detectors' upright re-detection.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from spherefer.core.errors import InvalidInput
from spherefer.core.images import ImageInput
from spherefer.face.results import DetectedFace, image_to_rgb

__all__ = [
    "TEMPLATE",
    "TEMPLATE_WEIGHTS",
    "BOX_TEMPLATES",
    "warp_image",
    "invert_similarity",
    "similarity_transform",
    "alignment_matrix",
    "align_face",
]


# ---------------------------------------------------------------- the canonical framing (measured)

TEMPLATE: dict[str, tuple[float, float]] = {
    "right_eye": (0.3123, 0.3923),
    "left_eye": (0.6877, 0.3923),
    "nose_tip": (0.5000, 0.5946),
    "mouth_center": (0.5000, 0.7749),
}
"""Where a face's landmarks sit in a training crop, as fractions of the crop's side.

Measured by ``tools/measure_face_template.py``: the ``blazeface`` detector as shipped
(tight crops retried with 25% black padding, landmarks refined in an upright view) on
600 random FER+ training crops (seed 0; a face in 596), the median of each keypoint's
position (``x / 48, y / 48``), then made left-right symmetric (each point averaged with
its mirror), because training flips every crop horizontally half of the time. The raw
medians were right eye (0.315, 0.394), left eye (0.691, 0.391), nose tip (0.506, 0.595),
mouth centre (0.506, 0.775). Haar's eye centres fall within about half a pixel (at 48
px) of these, so both detectors share the template.
"""

TEMPLATE_WEIGHTS: dict[str, float] = {"right_eye": 1.0, "left_eye": 1.0, "nose_tip": 1.0, "mouth_center": 0.5}
"""Least-squares weight of each point in :func:`alignment_matrix`; the mouth centre
moves with the expression (it drops when the mouth opens), so it counts half."""

BOX_TEMPLATES: dict[str, tuple[float, float, float, float]] = {
    "haar": (0.0729, 0.0729, 0.9167, 0.9115),
}
"""Where a detector's box sits in a training crop (x0, y0, x1, y1 as fractions of the side),
used to align faces that come without eyes (box-only alignment, no rotation). Measured
by ``tools/measure_face_template.py`` like :data:`TEMPLATE`: the median box over the 344
of the 600 FER+ crops (upscaled twice) in which the cascade found a face. Detectors
without an entry use ``haar``'s."""


# ---------------------------------------------------------------- geometry


def warp_image(
    rgb: np.ndarray, matrix: np.ndarray, size: int, border: int = cv2.BORDER_REPLICATE, max_factor: int = 8
) -> np.ndarray:
    """A ``size`` x ``size`` view of ``rgb`` through the (2, 3) similarity ``matrix`` (image
    pixel coordinates -> output pixel coordinates, both continuous).

    When the output shrinks the image by 2x or more, it is warped at an integer multiple
    (up to ``max_factor``) of ``size`` first and then area-averaged down, so large faces
    are not aliased.
    """
    shrink = math.hypot(matrix[0, 0], matrix[1, 0])  # output pixels per image pixel
    factor = int(min(max_factor, max(1, math.floor(1.0 / shrink)))) if shrink > 0 else 1
    scaled = np.asarray(matrix, dtype=np.float64) * factor
    # continuous coordinates -> OpenCV's pixel-centre ones: x_cv = x - 0.5, on both sides
    scaled[:, 2] += scaled[:, :2].sum(axis=1) * 0.5 - 0.5
    out = cv2.warpAffine(
        rgb, scaled, (size * factor, size * factor), flags=cv2.INTER_LINEAR, borderMode=border, borderValue=(0, 0, 0)
    )
    if factor > 1:
        out = cv2.resize(out, (size, size), interpolation=cv2.INTER_AREA)
    return out


def invert_similarity(matrix: np.ndarray) -> np.ndarray:
    """The inverse of a (2, 3) affine map."""
    linear = np.linalg.inv(matrix[:, :2])
    return np.hstack([linear, -(linear @ matrix[:, 2])[:, None]])


# ---------------------------------------------------------------- alignment


def similarity_transform(source: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """The (2, 3) rotation + uniform scale + shift taking ``source`` points nearest to
    ``target`` points in weighted least squares (closed form, no reflection).

    With points as complex numbers z, the map is ``c z + t``; centring both sets on their
    weighted means, ``c = sum(w conj(s) d) / sum(w |s|^2)``. Two points fit exactly.
    """
    source = np.asarray(source, dtype=np.float64).reshape(-1, 2)
    target = np.asarray(target, dtype=np.float64).reshape(-1, 2)
    w = np.ones(len(source)) if weights is None else np.asarray(weights, dtype=np.float64)
    if len(source) < 2 or len(source) != len(target) or len(w) != len(source):
        raise InvalidInput(
            f"a similarity transform needs two or more matching points, got {len(source)} and {len(target)}"
        )
    w = w / w.sum()
    s = source[:, 0] + 1j * source[:, 1]
    d = target[:, 0] + 1j * target[:, 1]
    s_mean, d_mean = (w * s).sum(), (w * d).sum()
    s, d = s - s_mean, d - d_mean
    spread = (w * np.abs(s) ** 2).sum()
    if spread < 1e-12:
        raise InvalidInput("the landmarks coincide; no alignment is possible")
    c = (w * np.conj(s) * d).sum() / spread
    t = d_mean - c * s_mean
    return np.array([[c.real, -c.imag, t.real], [c.imag, c.real, t.imag]])


def alignment_matrix(face: DetectedFace, size: int) -> np.ndarray:
    """(2, 3) map from the image's pixel coordinates to a ``size`` x ``size`` aligned crop's.

    Uses every :data:`TEMPLATE` landmark the face has when there are at least two (the
    eyes suffice); otherwise maps the box onto the detector's :data:`BOX_TEMPLATES` entry
    (uniform scale, no rotation).
    """
    names = [name for name in TEMPLATE if name in face.landmark_names]
    if len(names) >= 2:
        source = np.stack([face.landmarks[face.landmark_names.index(name)] for name in names])
        target = np.array([TEMPLATE[name] for name in names]) * size
        return similarity_transform(source, target, np.array([TEMPLATE_WEIGHTS[name] for name in names]))
    x0, y0, x1, y1 = BOX_TEMPLATES.get(face.detector, BOX_TEMPLATES["haar"])
    if face.width <= 0 or face.height <= 0:
        raise InvalidInput(f"a face box must have a positive size, got {face.box.tolist()}")
    scale = size * math.sqrt((x1 - x0) * (y1 - y0) / (face.width * face.height))
    cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
    return np.array([[scale, 0.0, size * (x0 + x1) / 2 - scale * cx], [0.0, scale, size * (y0 + y1) / 2 - scale * cy]])


def _size_of(size_or_config: int | Any) -> int:
    size = getattr(size_or_config, "input_size", size_or_config)
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise InvalidInput(f"an aligned crop size must be a positive integer, got {size!r}")
    return int(size)


def align_face(image: ImageInput, face: DetectedFace, size_or_config: int | Any = 48) -> np.ndarray:
    """The face cut out, rotated and scaled to the training framing: (size, size, 3) uint8 RGB.

    ``size_or_config`` is the crop side or a :class:`~spherefer.training.models.ModelConfig` (its
    ``input_size``). Parts of the crop outside the photo repeat its border pixels. A face
    much larger than the crop is warped at an intermediate size and then area-averaged
    down, so small crops of large faces are not aliased.
    """
    size = _size_of(size_or_config)
    return warp_image(image_to_rgb(image), alignment_matrix(face, size), size, cv2.BORDER_REPLICATE)
