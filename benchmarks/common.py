"""Helpers shared by the benchmark scripts: test photos, letterboxing, repeated timing, model loading."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from skimage import data

import spherefer
from spherefer.face import image_to_rgb

SHARED_PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "photos"


def letterbox(rgb: np.ndarray, width: int = 640, height: int = 480) -> np.ndarray:
    """``rgb`` scaled to fit ``width`` x ``height`` and centred on a grey canvas."""
    scale = min(width / rgb.shape[1], height / rgb.shape[0])
    resized = cv2.resize(rgb, (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    canvas = np.full((height, width, 3), 90, np.uint8)
    y, x = (height - resized.shape[0]) // 2, (width - resized.shape[1]) // 2
    canvas[y : y + resized.shape[0], x : x + resized.shape[1]] = resized
    return canvas


def test_photos() -> dict[str, np.ndarray]:
    """640x480 letterboxed photos: scikit-image's astronaut, plus ../shared/photos when present."""
    photos = {"astronaut": letterbox(data.astronaut())}
    for path in sorted(SHARED_PHOTOS.glob("*.jpg")):
        photos[path.stem] = letterbox(image_to_rgb(path))
    return photos


def timings(fn: Callable[[], object], repeats: int) -> list[float]:
    """Wall times in seconds of ``repeats`` calls of ``fn``, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def load_recognizer(name: str) -> tuple[spherefer.Recognizer, str]:
    """The named model and how to describe it in a report."""
    recognizer = spherefer.load_model(name)
    return recognizer, f"`{name}` (run {recognizer.card.get('run', '?')}, epoch {recognizer.card.get('epochs', '?')})"
