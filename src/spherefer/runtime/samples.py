"""Photos and face crops to the samples that enrolment, updates and adaptation take: each photo's largest
accepted face, as :meth:`~spherefer.runtime.recognizer.Recognizer.analyze` finds it, or the whole crop."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from spherefer.core.errors import Unusable
from spherefer.core.images import ImageInput
from spherefer.face import DEFAULT_DETECTOR, FaceDetector, QualityConfig
from spherefer.runtime.recognizer import Recognizer

__all__ = ["NO_USABLE_FACE", "UNREADABLE", "NoUsableFace", "enrolment_embeddings", "photo_embedding"]

NO_USABLE_FACE = "no usable face found (none detected, or too small, blurred or sideways)"
"""Why a photo gave no enrolment sample."""


UNREADABLE = (ValueError, OSError, Image.DecompressionBombError)
"""Errors of one input that cannot be read (missing, corrupt, too large to decode; FileNotFoundError
is an OSError): enrolment and ``spherefer predict`` skip that input and go on with the others."""


class NoUsableFace(Unusable):
    """A photo without a face that passes the quality checks."""


def photo_embedding(
    recognizer: Recognizer,
    image: ImageInput,
    detector: str | FaceDetector = DEFAULT_DETECTOR,
    quality: QualityConfig | None = None,
) -> np.ndarray:
    """The (D,) embedding of a photo's largest face that passes the quality checks, found,
    aligned and embedded by :meth:`~spherefer.runtime.recognizer.Recognizer.analyze`;
    :class:`NoUsableFace` when there is none."""
    accepted = [record for record in recognizer.analyze(image, detector=detector, quality=quality) if record.accepted]
    if not accepted or accepted[0].embedding is None:
        raise NoUsableFace(NO_USABLE_FACE)
    return accepted[0].embedding


def enrolment_embeddings(
    recognizer: Recognizer,
    files: Iterable[str | os.PathLike[str]],
    aligned: bool = False,
    detector: str | FaceDetector = DEFAULT_DETECTOR,
    quality: QualityConfig | None = None,
    on_skip: Callable[[Path, str], None] | None = None,
) -> np.ndarray:
    """(N, D) enrolment samples of image ``files``, one per usable file, in order: the
    largest accepted face of each photo (:func:`photo_embedding`), or each whole image
    with ``aligned`` (face crops, used as given). A file that cannot be read (missing,
    corrupt, too large) or a photo without a usable face is skipped and passed to
    ``on_skip(path, reason)``; one bad file never stops the others."""
    samples: list[np.ndarray] = []
    crops: list[np.ndarray] = []
    for item in files:
        path = Path(item)
        try:
            if aligned:
                crops.append(recognizer.preprocess([path]))  # one decoded image in memory at a time
            else:
                samples.append(photo_embedding(recognizer, path, detector, quality))
        except UNREADABLE as err:
            if on_skip is not None:
                on_skip(path, str(err))
    if crops:
        return recognizer.embed_batch(np.concatenate(crops))
    return np.stack(samples) if samples else np.empty((0, recognizer.config.embedding_size), dtype=np.float32)
