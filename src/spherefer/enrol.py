"""Teaching the bank a new expression, and moving an existing one: the rules that
``spherefer classes add/update`` and the service's ``POST``/``PATCH /v1/classes`` share.

- **Name** (:meth:`~spherefer.centers.CenterBank.check_new_name`): the class-name rule
  of :mod:`spherefer.labels`, and not taken; checked before any image is read.
- **Images** (:func:`check_image_count`): at least :data:`MIN_IMAGES` samples, so that
  the class's spread can be measured.
- **Shots** (:func:`draw_shots`, :func:`enrolment_files`): enrol from ``shots`` images
  drawn from the given ones; the same images, ``shots`` and ``seed`` always give the
  same draw.
- **Threshold** (:func:`new_class_threshold`): an explicit threshold when one is given;
  otherwise, with at least three samples, one estimated from their spread
  (:func:`estimate_threshold`: leave-one-out cosines, 10th percentile, never stricter
  than the bank's global threshold); otherwise none (the global one applies).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .centers import CenterBank, angle_degrees, as_embeddings
from .images import collect_image_files

__all__ = [
    "MIN_IMAGES",
    "THRESHOLD_QUANTILE",
    "Enrolled",
    "estimate_threshold",
    "new_class_threshold",
    "check_image_count",
    "draw_shots",
    "enrolment_files",
    "enrol_class",
    "update_class",
]

MIN_IMAGES = 3
"""Fewest samples a class is enrolled from by default (the threshold estimate needs three)."""
THRESHOLD_QUANTILE = 0.1
"""The share of a new class's own samples its estimated threshold may reject."""

T = TypeVar("T")


def estimate_threshold(embeddings: Tensor | np.ndarray, ceiling: float, quantile: float = THRESHOLD_QUANTILE) -> float:
    """A new class's own acceptance threshold from its samples' spread.

    Each sample's cosine to the normalised mean of the *other* samples (leave-one-out)
    estimates how far genuine faces of the class fall from its center; the threshold is
    their ``quantile``, capped at ``ceiling`` (the bank's global threshold) so that a
    tight class is never stricter than the rest. Needs at least three samples.
    """
    x = F.normalize(as_embeddings(embeddings, None, "estimating a threshold"), dim=1)
    if x.shape[0] < 3:
        raise ValueError(f"estimating a threshold needs at least 3 samples, got {x.shape[0]}")
    total = x.sum(dim=0, keepdim=True)
    others = F.normalize(total - x, dim=1)
    loo = (x * others).sum(dim=1)
    return float(min(ceiling, torch.quantile(loo, quantile)))


def new_class_threshold(embeddings: Tensor | np.ndarray, ceiling: float, threshold: float | None = None) -> float | None:
    """The threshold a class enrolled from ``embeddings`` gets: ``threshold`` when given,
    else :func:`estimate_threshold` (capped at ``ceiling``) from three or more samples,
    else None (the bank's global threshold applies)."""
    if threshold is not None:
        return float(threshold)
    if len(embeddings) >= 3:
        return estimate_threshold(embeddings, ceiling=ceiling)
    return None


def check_image_count(count: int, minimum: int = MIN_IMAGES, hint: str | None = None) -> None:
    """``ValueError`` unless a class is enrolled from at least ``minimum`` images (``hint`` says how to change it)."""
    if count < minimum:
        raise ValueError(f"enrolling a class needs at least {minimum} images, got {count}" + (f" ({hint})" if hint else ""))


def draw_shots(items: Sequence[T], shots: int | None, seed: int = 0) -> list[T]:
    """``shots`` of ``items`` drawn at random with ``seed``, in sorted order (all of them when ``shots`` is None)."""
    if shots is None:
        return list(items)
    if shots < 1:
        raise ValueError(f"the number of shots must be at least 1, got {shots}")
    if shots > len(items):
        raise ValueError(f"cannot draw {shots} shots: only {len(items)} images were given")
    return sorted(random.Random(seed).sample(list(items), shots))  # type: ignore[type-var]


def enrolment_files(
    inputs: Iterable[str | os.PathLike[str]], shots: int | None = None, seed: int = 0, minimum: int = MIN_IMAGES, hint: str | None = None,
) -> list[Path]:
    """The image files a class is enrolled from: files and folders (searched recursively),
    ``shots`` of them drawn by :func:`draw_shots`, at least ``minimum``."""
    files = draw_shots(collect_image_files(inputs), shots, seed)
    check_image_count(len(files), minimum, hint)
    return files


@dataclass(frozen=True)
class Enrolled:
    """A class just enrolled: its name, how many samples made it, its own threshold (None: the global one) and center."""

    name: str
    count: int
    threshold: float | None
    center: Tensor


def enrol_class(bank: CenterBank, name: str, embeddings: Tensor | np.ndarray, threshold: float | None = None) -> Enrolled:
    """Add class ``name`` to ``bank`` from sample ``embeddings``, with the threshold of
    :func:`new_class_threshold` (``threshold`` overrides the estimate)."""
    bank.check_new_name(name)
    x = as_embeddings(embeddings, bank.embedding_size, f"adding class {name!r}")
    own = new_class_threshold(x, ceiling=bank.threshold, threshold=threshold)
    center = bank.add(name, x, threshold=own)
    return Enrolled(name, int(x.shape[0]), own, center)


def update_class(bank: CenterBank, name: str, embeddings: Tensor | np.ndarray, momentum: float = 0.9) -> float:
    """Move class ``name``'s center towards new instances (:meth:`CenterBank.update`); the angle it moved, in degrees."""
    before = bank.center(name)
    return angle_degrees(before, bank.update(name, embeddings, momentum=momentum))
