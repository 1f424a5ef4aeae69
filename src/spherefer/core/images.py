"""Image input: the one place spherefer decodes images and checks image arrays.

:func:`read_image` decodes a path, encoded bytes or a PIL image into a loaded, upright
PIL image: the EXIF orientation of a photo is applied, declared sizes are checked
before any pixel is decoded, and every failure -- an undecodable file, a decompression
bomb, a size over a limit -- is a ``ValueError`` naming the image (:class:`ImageTooLarge`
for sizes). :func:`to_pil` adds numpy arrays, :func:`to_rgb_array` gives (H, W, 3) uint8
RGB, and :func:`as_image_list` tells one image from a batch. The command line, the
Python API and the HTTP service all read images through these functions.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from spherefer.core.errors import InvalidInput, TooLarge

__all__ = [
    "ImageInput",
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "MAX_SIDE",
    "ImageTooLarge",
    "read_image",
    "to_pil",
    "to_rgb_array",
    "as_image_list",
    "flatten_to_mode",
    "collect_image_files",
    "example_photo",
]

ImageInput = Image.Image | np.ndarray | str | os.PathLike | bytes
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")

MAX_PIXELS = 25_000_000
"""The most pixels an image may declare (a 25-megapixel photo), checked from its header before decoding,
in the library, the command line and the HTTP service alike."""
MAX_SIDE = 10_000
"""The longest side an image may declare, in pixels."""

FLOAT_TOLERANCE = 1.0 / 510.0
"""How far outside [0, 1] a float image array may stray (half an 8-bit grey level: rounding noise) before it is
refused."""

_ARRAY_LAYOUTS = "(H, W), (H, W, 1), (H, W, 3) or (H, W, 4) with H, W >= 1"


class ImageTooLarge(TooLarge):
    """An image declaring more pixels than a limit allows, or than Pillow decodes safely (a decompression bomb)."""


def example_photo() -> Path:
    """The bundled example photo: NASA's public-domain portrait of astronaut Eileen Collins
    (scikit-image's ``data.astronaut()``, 512x512, re-encoded as JPEG by
    ``tools/make_example_photo.py``), one frontal smiling face."""
    return Path(str(resources.files("spherefer") / "examples" / "astronaut.jpg"))


def collect_image_files(
    paths: Iterable[str | os.PathLike[str]], extensions: Iterable[str] = IMAGE_EXTENSIONS
) -> list[Path]:
    """Paths as given, plus files with one of ``extensions`` (lower case, default: images)
    found recursively in folders (sorted); a missing path raises. A path given that is not a
    regular file (a FIFO, a device) is kept: reading it fails like an unreadable file, so it
    is reported and skipped with the others going on."""
    suffixes = tuple(extensions)
    files: list[Path] = []
    for item in paths:
        path = Path(item).expanduser()
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
        elif path.exists():
            files.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    return files


def _check_size(size: tuple[int, int], name: str, max_pixels: int | None, max_side: int | None) -> None:
    width, height = size
    if min(width, height) < 1:
        raise InvalidInput(f"{name} is {width}x{height} pixels: an image needs at least one pixel")
    if (max_pixels is not None and width * height > max_pixels) or (
        max_side is not None and max(width, height) > max_side
    ):
        limits = ", ".join(
            part
            for part in (
                f"{max_pixels} pixels" if max_pixels is not None else "",
                f"{max_side} on a side" if max_side is not None else "",
            )
            if part
        )
        raise ImageTooLarge(f"{name} has {width}x{height} pixels, more than the limit ({limits})")


def _upright(image: Image.Image) -> Image.Image:
    """``image`` decoded, turned by its EXIF orientation (a new image; the tag is removed)."""
    image.load()
    return ImageOps.exif_transpose(image)


def _open(stream: io.BytesIO | Path, formats: list[str] | tuple[str, ...] | None, quiet: bool) -> Image.Image:
    """``Image.open`` (header only); ``quiet``: without Pillow's warning of a size far above its own limit,
    for a caller whose limit is lower and refuses that size with an error of its own."""
    if not quiet:
        return Image.open(stream, formats=formats)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(stream, formats=formats)


def read_image(
    source: str | os.PathLike[str] | bytes | bytearray | memoryview | Image.Image,
    name: str | None = None,
    *,
    formats: Sequence[str] | None = None,
    max_pixels: int | None = MAX_PIXELS,
    max_side: int | None = MAX_SIDE,
) -> Image.Image:
    """``source`` -- a path, an encoded image's bytes, or a PIL image -- as a loaded, upright PIL image.

    Photos are turned upright by their EXIF orientation: files and bytes always, a PIL
    image when it came straight from ``Image.open`` (its ``format`` is set); an image made
    or changed in memory is taken as it is. ``formats`` limits the accepted file formats
    (Pillow names, e.g. ``("JPEG", "PNG")``); ``max_pixels`` and ``max_side`` limit the
    declared size (default :data:`MAX_PIXELS`, :data:`MAX_SIDE`; None: no limit but Pillow's),
    checked before any pixel is decoded. ``name`` names the image in
    errors (default: the path, or "image bytes").

    Raises ``FileNotFoundError`` for a missing path, :class:`ImageTooLarge` (a
    ``ValueError``) for an image over a limit or a decompression bomb (more pixels than
    Pillow decodes safely, ``Image.MAX_IMAGE_PIXELS``), and ``ValueError`` for anything
    that cannot be decoded.
    """
    if isinstance(source, Image.Image):
        name = name or f"<{source.format or 'in-memory'} image {source.width}x{source.height}>"
        _check_size(source.size, name, max_pixels, max_side)
        if source.format is None:
            return source
        try:
            return _upright(source)
        except Exception as err:  # a lazily opened image fails on load: truncated, broken
            raise InvalidInput(f"cannot read image {name}: {decode_problem(err)}") from err
    if isinstance(source, (bytes, bytearray, memoryview)):
        name = name or "image bytes"
        if not len(source):
            raise InvalidInput(f"{name} is empty")
        stream: io.BytesIO | Path = io.BytesIO(bytes(source))
    elif isinstance(source, (str, os.PathLike)):
        stream = Path(source)
        name = name or str(stream)
        if not stream.is_file():  # never opened: reading a FIFO waits forever, a device never ends
            if stream.exists():
                raise InvalidInput(f"{name} is not a regular file (a folder, FIFO, device or socket)")
            raise FileNotFoundError(f"image not found: {stream}")
    else:
        raise TypeError(f"expected a path, image bytes or a PIL image, got {type(source).__name__}")
    try:
        with _open(stream, None if formats is None else list(formats), quiet=max_pixels is not None) as opened:
            _check_size(opened.size, name, max_pixels, max_side)
            return _upright(opened)
    except ImageTooLarge:
        raise
    except Image.DecompressionBombError as err:
        raise ImageTooLarge(f"{name} is too large to decode safely: {err}") from err
    except Exception as err:  # Pillow raises many kinds (OSError, SyntaxError, struct.error, ...) for broken files
        raise InvalidInput(f"cannot read image {name}: {decode_problem(err)}") from err


def decode_problem(err: Exception) -> str:
    """What kept Pillow from decoding an image, in words (Pillow's own message where it has a useful one)."""
    if isinstance(err, Image.UnidentifiedImageError):
        return "not an image in a format spherefer reads"
    message = str(err)
    return message if message and " object at 0x" not in message else "the file is damaged or not an image"


def _check_array(array: np.ndarray) -> np.ndarray:
    """An image array in a layout spherefer reads, (H, W, 1) squeezed to (H, W), or a ``ValueError`` naming the
    problem."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 3 and array.shape[2] == 2:
        raise InvalidInput(
            f"an image array must be {_ARRAY_LAYOUTS}; got shape {array.shape}: two channels "
            "(grey and alpha?) are not an image layout spherefer reads; drop or composite the second channel"
        )
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise InvalidInput(f"an image array must be {_ARRAY_LAYOUTS}; got shape {array.shape}")
    if min(array.shape[:2]) < 1:
        raise InvalidInput(f"an image array must be {_ARRAY_LAYOUTS}; got shape {array.shape}, which has no pixels")
    return array


def _array_to_uint8(array: np.ndarray) -> np.ndarray:
    """uint8 pixels of a checked array: uint16 scaled by 1/257, floats in [0, 1] by 255; other types refused."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16:
        return (array / 257.0).round().astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise InvalidInput("image array contains NaN or infinite values")
        low, high = float(array.min()), float(array.max())
        if low < -FLOAT_TOLERANCE or high > 1.0 + FLOAT_TOLERANCE:
            raise InvalidInput(
                f"float image arrays must lie in [0, 1]; got values from {low:.4g} to {high:.4g} "
                f"({'divide 0-255 values by 255' if high <= 255.0 and low >= 0 else 'rescale them'})"
            )
        return (np.clip(array, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    raise InvalidInput(f"image arrays must be uint8, uint16 or float in [0, 1], got {array.dtype}")


def to_pil(image: ImageInput) -> Image.Image:
    """A PIL image from a PIL image, a path, encoded bytes, or a (H, W[, C]) uint8/uint16/float array.

    Paths, bytes and PIL images go through :func:`read_image` (EXIF orientation applied);
    arrays must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), at least 1x1, and uint8,
    uint16 or float in [0, 1]; anything else is a ``ValueError`` naming the problem.
    """
    if isinstance(image, (Image.Image, str, os.PathLike, bytes, bytearray, memoryview)):
        return read_image(image)
    if isinstance(image, np.ndarray):
        return Image.fromarray(np.ascontiguousarray(_array_to_uint8(_check_array(image))))
    raise TypeError(f"expected a PIL image, a numpy array, image bytes or a path, got {type(image).__name__}")


def to_rgb_array(image: ImageInput) -> np.ndarray:
    """Any input :func:`to_pil` reads as (H, W, 3) uint8 RGB (palette, 16-bit, RGBA and grey
    flattened). An array that already is (H, W, 3) uint8 comes back as it is (not copied)."""
    if isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
        return np.ascontiguousarray(_check_array(image))
    return np.ascontiguousarray(np.asarray(flatten_to_mode(to_pil(image), "RGB"), dtype=np.uint8))


def as_image_list(images: ImageInput | Iterable[ImageInput]) -> list[ImageInput]:
    """One image as a list of one; a batch (a list, or an (N, H, W) / (N, H, W, C) array) as its items.

    An (H, W) or (H, W, 1|3|4) array is one image; an (H, W, 2) array is refused rather
    than read as H images of W x 2 pixels.
    """
    if isinstance(images, (Image.Image, str, os.PathLike, bytes, bytearray, memoryview)):
        return [images]  # type: ignore[list-item]  # bytes-like: read as image bytes
    if isinstance(images, np.ndarray):
        if images.ndim == 2 or (images.ndim == 3 and images.shape[-1] in (1, 2, 3, 4)):
            _check_array(images)
            return [images]
        if images.ndim not in (3, 4):
            raise InvalidInput(
                f"an image array must be {_ARRAY_LAYOUTS}, or a batch (N, H, W) or (N, H, W, C) of them; got shape "
                f"{images.shape}"
            )
    return list(images)


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
