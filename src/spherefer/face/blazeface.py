"""MediaPipe BlazeFace on LiteRT: the ``blazeface`` and ``blazeface_full`` detectors, and
the landmark stage of ``yunet`` (:meth:`BlazeFaceDetector.look`).

The two model files ship in this package (``spherefer/face/models``: MediaPipe 0.10.21's
files, unmodified, Apache-2.0, see ``LICENSE.mediapipe`` there).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace

import cv2
import numpy as np

from spherefer.core.errors import InvalidInput
from spherefer.core.native import quiet_native_stderr
from spherefer.face.align import invert_similarity, warp_image
from spherefer.face.interface import DetectorUnavailable, detector_model_file
from spherefer.face.results import LANDMARK_NAMES, DetectedFace

__all__ = [
    "BlazeFaceSpec",
    "BLAZEFACE_SHORT_RANGE",
    "BLAZEFACE_FULL_RANGE",
    "BlazeFaceDetector",
    "anchor_centers",
    "box_iou",
    "overlaps_any",
    "weighted_nms",
]


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


BLAZEFACE_SHORT_RANGE = BlazeFaceSpec("face_detection_short_range.tflite", 128, (8, 16, 16, 16), 1.0, 896, 0.5)
BLAZEFACE_FULL_RANGE = BlazeFaceSpec("face_detection_full_range_sparse.tflite", 192, (4,), 0.0, 2304, 0.6)


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
        raise InvalidInput(f"{spec.model_file}: built {len(anchors)} anchors, the model has {spec.num_anchors}")
    return anchors


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one (4,) box (x0, y0, x1, y1) with each of (N, 4) ``boxes``."""
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    return inter / np.maximum(union, 1e-12)


def weighted_nms(
    boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou: float
) -> Iterator[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe's weighted non-maximum suppression: every box overlapping the best
    remaining one by more than ``iou`` joins its cluster; the cluster's box and keypoints
    are the score-weighted means, its score the best one."""
    order = np.argsort(-scores, kind="stable")
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    remaining: np.ndarray = np.arange(len(scores))
    while remaining.size:
        overlaps = box_iou(boxes[remaining[0]], boxes[remaining])
        cluster = remaining[overlaps > iou]
        weights = scores[cluster, None]
        total = weights.sum()
        yield (
            (boxes[cluster] * weights).sum(0) / total,
            (keypoints[cluster] * weights[:, :, None]).sum(0) / total,
            float(scores[cluster[0]]),
        )
        remaining = remaining[overlaps <= iou]


def overlaps_any(face: DetectedFace, faces: list[DetectedFace], iou: float = 0.5) -> bool:
    """Whether ``face``'s box overlaps one of ``faces``' boxes by more than ``iou``: two
    detections of one face."""
    return any(box_iou(face.box, other.box[None])[0] > iou for other in faces)


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
        self,
        spec: BlazeFaceSpec = BLAZEFACE_SHORT_RANGE,
        name: str = "blazeface",
        min_score: float | None = None,
        retry_padding: float = 0.25,
        refine_steps: int = 2,
        roi_scale: float = 2.0,
        num_threads: int = 1,
    ) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as err:  # a dependency, but say what to do if it went missing
            raise DetectorUnavailable(
                f"the BlazeFace detector needs LiteRT: pip install ai-edge-litert ({err})"
            ) from err
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
        for face in sorted((self.refine(rgb, face) for face in faces), key=lambda face: -(face.score or 0.0)):
            if not overlaps_any(face, refined):
                refined.append(face)
        return refined

    def refine(self, rgb: np.ndarray, face: DetectedFace, steps: int | None = None) -> DetectedFace:
        """The face after ``steps`` (default ``refine_steps``) looks in an upright view centred
        on it (see the class docstring), keeping its score; as it was if a look loses it."""
        current = face
        for _ in range(self.refine_steps if steps is None else steps):
            found = self.look(rgb, current)
            if found is None:
                break
            current = replace(found, score=face.score, detector=face.detector)
        return current

    def search(self, rgb: np.ndarray, known: list[DetectedFace]) -> tuple[list[DetectedFace], list[DetectedFace]]:
        """A full search of a video frame whose ``known`` faces are followed: (the known faces it sees
        again, the new faces it finds)."""
        faces = self.detect(rgb)
        seen = [face for face in known if overlaps_any(face, faces, iou=0.3)]
        return seen, [face for face in faces if not overlaps_any(face, known, iou=0.3)]

    def follow(self, rgb: np.ndarray, face: DetectedFace) -> DetectedFace | None:
        """``face`` found again in the next frame ``rgb`` by one look around where it was
        (:class:`~spherefer.face.follow.FaceFollower`); None when it is not there any more."""
        return self.look(rgb, face)

    def look(self, rgb: np.ndarray, face: DetectedFace) -> DetectedFace | None:
        """The face BlazeFace finds in an upright view centred on ``face`` (rotated so that its
        eyes are level, ``roi_scale`` times its box's side), in photo coordinates, with the
        score it has in that view; None when no face is found near the view's centre or
        ``face`` has no eyes to level."""
        size = self.spec.input_size
        right, left = face.point("right_eye"), face.point("left_eye")
        side = self.roi_scale * max(face.width, face.height)
        if right is None or left is None or side <= 0:
            return None
        angle = math.atan2(left[1] - right[1], left[0] - right[0])
        linear = side / size * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        middle = np.array([(face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2])
        to_image = np.hstack([linear, (middle - linear @ np.full(2, size / 2))[:, None]])  # view -> photo
        view = warp_image(
            rgb, invert_similarity(to_image), size, cv2.BORDER_CONSTANT, max_factor=2
        )  # light anti-aliasing
        found = self._detect_once(view)
        offsets = [np.hypot((f.box[0] + f.box[2] - size) / 2, (f.box[1] + f.box[3] - size) / 2) for f in found]
        if not found or min(offsets) > size / 4:  # lost it, or only another face is in view
            return None
        best = found[int(np.argmin(offsets))]
        view_middle = np.array([(best.box[0] + best.box[2]) / 2, (best.box[1] + best.box[3]) / 2])
        middle = linear @ view_middle + to_image[:, 2]
        half = np.array([best.width, best.height]) * (side / size) / 2
        points = best.landmarks @ linear.T + to_image[:, 2]
        return DetectedFace(
            np.concatenate([middle - half, middle + half]), points, best.landmark_names, best.score, self.name
        )

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
