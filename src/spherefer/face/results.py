"""What the face pipeline produces: detected faces, per-face results and their drawing.

:class:`DetectedFace` is one face as a detector found it (box, landmarks, score);
:class:`FaceRecord` is everything :meth:`~spherefer.runtime.recognizer.Recognizer.analyze` knows
about one face (aligned crop, quality, prediction); :func:`draw_faces` annotates a photo
with them. :func:`image_to_rgb` turns any image input into the (H, W, 3) uint8 RGB array
every step of :mod:`spherefer.face` works on.

Coordinates are continuous pixel coordinates: pixel ``(i, j)`` covers ``[j, j + 1) x
[i, i + 1)``, so the image spans ``[0, W] x [0, H]`` and pixel centres sit at ``+0.5``.
Landmark names follow the subject: ``right_eye`` is the subject's right eye, on the
image's left for a frontal face.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from spherefer.core.errors import InvalidInput
from spherefer.core.images import ImageInput, to_rgb_array
from spherefer.core.labels import REJECTED, UNKNOWN, face_dict, rounded_points

if TYPE_CHECKING:
    from spherefer.core.labels import Prediction

__all__ = [
    "LANDMARK_NAMES",
    "DetectedFace",
    "FaceRecord",
    "draw_faces",
    "image_to_rgb",
]


LANDMARK_NAMES: tuple[str, ...] = ("right_eye", "left_eye", "nose_tip", "mouth_center", "right_ear", "left_ear")
"""Every landmark name a detector may report, in BlazeFace's keypoint order."""


# ---------------------------------------------------------------- detected faces


@dataclass
class DetectedFace:
    """One face found by a detector, in pixel coordinates of the image it was found in.

    ``box`` is (x0, y0, x1, y1), float, possibly reaching past the image border;
    ``landmarks`` is (K, 2) x, y with ``landmark_names[k]`` naming row k (a subset of
    :data:`LANDMARK_NAMES`, empty when the detector found no landmarks); ``score`` is the
    detector's confidence in [0, 1], or None for a detector without one (Haar).
    """

    box: np.ndarray
    landmarks: np.ndarray
    landmark_names: tuple[str, ...]
    score: float | None
    detector: str

    def __post_init__(self) -> None:
        self.box = np.asarray(self.box, dtype=np.float64).reshape(4)
        self.landmarks = np.asarray(self.landmarks, dtype=np.float64).reshape(-1, 2)
        self.landmark_names = tuple(self.landmark_names)
        self.score = None if self.score is None else float(self.score)
        if len(self.landmark_names) != len(self.landmarks):
            raise InvalidInput(f"{len(self.landmarks)} landmarks but {len(self.landmark_names)} names")
        unknown = set(self.landmark_names) - set(LANDMARK_NAMES)
        if unknown:
            raise InvalidInput(f"unknown landmark names {sorted(unknown)}; known: {LANDMARK_NAMES}")

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    @property
    def size(self) -> float:
        """The box's shorter side in pixels."""
        return min(self.width, self.height)

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    def point(self, name: str) -> np.ndarray | None:
        """Landmark ``name`` as an (x, y) array, or None when this face has none."""
        if name not in self.landmark_names:
            return None
        return self.landmarks[self.landmark_names.index(name)]

    def landmark_dict(self, digits: int = 1) -> dict[str, list[float]]:
        return rounded_points(dict(zip(self.landmark_names, self.landmarks)), digits)

    def shifted(self, dx: float, dy: float) -> DetectedFace:
        """The same face with every coordinate moved by (dx, dy)."""
        offset = np.array([dx, dy])
        return DetectedFace(
            self.box + np.tile(offset, 2), self.landmarks + offset, self.landmark_names, self.score, self.detector
        )


# ---------------------------------------------------------------- input images


def image_to_rgb(image: ImageInput) -> np.ndarray:
    """Any input :func:`~spherefer.core.images.to_pil` reads (paths get their EXIF rotation
    applied; palette, 16-bit, RGBA and greyscale are flattened) as (H, W, 3) uint8 RGB.
    An array that already is (H, W, 3) uint8 comes back as it is (not copied)."""
    return to_rgb_array(image)


# ---------------------------------------------------------------- per-face results


@dataclass
class FaceRecord:
    """Everything :meth:`~spherefer.runtime.recognizer.Recognizer.analyze` knows about one face.

    ``crop`` is the aligned (S, S, 3) uint8 RGB face the model saw (or would have seen);
    ``issues`` lists failed quality checks, and ``prediction`` is None exactly when it is
    not empty; ``embedding`` is the crop's (D,) unit embedding when it was classified.

    In video (:meth:`~spherefer.runtime.recognizer.Recognizer.analyze_video`) ``track`` is the
    face's track id, and with temporal smoothing ``prediction`` is the smoothed result
    while ``raw_prediction`` keeps the frame's own one (otherwise it is None and the two
    are the same).
    """

    index: int
    face: DetectedFace
    crop: np.ndarray
    quality: dict[str, float | None]
    issues: list[str] = field(default_factory=list)
    prediction: Prediction | None = None
    embedding: np.ndarray | None = None
    track: int | None = None
    raw_prediction: Prediction | None = None

    @property
    def box(self) -> np.ndarray:
        return self.face.box

    @property
    def landmarks(self) -> dict[str, np.ndarray]:
        return dict(zip(self.face.landmark_names, self.face.landmarks))

    @property
    def accepted(self) -> bool:
        return not self.issues

    @property
    def label(self) -> str:
        """The class, ``unknown`` (classified, below threshold) or ``rejected`` (not classified)."""
        return self.prediction.label if self.prediction is not None else REJECTED

    @property
    def raw_label(self) -> str:
        """The frame's own label before temporal smoothing (:attr:`label` when not smoothed)."""
        return self.raw_prediction.label if self.raw_prediction is not None else self.label

    def to_dict(self, digits: int = 4) -> dict[str, Any]:
        """A JSON-ready summary (no crop, no embedding): the record fields of
        :func:`spherefer.core.labels.face_dict` -- face index, track id, box, landmarks,
        detector score, label, raw label, reason, cosine, unknown score, probabilities and quality."""
        return face_dict(
            self.index,
            self.track,
            self.face.box,
            self.landmarks,
            self.face.score,
            self.prediction,
            self.raw_prediction,
            self.issues,
            self.quality,
            digits,
        )


# ---------------------------------------------------------------- drawing

_COLORS = {"accepted": (40, 200, 60), UNKNOWN: (255, 170, 0), REJECTED: (230, 40, 40)}
_POINT_COLORS = {
    "right_eye": (0, 120, 255),
    "left_eye": (255, 0, 200),
    "nose_tip": (255, 230, 0),
    "mouth_center": (0, 230, 230),
    "right_ear": (150, 150, 255),
    "left_ear": (255, 150, 150),
}


@functools.lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def draw_faces(image: ImageInput, records: list[FaceRecord]) -> Image.Image:
    """An RGB copy of ``image`` with every face's box, landmarks and label + cosine
    (green: classified, orange: unknown, red: rejected, with the reason), led by
    ``#<track id>`` for tracked faces."""
    canvas = Image.fromarray(image_to_rgb(image).copy())  # never draw into the caller's array
    draw = ImageDraw.Draw(canvas)
    photo_line, photo_font = max(2, round(max(canvas.size) / 300)), max(12, round(max(canvas.size) / 40))
    for record in records:
        status = REJECTED if not record.accepted else (UNKNOWN if record.label == UNKNOWN else "accepted")
        color = _COLORS[status]
        x0, y0, x1, y1 = (float(v) for v in record.box)
        side = max(x1 - x0, y1 - y0)  # marks scale with the photo, but never hide a small face
        line = max(1, min(photo_line, round(side / 30)))
        font = _font(max(10, min(photo_font, round(side / 3))))
        draw.rectangle((x0, y0, x1, y1), outline=color, width=line)
        radius = max(1, min(line + 1, round(side / 25)))
        for name, (x, y) in record.landmarks.items():
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=_POINT_COLORS.get(name, color))
        if record.prediction is not None:
            text = f"{record.prediction.caption} {record.prediction.cosine:.2f}"
        else:
            text = f"{REJECTED}: {record.issues[0].split(':')[0]}" if record.issues else REJECTED
        if record.track is not None:
            text = f"#{record.track} {text}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tx, ty = x0, y0 - (bottom - top) - 2 * line
        if ty < 0:
            ty = y1 + line
        draw.rectangle((tx, ty, tx + right - left + 2 * line, ty + bottom - top + 2 * line), fill=color)
        draw.text((tx + line - left, ty + line - top), text, fill=(0, 0, 0), font=font)
    return canvas
