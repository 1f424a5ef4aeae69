"""What a request to ``spherefer serve`` may carry, and how an uploaded image is read.

:class:`ServeSettings` holds one server's limits and key; :func:`decode_upload` reads one
uploaded image in memory against them; :class:`UserError` is a request the client can fix
(answered with its status and detail, never a 500).
"""

import ctypes
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import UploadFile
from PIL import Image

from spherefer.bank.enrol import MIN_IMAGES
from spherefer.core.errors import InvalidInput
from spherefer.core.images import MAX_PIXELS, MAX_SIDE, ImageTooLarge, decode_problem, flatten_to_mode, read_image
from spherefer.core.labels import shown

__all__ = [
    "BANK_FILE_BYTES",
    "FORM_ALLOWANCE",
    "IMAGE_FORMATS",
    "ServeSettings",
    "UserError",
    "WorkSlots",
    "decode_upload",
]

BANK_FILE_BYTES = 8 * 2**20
"""The largest bank file ``PUT /v1/bank`` takes (about 2,000 classes of a 512-d model)."""
FORM_ALLOWANCE = 2**16
"""Bytes a request body may take beyond its images (multipart headers, form fields);
the whole body of other requests."""


@dataclass
class ServeSettings:
    """Limits and secrets of one server."""

    api_key: str
    max_upload_bytes: int = 10 * 2**20
    max_pixels: int = MAX_PIXELS
    max_side: int = MAX_SIDE
    max_aspect: float = 20.0
    max_images: int = 50
    min_images: int = MIN_IMAGES
    private_profiles: bool = False  # reading a profile (its classes, history, bank, predictions) needs the API key too
    max_busy: int = 1  # requests of one worker that decode and analyse images at once; more wait, then get 503
    busy_wait: float = 2.0  # seconds a request waits for one of them

    @property
    def max_request_bytes(self) -> int:
        """The largest body of an enrolment or update: every allowed image at the size limit, plus the form fields."""
        return self.max_upload_bytes * self.max_images + 2**20

    @property
    def max_predict_bytes(self) -> int:
        """The largest body of ``/v1/predict``: one image at the size limit, plus the form fields."""
        return self.max_upload_bytes + FORM_ALLOWANCE


IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF", "MPO")
"""What uploads may be; other formats Pillow knows (EPS, AVIF, ...) are refused."""
Image.init()  # register every plugin, so that Image.open(formats=IMAGE_FORMATS) finds them


class UserError(Exception):
    """A request the client can fix: answered with ``status``, ``detail`` and any ``extra`` fields (and
    response ``headers``), never a 500."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers, self.extra = status, detail, headers, extra


def _release_memory() -> None:
    """Give freed heap memory back to the system (glibc keeps a decoded 25-megapixel photo's pages otherwise)."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


class WorkSlots:
    """At most ``size`` requests of one worker decode and analyse images at once: a 25-megapixel photo
    takes about 0.8 GB while it is decoded and searched (benchmarks/bench_serve_memory.py). Others wait
    up to ``wait`` seconds for a slot, then get 503 with ``Retry-After``; freed memory goes back to the
    system after each request."""

    def __init__(self, size: int, wait: float) -> None:
        if size < 1:
            raise InvalidInput(f"max_busy must be at least 1, got {size}")
        self._free = threading.BoundedSemaphore(size)
        self.wait = wait

    @contextmanager
    def hold(self) -> Iterator[None]:
        if not self._free.acquire(timeout=self.wait):
            raise UserError(
                503, "the server is busy with other images: try again in a moment", headers={"Retry-After": "2"}
            )
        try:
            yield
        finally:
            self._free.release()
            _release_memory()


def decode_upload(upload: UploadFile, settings: ServeSettings) -> np.ndarray:
    """An uploaded image as an upright RGB array (:func:`~spherefer.core.images.read_image`, the
    library's one decoder), checked against the size, pixel and shape limits."""
    data = upload.file.read(settings.max_upload_bytes + 1)
    name = shown(upload.filename or "upload")
    if len(data) > settings.max_upload_bytes:
        raise UserError(413, f"{name} is larger than the {settings.max_upload_bytes} byte limit")
    if not data:
        raise UserError(400, f"{name} is empty")
    try:
        image = read_image(
            data, name, formats=IMAGE_FORMATS, max_pixels=settings.max_pixels, max_side=settings.max_side
        )
        width, height = image.size
        if max(width, height) > settings.max_aspect * min(width, height):
            raise UserError(
                400, f"{name} is {width}x{height} pixels: not a photo (sides more than {settings.max_aspect:g}:1)"
            )
        return np.asarray(flatten_to_mode(image, "RGB"))
    except ImageTooLarge as err:
        raise UserError(413, str(err)) from err
    except ValueError as err:  # broken, truncated or foreign files: the client's to fix
        problem = decode_problem(err.__cause__) if isinstance(err.__cause__, Exception) else str(err)
        raise UserError(400, f"{name} is not a readable {'/'.join(IMAGE_FORMATS[:6])} image: {problem}") from err
