"""Face detectors and their registry (:data:`DETECTORS`, :func:`get_detector`,
:func:`detect_faces`).

* ``blazeface`` (default): MediaPipe BlazeFace short-range on LiteRT, six keypoints per
  face, each face re-detected in an upright view centred on it for accurate landmarks.
* ``blazeface_full``: MediaPipe BlazeFace full-range (192x192), for smaller faces.
* ``haar``: OpenCV's frontal-face Haar cascade with the eye cascade, a fallback without
  the MediaPipe files.

See :mod:`spherefer.face` for when to use which. The two BlazeFace model files ship in
this package (``spherefer/face/models``: MediaPipe 0.10.21's files, unmodified,
Apache-2.0, see ``LICENSE.mediapipe`` there) and run in LiteRT (``ai-edge-litert``).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable, Iterator, Protocol

import cv2
import numpy as np

from ..images import ImageInput
from ..native import quiet_native_stderr
from .align import invert_similarity, warp_image
from .results import LANDMARK_NAMES, DetectedFace, image_to_rgb

__all__ = [
    "DetectorUnavailable",
    "FaceDetector",
    "BlazeFaceSpec",
    "BLAZEFACE_SHORT_RANGE",
    "BLAZEFACE_FULL_RANGE",
    "BlazeFaceDetector",
    "HaarDetector",
    "detector_model_file",
    "anchor_centers",
    "weighted_nms",
    "DETECTORS",
    "register_detector",
    "get_detector",
    "detect_faces",
]


class DetectorUnavailable(RuntimeError):
    """A detector's model files or runtime are missing; the message says what to install."""


# ---------------------------------------------------------------- the detector interface


class FaceDetector(Protocol):
    """What a detector in :data:`DETECTORS` provides."""

    name: str

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        """Faces in an (H, W, 3) uint8 RGB image, in any order."""
        ...


# ---------------------------------------------------------------- BlazeFace (MediaPipe models on LiteRT)


@dataclass(frozen=True)
class BlazeFaceSpec:
    """One BlazeFace model and the decoding settings of MediaPipe 0.10.21's own graph
    (``FaceDetectionShortRange`` / ``FaceDetectionFullRange`` options over the generic
    ``FaceDetection`` subgraph: SSD anchors with a fixed size, box and keypoint
    offsets scaled by the input size, sigmoid of clipped logits, weighted NMS)."""

    model_file: str  # a file name in spherefer/face/models
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
    "face_detection_short_range.tflite", 128, (8, 16, 16, 16), 1.0, 896, 0.5
)
BLAZEFACE_FULL_RANGE = BlazeFaceSpec(
    "face_detection_full_range_sparse.tflite", 192, (4,), 0.0, 2304, 0.6
)


def detector_model_file(name: str) -> Path:
    """A detector model file shipped in ``spherefer/face/models``; a missing one (a damaged
    install) raises :class:`DetectorUnavailable` saying so."""
    path = Path(str(resources.files("spherefer") / "face" / "models" / name))
    if not path.is_file():
        raise DetectorUnavailable(f"the detector model {path} is missing from the installed spherefer: reinstall it, or pass --detector haar")
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
        model_path = detector_model_file(spec.model_file)
        with quiet_native_stderr():
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
    confidence score (every face's is None: null in records) and no nose or mouth, and when the eyes are
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
            faces.append(DetectedFace((x, y, x + w, y + h), eyes if eyes is not None else np.empty((0, 2)), names, None, self.name))
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


def detect_faces(image: ImageInput, detector: str | FaceDetector = "blazeface") -> list[DetectedFace]:
    """Faces in a photo, largest box first."""
    rgb = image_to_rgb(image)
    faces = get_detector(detector).detect(rgb)
    return sorted(faces, key=lambda face: -face.area)
