"""The face detector registry: :data:`DETECTORS`, :func:`get_detector`, :func:`detect_faces`.

* ``yunet`` (:data:`DEFAULT_DETECTOR`): YuNet candidates at every size, each confirmed by
  BlazeFace, which also places the landmarks (:mod:`~spherefer.face.yunet`).
* ``blazeface``: MediaPipe BlazeFace short-range alone (:mod:`~spherefer.face.blazeface`),
  the fastest, for faces that fill a good part of the picture (webcams, selfies).
* ``blazeface_full``: MediaPipe BlazeFace full-range (192x192).
* ``haar``: OpenCV's frontal-face Haar cascade (:mod:`~spherefer.face.haar`).

docs/RESULTS.md §8 compares them (``benchmarks/bench_detection.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from spherefer.core.errors import InvalidInput
from spherefer.core.images import ImageInput
from spherefer.face.blazeface import BLAZEFACE_FULL_RANGE, BLAZEFACE_SHORT_RANGE, BlazeFaceDetector
from spherefer.face.haar import HaarDetector
from spherefer.face.interface import FaceDetector
from spherefer.face.results import DetectedFace, image_to_rgb
from spherefer.face.yunet import YuNetDetector

__all__ = ["DEFAULT_DETECTOR", "DETECTORS", "register_detector", "check_detector", "get_detector", "detect_faces"]

DEFAULT_DETECTOR = "yunet"
"""The detector used wherever none is named (library, CLI and HTTP)."""

DETECTORS: dict[str, Callable[[], FaceDetector]] = {
    "yunet": lambda: YuNetDetector("yunet"),
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


def check_detector(name: str) -> str:
    """``name`` if a detector is registered under it; otherwise ``ValueError`` listing the choices."""
    if name not in DETECTORS:
        raise InvalidInput(f"unknown face detector {name!r}; choose one of {sorted(DETECTORS)}")
    return name


def get_detector(detector: str | FaceDetector = DEFAULT_DETECTOR) -> FaceDetector:
    """The detector registered as ``detector`` (built once, then reused), or ``detector`` itself."""
    if not isinstance(detector, str):
        return detector
    check_detector(detector)
    with _instances_lock:
        if detector not in _instances:
            _instances[detector] = DETECTORS[detector]()
        return _instances[detector]


def detect_faces(image: ImageInput, detector: str | FaceDetector = DEFAULT_DETECTOR) -> list[DetectedFace]:
    """Faces in a photo, largest box first."""
    rgb = image_to_rgb(image)
    faces = get_detector(detector).detect(rgb)
    return sorted(faces, key=lambda face: -face.area)
