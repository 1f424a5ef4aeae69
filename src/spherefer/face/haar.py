"""OpenCV's Haar cascades: the ``haar`` detector, a fallback without model files of its own."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from spherefer.face.interface import DetectorUnavailable
from spherefer.face.results import DetectedFace

__all__ = ["HaarDetector"]


class HaarDetector:
    """OpenCV's Viola-Jones frontal-face cascade; eyes from the eye cascade when exactly
    one plausible eye is found in each half of the face box's upper part.

    A fallback that needs no MediaPipe files. It is clearly worse than BlazeFace: it
    misses turned (beyond ~20 degrees), tilted and partly covered faces, it has no
    confidence score (every face's is None: null in records) and no nose or mouth, and when the eyes are
    not found the face is aligned from its box alone, without correcting head roll.
    """

    def __init__(
        self, name: str = "haar", min_size: int = 20, scale_factor: float = 1.1, min_neighbors: int = 5
    ) -> None:
        root = Path(cv2.data.haarcascades)  # type: ignore[attr-defined]
        self.name = name
        self.min_size = min_size
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self._face = cv2.CascadeClassifier(str(root / "haarcascade_frontalface_default.xml"))
        self._eye = cv2.CascadeClassifier(str(root / "haarcascade_eye.xml"))
        if self._face.empty() or self._eye.empty():
            raise DetectorUnavailable(
                f"OpenCV's Haar cascades are missing from {root}; reinstall opencv-python-headless"
            )

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        grey = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        boxes = self._face.detectMultiScale(
            grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(self.min_size, self.min_size)
        )
        faces = []
        for x, y, w, h in np.asarray(boxes, dtype=np.int64).reshape(-1, 4):
            eyes = self._eye_pair(grey, x, y, w, h)
            names = ("right_eye", "left_eye") if eyes is not None else ()
            faces.append(
                DetectedFace(
                    np.array((x, y, x + w, y + h)),
                    eyes if eyes is not None else np.empty((0, 2)),
                    names,
                    None,
                    self.name,
                )
            )
        return faces

    def _eye_pair(self, grey: np.ndarray, x: int, y: int, w: int, h: int) -> np.ndarray | None:
        """(2, 2) eye centres (subject's right = image left first), or None."""
        upper = grey[y : y + int(h * 0.6), x : x + w]
        low, high = max(4, w // 10), max(5, w // 3)
        found = self._eye.detectMultiScale(
            upper, scaleFactor=1.1, minNeighbors=5, minSize=(low, low), maxSize=(high, high)
        )
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
