"""What every face detector shares: the :class:`FaceDetector` interface, the
:class:`DetectorUnavailable` error and :func:`detector_model_file`, the lookup of the
detector model files shipped in ``spherefer/face/models``."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Protocol

import numpy as np

from spherefer.face.results import DetectedFace

__all__ = ["DetectorUnavailable", "FaceDetector", "detector_model_file"]


class DetectorUnavailable(RuntimeError):
    """A detector's model files or runtime are missing; the message says what to install."""


class FaceDetector(Protocol):
    """What a detector in :data:`~spherefer.face.detect.DETECTORS` provides."""

    name: str

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        """Faces in an (H, W, 3) uint8 RGB image, in any order."""
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
