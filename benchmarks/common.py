"""Helpers shared by the benchmark scripts: test photos, letterboxing, repeated timing, model loading."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from skimage import data

import spherefer
from spherefer.face import image_to_rgb

SHARED_PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "photos"


def letterbox(rgb: np.ndarray, width: int = 640, height: int = 480) -> np.ndarray:
    """``rgb`` scaled to fit ``width`` x ``height`` and centred on a grey canvas."""
    scale = min(width / rgb.shape[1], height / rgb.shape[0])
    resized = cv2.resize(
        rgb,
        (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)),
        interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
    )
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


def _patches(
    image: np.ndarray, count: int, size: int, rng: np.random.Generator, avoid: list[np.ndarray] = ()
) -> list[np.ndarray]:
    """``count`` random square patches of a greyscale ``image`` (sides 1/8 to 1/2 of its short side)
    resized to ``size``, none overlapping a box of ``avoid``."""
    h, w = image.shape
    patches: list[np.ndarray] = []
    while len(patches) < count:
        side = int(rng.uniform(min(h, w) / 8, min(h, w) / 2))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        if any(x < b[2] and x + side > b[0] and y < b[3] and y + side > b[1] for b in avoid):
            continue
        patches.append(cv2.resize(image[y : y + side, x : x + side], (size, size), interpolation=cv2.INTER_AREA))
    return patches


def _grey(image: np.ndarray) -> np.ndarray:
    """uint8 greyscale of an RGB(A), greyscale or binary image."""
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    return cv2.cvtColor(image[..., :3], cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image.astype(np.uint8)


def non_face_crops(count: int = 300, size: int = 48, seed: int = 0) -> dict[str, np.ndarray]:
    """Greyscale uint8 (count, size, size) crops that are not faces, in two sets.

    ``textures``: synthetic noise, smoothed noise, gradients, stripes and flat fields, and
    patches of scikit-image's grass, gravel and brick photos; ``photo patches``: patches
    of scikit-image's face-free photos (coffee, cat, rocket, coins, moon, page, text, sky,
    horse, clock) and of the astronaut photo away from her face (BlazeFace's box).
    """
    rng = np.random.default_rng(seed)
    synthetic = []
    for k in range(count // 2):
        kind = k % 5
        if kind == 0:
            field = rng.uniform(0, 255, (size, size))
        elif kind == 1:
            field = cv2.GaussianBlur(rng.normal(0, 1, (size, size)), (0, 0), rng.uniform(1, 6))
        elif kind == 2:
            field = np.outer(np.linspace(0, 1, size), np.ones(size)) * rng.uniform(0, 1)
        elif kind == 3:
            field = np.sin(np.arange(size)[:, None] * np.pi / rng.uniform(2, 12) + rng.uniform(0, 6)) * np.ones(
                (1, size)
            )
        else:
            field = np.full((size, size), rng.uniform(0, 255))
        span = np.ptp(field)
        synthetic.append(np.clip((field - field.min()) / span * 255 if span > 0 else field, 0, 255).astype(np.uint8))
    surfaces = [_grey(getattr(data, name)()) for name in ("grass", "gravel", "brick")]
    textures = synthetic + [
        p
        for i, s in enumerate(surfaces)
        for p in _patches(s, (count - len(synthetic)) // 3 + (i < (count - len(synthetic)) % 3), size, rng)
    ]
    photos = [
        _grey(getattr(data, name)())
        for name in (
            "coffee",
            "chelsea",
            "rocket",
            "coins",
            "moon",
            "page",
            "text",
            "hubble_deep_field",
            "horse",
            "clock",
        )
    ]
    astronaut = data.astronaut()
    faces = [face.box for face in spherefer.detect_faces(astronaut)]
    per_photo = count // (len(photos) + 1)
    patches = [p for photo in photos for p in _patches(photo, per_photo, size, rng)]
    patches += _patches(_grey(astronaut), count - len(patches), size, rng, avoid=faces)
    return {"textures": np.stack(textures), "photo patches": np.stack(patches)}


def cpu_model() -> str:
    """The CPU's model name, as /proc/cpuinfo gives it (else what platform knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
