"""What every face detector shares: the :class:`FaceDetector` interface, the
:class:`DetectorUnavailable` error and :func:`detector_model_file`, the lookup of the
detector model files shipped in ``spherefer/face/models``."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Protocol

import numpy as np

from spherefer.face.results import DetectedFace

__all__ = ["DetectorUnavailable", "FaceDetector", "FollowingDetector", "detector_model_file"]


class DetectorUnavailable(RuntimeError):
    """A detector's model files or runtime are missing; the message says what to install."""


class FaceDetector(Protocol):
    """What a detector in :data:`~spherefer.face.detect.DETECTORS` provides."""

    name: str

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        """Faces in an (H, W, 3) uint8 RGB image, in any order."""
        ...


class FollowingDetector(FaceDetector, Protocol):
    """A detector that can also find a face again in the next frame of a video, near where it was,
    for much less than a full search (:class:`~spherefer.face.follow.FaceFollower` uses it)."""

    def follow(self, rgb: np.ndarray, face: DetectedFace) -> DetectedFace | None:
        """``face`` (found in the previous frame) in the frame ``rgb``, or None when it is gone."""
        ...

    def search(self, rgb: np.ndarray, known: list[DetectedFace]) -> tuple[list[DetectedFace], list[DetectedFace]]:
        """A full search of ``rgb`` whose ``known`` faces are followed: (the known faces it sees again,
        the new faces it finds)."""
        ...


def detector_model_file(name: str) -> Path:
    """A detector model file shipped in ``spherefer/face/models``; a missing one (a damaged
    install) raises :class:`DetectorUnavailable` saying so."""
    path = Path(str(resources.files("spherefer") / "face" / "models" / name))
    if not path.is_file():
        raise DetectorUnavailable(
            f"the detector model {path} is missing from the installed spherefer: reinstall it, or pass --detector haar"
        )
    return path
