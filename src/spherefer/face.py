"""Faces in whole photos: detection, landmark alignment to the training framing, quality checks.

The network is trained on FER2013/FER+ crops: 48x48 greyscale faces framed the way
those datasets framed them. A photo goes through three steps before it reaches it:

1. **Detection** (:func:`detect_faces`) by a registered detector (:data:`DETECTORS`):

   * ``blazeface`` (default): MediaPipe BlazeFace short-range, a 128x128 SSD with six
     keypoints per face, run with LiteRT (``ai-edge-litert``), each face then re-detected
     in an upright view centred on it for accurate landmarks. Made for faces that fill a
     good part of the picture (portraits, selfies, webcams); faces smaller than about a
     sixth of the image's long side are often missed.
   * ``blazeface_full``: MediaPipe BlazeFace full-range (192x192), for smaller faces
     further from the camera; weaker on large or occluded faces.
   * ``haar``: OpenCV's frontal-face Haar cascade, eyes from the eye cascade inside the
     upper face box. A fallback without the MediaPipe files: it misses turned, tilted
     and occluded faces, gives no confidence score (1.0) and often no eyes, in which
     case the face is aligned from its box alone (no rotation).

   The BlazeFace model files are read from the ``mediapipe`` wheel, which is installed
   without its dependencies (``pip install --no-deps mediapipe==0.10.21``; its declared
   dependencies conflict with spherefer's) and is never imported -- only located.

2. **Alignment** (:func:`align_face`): a similarity transform (rotation, uniform scale,
   shift; weighted least squares in closed form) takes the face's eyes, nose tip and
   mouth centre onto :data:`TEMPLATE`, their median positions in FER+ training crops,
   so a photo's face is framed like the faces the model learnt from.

3. **Quality checks** (:func:`assess_quality`): a face that is too small, too blurred
   or too sideways is reported with the reason instead of being classified.

Coordinates are continuous pixel coordinates: pixel ``(i, j)`` covers ``[j, j + 1) x
[i, i + 1)``, so the image spans ``[0, W] x [0, H]`` and pixel centres sit at ``+0.5``.
Landmark names follow the subject: ``right_eye`` is the subject's right eye, on the
image's left for a frontal face.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .centers import NO_FACE, REJECTED, UNKNOWN
from .images import ImageInput, flatten_to_mode, to_pil

if TYPE_CHECKING:
    from .centers import Prediction

__all__ = [
    "LANDMARK_NAMES",
    "TEMPLATE",
    "TEMPLATE_WEIGHTS",
    "BOX_TEMPLATES",
    "MEDIAPIPE_VERSION",
    "MEDIAPIPE_INSTALL",
    "REJECTED",
    "NO_FACE",
    "DetectorUnavailable",
    "DetectedFace",
    "FaceDetector",
    "BlazeFaceSpec",
    "BLAZEFACE_SHORT_RANGE",
    "BLAZEFACE_FULL_RANGE",
    "BlazeFaceDetector",
    "HaarDetector",
    "mediapipe_file",
    "anchor_centers",
    "weighted_nms",
    "warp_image",
    "invert_similarity",
    "DETECTORS",
    "register_detector",
    "get_detector",
    "image_to_rgb",
    "detect_faces",
    "similarity_transform",
    "alignment_matrix",
    "align_face",
    "QualityConfig",
    "SHARPNESS_SIZE",
    "sharpness",
    "yaw_ratio",
    "assess_quality",
    "FaceRecord",
    "draw_faces",
]

LANDMARK_NAMES: tuple[str, ...] = ("right_eye", "left_eye", "nose_tip", "mouth_center", "right_ear", "left_ear")
"""Every landmark name a detector may report, in BlazeFace's keypoint order."""


MEDIAPIPE_VERSION = "0.10.21"
MEDIAPIPE_INSTALL = f"pip install --no-deps mediapipe=={MEDIAPIPE_VERSION}"

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


class DetectorUnavailable(RuntimeError):
    """A detector's model files or runtime are missing; the message says what to install."""


# ---------------------------------------------------------------- detected faces


@dataclass
class DetectedFace:
    """One face found by a detector, in pixel coordinates of the image it was found in.

    ``box`` is (x0, y0, x1, y1), float, possibly reaching past the image border;
    ``landmarks`` is (K, 2) x, y with ``landmark_names[k]`` naming row k (a subset of
    :data:`LANDMARK_NAMES`, empty when the detector found no landmarks); ``score`` is the
    detector's confidence in [0, 1].
    """

    box: np.ndarray
    landmarks: np.ndarray
    landmark_names: tuple[str, ...]
    score: float
    detector: str

    def __post_init__(self) -> None:
        self.box = np.asarray(self.box, dtype=np.float64).reshape(4)
        self.landmarks = np.asarray(self.landmarks, dtype=np.float64).reshape(-1, 2)
        self.landmark_names = tuple(self.landmark_names)
        self.score = float(self.score)
        if len(self.landmark_names) != len(self.landmarks):
            raise ValueError(f"{len(self.landmarks)} landmarks but {len(self.landmark_names)} names")
        unknown = set(self.landmark_names) - set(LANDMARK_NAMES)
        if unknown:
            raise ValueError(f"unknown landmark names {sorted(unknown)}; known: {LANDMARK_NAMES}")

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
        return {name: [round(float(x), digits), round(float(y), digits)] for name, (x, y) in zip(self.landmark_names, self.landmarks)}

    def shifted(self, dx: float, dy: float) -> "DetectedFace":
        """The same face with every coordinate moved by (dx, dy)."""
        offset = np.array([dx, dy])
        return DetectedFace(self.box + np.tile(offset, 2), self.landmarks + offset, self.landmark_names, self.score, self.detector)


class FaceDetector(Protocol):
    """What a detector in :data:`DETECTORS` provides."""

    name: str

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        """Faces in an (H, W, 3) uint8 RGB image, in any order."""
        ...


# ---------------------------------------------------------------- geometry


def warp_image(rgb: np.ndarray, matrix: np.ndarray, size: int, border: int = cv2.BORDER_REPLICATE, max_factor: int = 8) -> np.ndarray:
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
    out = cv2.warpAffine(rgb, scaled, (size * factor, size * factor), flags=cv2.INTER_LINEAR, borderMode=border, borderValue=(0, 0, 0))
    if factor > 1:
        out = cv2.resize(out, (size, size), interpolation=cv2.INTER_AREA)
    return out


def invert_similarity(matrix: np.ndarray) -> np.ndarray:
    """The inverse of a (2, 3) affine map."""
    linear = np.linalg.inv(matrix[:, :2])
    return np.hstack([linear, -(linear @ matrix[:, 2])[:, None]])


# ---------------------------------------------------------------- BlazeFace (MediaPipe models on LiteRT)


@dataclass(frozen=True)
class BlazeFaceSpec:
    """One BlazeFace model and the decoding settings of MediaPipe 0.10.21's own graph
    (``FaceDetectionShortRange`` / ``FaceDetectionFullRange`` options over the generic
    ``FaceDetection`` subgraph: SSD anchors with a fixed size, box and keypoint
    offsets scaled by the input size, sigmoid of clipped logits, weighted NMS)."""

    model_file: str  # relative to the mediapipe package folder
    input_size: int
    strides: tuple[int, ...]
    interpolated_scale_aspect_ratio: float
    num_anchors: int
    min_score: float
    anchor_offset: float = 0.5
    aspect_ratios: tuple[float, ...] = (1.0,)
    score_clip: float = 100.0
    nms_iou: float = 0.3


BLAZEFACE_SHORT_RANGE = BlazeFaceSpec(
    "modules/face_detection/face_detection_short_range.tflite", 128, (8, 16, 16, 16), 1.0, 896, 0.5
)
BLAZEFACE_FULL_RANGE = BlazeFaceSpec(
    "modules/face_detection/face_detection_full_range_sparse.tflite", 192, (4,), 0.0, 2304, 0.6
)


def mediapipe_file(relative: str) -> Path:
    """A file inside the installed ``mediapipe`` package, found without importing it."""
    spec = importlib.util.find_spec("mediapipe")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise DetectorUnavailable(
            f"the BlazeFace detector needs MediaPipe's model files: run `{MEDIAPIPE_INSTALL}` "
            "(--no-deps: only the model files are used), or pass --detector haar"
        )
    path = Path(locations[0]) / relative
    if not path.is_file():
        raise DetectorUnavailable(f"{path} is missing from the installed mediapipe; reinstall it with `{MEDIAPIPE_INSTALL}`")
    return path


def anchor_centers(spec: BlazeFaceSpec) -> np.ndarray:
    """(N, 2) normalised anchor centres in the model's output order.

    MediaPipe's SsdAnchorsCalculator with ``fixed_anchor_size``: every anchor is 1 x 1,
    so only the count per cell matters (one per aspect ratio plus the interpolated one,
    for every layer sharing a stride).
    """
    per_layer = len(spec.aspect_ratios) + (1 if spec.interpolated_scale_aspect_ratio > 0 else 0)
    groups = []
    layer = 0
    while layer < len(spec.strides):
        last = layer
        while last < len(spec.strides) and spec.strides[last] == spec.strides[layer]:
            last += 1
        cells = math.ceil(spec.input_size / spec.strides[layer])
        ticks = (np.arange(cells) + spec.anchor_offset) / cells
        yy, xx = np.meshgrid(ticks, ticks, indexing="ij")
        groups.append(np.repeat(np.stack([xx.ravel(), yy.ravel()], axis=1), (last - layer) * per_layer, axis=0))
        layer = last
    anchors = np.concatenate(groups).astype(np.float32)
    if len(anchors) != spec.num_anchors:
        raise ValueError(f"{spec.model_file}: built {len(anchors)} anchors, the model has {spec.num_anchors}")
    return anchors


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    return inter / np.maximum(union, 1e-12)


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou: float) -> Iterator[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe's weighted non-maximum suppression: every box overlapping the best
    remaining one by more than ``iou`` joins its cluster; the cluster's box and keypoints
    are the score-weighted means, its score the best one."""
    order = np.argsort(-scores, kind="stable")
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    remaining = np.arange(len(scores))
    while remaining.size:
        overlaps = _iou(boxes[remaining[0]], boxes[remaining])
        cluster = remaining[overlaps > iou]
        weights = scores[cluster, None]
        total = weights.sum()
        yield (boxes[cluster] * weights).sum(0) / total, (keypoints[cluster] * weights[:, :, None]).sum(0) / total, float(scores[cluster[0]])
        remaining = remaining[overlaps <= iou]


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence C-level writes to fd 2 (LiteRT's 'INFO: Created TensorFlow Lite XNNPACK
    delegate' line) for the duration of the block; Python exceptions are unaffected."""
    try:
        fd = sys.__stderr__.fileno() if sys.__stderr__ is not None else 2
        saved = os.dup(fd)
    except (OSError, ValueError):
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


class BlazeFaceDetector:
    """MediaPipe BlazeFace on LiteRT; six keypoints per face (:data:`LANDMARK_NAMES`).

    The image is letterboxed (aspect kept, centred, black border) to the model's square
    input. When nothing is found, the image is searched again with ``retry_padding``
    (a fraction of its long side) of black border on every side: the model misses faces
    that fill the whole frame, such as tight 48x48 dataset crops, and finds them once
    they are framed with some margin.

    Each face is then re-detected ``refine_steps`` times in an upright view centred on it
    (rotated so that its eyes are level, ``roi_scale`` times the box's side): BlazeFace's
    keypoints lag behind a tilted head (on a face rolled 25 degrees they come out nearly
    level) and are coarse for faces that are small in the photo; in the upright, zoomed
    view they are accurate. The box comes from that view too (its centre and size, not
    rotated); the score stays the first detection's. Two detections that end up on the
    same face are merged, keeping the better-scored one.
    """

    def __init__(
        self, spec: BlazeFaceSpec = BLAZEFACE_SHORT_RANGE, name: str = "blazeface", min_score: float | None = None,
        retry_padding: float = 0.25, refine_steps: int = 2, roi_scale: float = 2.0, num_threads: int = 1,
    ) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as err:  # a dependency, but say what to do if it went missing
            raise DetectorUnavailable(f"the BlazeFace detector needs LiteRT: pip install ai-edge-litert ({err})") from err
        self.name = name
        self.spec = spec
        self.min_score = spec.min_score if min_score is None else float(min_score)
        self.retry_padding = retry_padding
        self.refine_steps = refine_steps
        self.roi_scale = roi_scale
        model_path = mediapipe_file(spec.model_file)
        with _quiet_native_stderr():
            self._interpreter = Interpreter(model_path=str(model_path), num_threads=num_threads)
            self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        outputs = self._interpreter.get_output_details()
        self._regressors = next(o["index"] for o in outputs if o["shape"][-1] == 16)
        self._classificators = next(o["index"] for o in outputs if o["shape"][-1] == 1)
        self._anchors = anchor_centers(spec)
        self._lock = threading.Lock()

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        faces = self._detect_once(rgb)
        if not faces and self.retry_padding > 0:
            pad = max(1, round(self.retry_padding * max(rgb.shape[:2])))
            padded = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
            faces = [face.shifted(-pad, -pad) for face in self._detect_once(padded)]
        refined: list[DetectedFace] = []
        for face in sorted((self._refine(rgb, face) for face in faces), key=lambda face: -face.score):
            if all(_iou(face.box, other.box[None])[0] <= 0.5 for other in refined):
                refined.append(face)
        return refined

    def _refine(self, rgb: np.ndarray, face: DetectedFace) -> DetectedFace:
        """The face re-detected in an upright view centred on it (see the class docstring)."""
        size = self.spec.input_size
        current = face
        for _ in range(self.refine_steps):
            right, left = current.point("right_eye"), current.point("left_eye")
            side = self.roi_scale * max(current.width, current.height)
            if right is None or left is None or side <= 0:
                break
            angle = math.atan2(left[1] - right[1], left[0] - right[0])
            linear = side / size * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
            middle = np.array([(current.box[0] + current.box[2]) / 2, (current.box[1] + current.box[3]) / 2])
            to_image = np.hstack([linear, (middle - linear @ np.full(2, size / 2))[:, None]])  # view -> photo
            view = warp_image(rgb, invert_similarity(to_image), size, cv2.BORDER_CONSTANT, max_factor=2)  # light anti-aliasing
            found = self._detect_once(view)
            offsets = [np.hypot((f.box[0] + f.box[2] - size) / 2, (f.box[1] + f.box[3] - size) / 2) for f in found]
            if not found or min(offsets) > size / 4:  # lost it, or only another face is in view
                break
            best = found[int(np.argmin(offsets))]
            view_middle = np.array([(best.box[0] + best.box[2]) / 2, (best.box[1] + best.box[3]) / 2])
            middle = linear @ view_middle + to_image[:, 2]
            half = np.array([best.width, best.height]) * (side / size) / 2
            points = best.landmarks @ linear.T + to_image[:, 2]
            current = DetectedFace(np.concatenate([middle - half, middle + half]), points, best.landmark_names, face.score, self.name)
        return current

    def _detect_once(self, rgb: np.ndarray) -> list[DetectedFace]:
        size = self.spec.input_size
        height, width = rgb.shape[:2]
        scale = size / max(height, width)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        resized = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
        canvas = np.zeros((size, size, 3), np.uint8)
        canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized
        tensor = (canvas.astype(np.float32) / 127.5 - 1.0)[None]
        with self._lock:
            self._interpreter.set_tensor(self._input, tensor)
            self._interpreter.invoke()
            regression = self._interpreter.get_tensor(self._regressors)[0].astype(np.float64)
            logits = self._interpreter.get_tensor(self._classificators)[0, :, 0].astype(np.float64)
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -self.spec.score_clip, self.spec.score_clip)))
        keep = scores >= self.min_score
        if not keep.any():
            return []
        regression, anchors, scores = regression[keep] / size, self._anchors[keep].astype(np.float64), scores[keep]
        centers = regression[:, 0:2] + anchors
        half = regression[:, 2:4] / 2
        boxes = np.concatenate([centers - half, centers + half], axis=1)
        keypoints = regression[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :]
        faces = []
        for box, points, score in weighted_nms(boxes, keypoints, scores, self.spec.nms_iou):
            # normalised letterbox coordinates -> pixels of the original image
            box = (box.reshape(2, 2) * size - (pad_x, pad_y)) / scale
            points = (points * size - (pad_x, pad_y)) / scale
            faces.append(DetectedFace(box.ravel(), points, LANDMARK_NAMES, score, self.name))
        return faces


# ---------------------------------------------------------------- Haar cascades (OpenCV fallback)


class HaarDetector:
    """OpenCV's Viola-Jones frontal-face cascade; eyes from the eye cascade when exactly
    one plausible eye is found in each half of the face box's upper part.

    A fallback that needs no MediaPipe files. It is clearly worse than BlazeFace: it
    misses turned (beyond ~20 degrees), tilted and partly covered faces, it has no
    confidence score (every face gets 1.0) and no nose or mouth, and when the eyes are
    not found the face is aligned from its box alone, without correcting head roll.
    """

    def __init__(self, name: str = "haar", min_size: int = 20, scale_factor: float = 1.1, min_neighbors: int = 5) -> None:
        root = Path(cv2.data.haarcascades)
        self.name = name
        self.min_size = min_size
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self._face = cv2.CascadeClassifier(str(root / "haarcascade_frontalface_default.xml"))
        self._eye = cv2.CascadeClassifier(str(root / "haarcascade_eye.xml"))
        if self._face.empty() or self._eye.empty():
            raise DetectorUnavailable(f"OpenCV's Haar cascades are missing from {root}; reinstall opencv-python-headless")

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        grey = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        boxes = self._face.detectMultiScale(grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(self.min_size, self.min_size))
        faces = []
        for x, y, w, h in np.asarray(boxes, dtype=np.int64).reshape(-1, 4):
            eyes = self._eye_pair(grey, x, y, w, h)
            names = ("right_eye", "left_eye") if eyes is not None else ()
            faces.append(DetectedFace((x, y, x + w, y + h), eyes if eyes is not None else np.empty((0, 2)), names, 1.0, self.name))
        return faces

    def _eye_pair(self, grey: np.ndarray, x: int, y: int, w: int, h: int) -> np.ndarray | None:
        """(2, 2) eye centres (subject's right = image left first), or None."""
        upper = grey[y : y + int(h * 0.6), x : x + w]
        low, high = max(4, w // 10), max(5, w // 3)
        found = self._eye.detectMultiScale(upper, scaleFactor=1.1, minNeighbors=5, minSize=(low, low), maxSize=(high, high))
        centres = [(x + ex + ew / 2, y + ey + eh / 2) for ex, ey, ew, eh in np.asarray(found).reshape(-1, 4)]
        image_left = [c for c in centres if c[0] < x + w / 2]
        image_right = [c for c in centres if c[0] >= x + w / 2]
        if len(image_left) != 1 or len(image_right) != 1:
            return None
        pair = np.array([image_left[0], image_right[0]], dtype=np.float64)
        dx, dy = pair[1] - pair[0]
        if not (0.25 * w <= dx <= 0.7 * w and abs(dy) <= 0.25 * w):
            return None
        return pair


# ---------------------------------------------------------------- the detector registry

DETECTORS: dict[str, Callable[[], FaceDetector]] = {
    "blazeface": lambda: BlazeFaceDetector(BLAZEFACE_SHORT_RANGE, "blazeface"),
    "blazeface_full": lambda: BlazeFaceDetector(BLAZEFACE_FULL_RANGE, "blazeface_full"),
    "haar": lambda: HaarDetector("haar"),
}
"""Detector name -> factory. The first :func:`get_detector` call of a name builds it."""

_instances: dict[str, FaceDetector] = {}
_instances_lock = threading.Lock()


def register_detector(name: str, factory: Callable[[], FaceDetector]) -> None:
    """Make ``factory()`` available as ``detector=name`` (replacing a detector of that name)."""
    with _instances_lock:
        DETECTORS[name] = factory
        _instances.pop(name, None)


def get_detector(detector: str | FaceDetector = "blazeface") -> FaceDetector:
    """The detector registered as ``detector`` (built once, then reused), or ``detector`` itself."""
    if not isinstance(detector, str):
        return detector
    if detector not in DETECTORS:
        raise ValueError(f"unknown face detector {detector!r}; choose one of {sorted(DETECTORS)}")
    with _instances_lock:
        if detector not in _instances:
            _instances[detector] = DETECTORS[detector]()
        return _instances[detector]


def image_to_rgb(image: ImageInput) -> np.ndarray:
    """Any input :func:`~spherefer.images.to_pil` reads (paths get their EXIF rotation
    applied; palette, 16-bit, RGBA and greyscale are flattened) as (H, W, 3) uint8 RGB.
    An array that already is (H, W, 3) uint8 comes back as it is (not copied)."""
    if isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
        return np.ascontiguousarray(image)
    return np.ascontiguousarray(np.asarray(flatten_to_mode(to_pil(image), "RGB"), dtype=np.uint8))


def detect_faces(image: ImageInput, detector: str | FaceDetector = "blazeface") -> list[DetectedFace]:
    """Faces in a photo, largest box first."""
    rgb = image_to_rgb(image)
    faces = get_detector(detector).detect(rgb)
    return sorted(faces, key=lambda face: -face.area)


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
        raise ValueError(f"a similarity transform needs two or more matching points, got {len(source)} and {len(target)}")
    w = w / w.sum()
    s = source[:, 0] + 1j * source[:, 1]
    d = target[:, 0] + 1j * target[:, 1]
    s_mean, d_mean = (w * s).sum(), (w * d).sum()
    s, d = s - s_mean, d - d_mean
    spread = (w * np.abs(s) ** 2).sum()
    if spread < 1e-12:
        raise ValueError("the landmarks coincide; no alignment is possible")
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
        source = np.stack([face.point(name) for name in names])
        target = np.array([TEMPLATE[name] for name in names]) * size
        return similarity_transform(source, target, np.array([TEMPLATE_WEIGHTS[name] for name in names]))
    x0, y0, x1, y1 = BOX_TEMPLATES.get(face.detector, BOX_TEMPLATES["haar"])
    if face.width <= 0 or face.height <= 0:
        raise ValueError(f"a face box must have a positive size, got {face.box.tolist()}")
    scale = size * math.sqrt((x1 - x0) * (y1 - y0) / (face.width * face.height))
    cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
    return np.array([[scale, 0.0, size * (x0 + x1) / 2 - scale * cx], [0.0, scale, size * (y0 + y1) / 2 - scale * cy]])


def _size_of(size_or_config: int | Any) -> int:
    size = getattr(size_or_config, "input_size", size_or_config)
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"an aligned crop size must be a positive integer, got {size!r}")
    return int(size)


def align_face(image: ImageInput, face: DetectedFace, size_or_config: int | Any = 48) -> np.ndarray:
    """The face cut out, rotated and scaled to the training framing: (size, size, 3) uint8 RGB.

    ``size_or_config`` is the crop side or a :class:`~spherefer.models.ModelConfig` (its
    ``input_size``). Parts of the crop outside the photo repeat its border pixels. A face
    much larger than the crop is warped at an intermediate size and then area-averaged
    down, so small crops of large faces are not aliased.
    """
    size = _size_of(size_or_config)
    return warp_image(image_to_rgb(image), alignment_matrix(face, size), size, cv2.BORDER_REPLICATE)


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


def assess_quality(face: DetectedFace, image: ImageInput, config: QualityConfig = QualityConfig()) -> tuple[dict[str, float | None], list[str]]:
    """Measurements and failed checks of one face of ``image`` (the photo it was found in).

    Returns ``{"size", "sharpness", "yaw"}`` and a list of short reasons such as
    ``"too small: 18 px < 24 px"``; an empty list means usable. Sharpness is measured on the
    face aligned at :data:`SHARPNESS_SIZE` px, whatever the model's input size.
    """
    rgb = image_to_rgb(image)
    measured: dict[str, float | None] = {
        "size": round(face.size, 1),
        "sharpness": round(sharpness(align_face(rgb, face, SHARPNESS_SIZE)), 4),
        "yaw": yaw_ratio(face),
    }
    if measured["yaw"] is not None:
        measured["yaw"] = round(measured["yaw"], 3)
    issues = []
    if config.min_face is not None and face.size < config.min_face:
        issues.append(f"too small: {face.size:.0f} px < {config.min_face:g} px")
    if config.min_sharpness is not None and measured["sharpness"] < config.min_sharpness:
        issues.append(f"too blurred: sharpness {measured['sharpness']:.3f} < {config.min_sharpness:g}")
    if config.max_yaw is not None and measured["yaw"] is not None and abs(measured["yaw"]) > config.max_yaw:
        issues.append(f"too sideways: yaw {measured['yaw']:+.2f} beyond {config.max_yaw:g}")
    return measured, issues


# ---------------------------------------------------------------- per-face results


@dataclass
class FaceRecord:
    """Everything :meth:`~spherefer.recognizer.Recognizer.analyze` knows about one face.

    ``crop`` is the aligned (S, S, 3) uint8 RGB face the model saw (or would have seen);
    ``issues`` lists failed quality checks, and ``prediction`` is None exactly when it is
    not empty; ``embedding`` is the crop's (D,) unit embedding when it was classified.

    In video (:meth:`~spherefer.recognizer.Recognizer.analyze_video`) ``track`` is the
    face's track id, and with temporal smoothing ``prediction`` is the smoothed result
    while ``raw_prediction`` keeps the frame's own one (otherwise it is None and the two
    are the same).
    """

    index: int
    face: DetectedFace
    crop: np.ndarray
    quality: dict[str, float | None]
    issues: list[str] = field(default_factory=list)
    prediction: "Prediction | None" = None
    embedding: np.ndarray | None = None
    track: int | None = None
    raw_prediction: "Prediction | None" = None

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
        """A JSON-ready summary (no crop, no embedding): face index, track id, box,
        landmarks, detector score, label, raw label, reason, cosine, probabilities and
        quality measurements."""
        prediction = self.prediction
        return {
            "face": self.index,
            "track": self.track,
            "box": [round(float(v), 1) for v in self.face.box],
            "landmarks": self.face.landmark_dict(),
            "detector_score": round(self.face.score, digits),
            "label": self.label,
            "raw_label": self.raw_label,
            "reason": "; ".join(self.issues) or None,
            "cosine": None if prediction is None else round(prediction.score, digits),
            "probabilities": None if prediction is None else {k: round(v, digits) for k, v in prediction.probabilities.items()},
            "quality": self.quality,
        }


# ---------------------------------------------------------------- drawing

_COLORS = {"accepted": (40, 200, 60), UNKNOWN: (255, 170, 0), REJECTED: (230, 40, 40)}
_POINT_COLORS = {
    "right_eye": (0, 120, 255), "left_eye": (255, 0, 200), "nose_tip": (255, 230, 0),
    "mouth_center": (0, 230, 230), "right_ear": (150, 150, 255), "left_ear": (255, 150, 150),
}


def draw_faces(image: ImageInput, records: list[FaceRecord]) -> Image.Image:
    """An RGB copy of ``image`` with every face's box, landmarks and label + cosine
    (green: classified, orange: unknown, red: rejected, with the reason), led by
    ``#<track id>`` for tracked faces."""
    canvas = Image.fromarray(image_to_rgb(image).copy())  # never draw into the caller's array
    draw = ImageDraw.Draw(canvas)
    line = max(2, round(max(canvas.size) / 300))
    font = ImageFont.load_default(size=max(12, round(max(canvas.size) / 40)))
    for record in records:
        status = REJECTED if not record.accepted else (UNKNOWN if record.label == UNKNOWN else "accepted")
        color = _COLORS[status]
        x0, y0, x1, y1 = (float(v) for v in record.box)
        draw.rectangle((x0, y0, x1, y1), outline=color, width=line)
        radius = line + 1
        for name, (x, y) in record.landmarks.items():
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=_POINT_COLORS.get(name, color))
        if record.prediction is not None:
            text = f"{record.label} {record.prediction.score:.2f}"
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
