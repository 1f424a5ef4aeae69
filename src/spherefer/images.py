"""Image input: reading files and arrays of any common mode into PIL images, finding image files."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Iterable, Union

import numpy as np
from PIL import Image, ImageOps

__all__ = ["ImageInput", "IMAGE_EXTENSIONS", "to_pil", "flatten_to_mode", "collect_image_files", "example_photo"]

ImageInput = Union[Image.Image, np.ndarray, str, os.PathLike]
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")


def example_photo() -> Path:
    """The bundled example photo: NASA's public-domain portrait of astronaut Eileen Collins
    (scikit-image's ``data.astronaut()``, 512x512, re-encoded as JPEG by
    ``tools/make_example_photo.py``), one frontal smiling face."""
    return Path(str(resources.files("spherefer") / "examples" / "astronaut.jpg"))


def collect_image_files(paths: Iterable[str | os.PathLike[str]], extensions: Iterable[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """Files as given, plus files with one of ``extensions`` (lower case, default: images)
    found recursively in folders (sorted); a missing path raises."""
    suffixes = tuple(extensions)
    files: list[Path] = []
    for item in paths:
        path = Path(item).expanduser()
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    return files


def to_pil(image: ImageInput) -> Image.Image:
    """A PIL image from a PIL image, a path, or a (H, W[, C]) uint8/uint16/float array."""
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"image not found: {path}")
        try:
            with Image.open(path) as opened:
                opened.load()
                return ImageOps.exif_transpose(opened)
        except (OSError, SyntaxError, ValueError) as err:
            raise ValueError(f"cannot read image {path}: {err}") from err
    if isinstance(image, np.ndarray):
        array = image
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)) or min(array.shape[:2]) < 1:
            raise ValueError(f"an image array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got shape {array.shape}")
        if array.dtype == np.uint16:
            array = (array / 257.0).round().astype(np.uint8)
        elif np.issubdtype(array.dtype, np.floating):
            if not np.isfinite(array).all():
                raise ValueError("image array contains NaN or infinite values")
            array = (np.clip(array, 0.0, 1.0) * 255.0).round().astype(np.uint8)
        elif array.dtype != np.uint8:
            raise ValueError(f"image arrays must be uint8, uint16 or float in [0, 1], got {array.dtype}")
        return Image.fromarray(np.ascontiguousarray(array))
    raise TypeError(f"expected a PIL image, a numpy array or a path, got {type(image).__name__}")


def flatten_to_mode(image: Image.Image, mode: str) -> Image.Image:
    """Convert any PIL mode (palette, 16-bit, RGBA, ...) to 'L' or 'RGB', alpha composited on black."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if array.max() > 255 else 255.0
        image = Image.fromarray((np.clip(array / peak, 0, 1) * 255).round().astype(np.uint8))
    if image.mode in ("P", "PA", "LA", "RGBA"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, image)
    return image.convert(mode)
