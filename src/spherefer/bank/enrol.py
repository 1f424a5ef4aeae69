"""Teaching the bank a new expression, and moving an existing one: the rules that
``spherefer classes add/update`` and the service's ``POST``/``PATCH /v1/classes`` share.

- **Name** (:meth:`~spherefer.bank.centers.CenterBank.check_new_name`): the class-name rule
  of :mod:`spherefer.core.labels`, and not taken; checked before any image is read.
- **Images** (:func:`~spherefer.runtime.samples.enrolment_embeddings`): photos are searched for faces like
  :meth:`~spherefer.runtime.recognizer.Recognizer.analyze` does (detected, aligned, quality
  checked) and give their largest accepted face (:func:`~spherefer.runtime.samples.photo_embedding`); photos with
  none, and files that cannot be read, are reported and skipped. Aligned face crops
  (``aligned=True``) are used as given.
- **Image count** (:func:`check_image_count`): at least :data:`MIN_IMAGES` samples, so
  that the class's spread can be measured.
- **Shots** (:func:`draw_shots`, :func:`enrolment_files`): enrol from ``shots`` images
  drawn from the given ones; the same images, ``shots`` and ``seed`` always give the
  same draw.
- **Threshold** (:func:`new_class_threshold`): an explicit threshold when one is given;
  otherwise the global one for a bank on the relative Mahalanobis score (the class's
  mean, from its samples, is what it is scored against); for a bank on the best cosine,
  with at least three samples, one estimated from their spread
  (:func:`estimate_threshold`: leave-one-out cosines, 10th percentile, never stricter
  than the bank's global threshold); otherwise none (the global one applies).
- **Harm** (:mod:`spherefer.bank.harm`): before a class is added, the share of each existing
  class's faces it would take is estimated from the model's face density and the bank's class
  means; above :data:`~spherefer.bank.harm.HARM_LIMIT` of any class the enrolment is refused
  (:class:`HarmfulEnrolment`) unless the caller accepts the harm.
- **Updates** (:func:`update_class`): once per call: the normalised mean of the new
  images moves the center by one moving-average step, the old center keeping weight
  ``momentum`` however many images there are (``per="instance"``: one step per image,
  the old center keeping ``momentum ** N``; :func:`old_center_weight`).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from spherefer.bank.centers import CenterBank
from spherefer.bank.harm import HarmReport, estimate_harm
from spherefer.core.errors import InvalidInput, Unusable
from spherefer.core.images import collect_image_files
from spherefer.core.labels import COSINE_SCORE, counted
from spherefer.core.sphere import angle_degrees, as_embeddings

if TYPE_CHECKING:
    from spherefer.bank.unknown import FaceDensity

__all__ = [
    "MIN_IMAGES",
    "THRESHOLD_QUANTILE",
    "Enrolled",
    "HarmfulEnrolment",
    "check_image_count",
    "draw_shots",
    "enrol_class",
    "enrolment_files",
    "estimate_threshold",
    "new_class_threshold",
    "old_center_weight",
    "update_class",
]

MIN_IMAGES = 3
"""Fewest samples a class is enrolled from by default (the threshold estimate needs three)."""
THRESHOLD_QUANTILE = 0.1
"""The share of a new class's own samples its estimated threshold may reject."""


T = TypeVar("T")


def estimate_threshold(embeddings: np.ndarray, ceiling: float, quantile: float = THRESHOLD_QUANTILE) -> float:
    """A new class's own acceptance threshold from its samples' spread.

    Each sample's cosine to the normalised mean of the *other* samples (leave-one-out)
    estimates how far genuine faces of the class fall from its center; the threshold is
    their ``quantile``, capped at ``ceiling`` (the bank's global threshold) so that a
    tight class is never stricter than the rest. Needs at least three samples.
    """
    x = as_embeddings(embeddings, None, "estimating a threshold").astype(np.float64)
    if x.shape[0] < 3:
        raise InvalidInput(f"estimating a threshold needs at least 3 samples, got {x.shape[0]}")
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    others = x.sum(axis=0, keepdims=True) - x
    others /= np.maximum(np.linalg.norm(others, axis=1, keepdims=True), 1e-12)
    loo = (x * others).sum(axis=1)
    return float(min(ceiling, np.quantile(loo, quantile)))


def new_class_threshold(
    embeddings: np.ndarray, ceiling: float, threshold: float | None = None, score: str = COSINE_SCORE
) -> float | None:
    """The threshold a class enrolled from ``embeddings`` gets: ``threshold`` when given,
    else, for a bank scored by the best cosine, :func:`estimate_threshold` (capped at
    ``ceiling``) from three or more samples, else None (the bank's global threshold
    applies: the relative Mahalanobis score measures a new class against its own mean
    and spread, so one threshold serves every class)."""
    if threshold is not None:
        return float(threshold)
    if len(embeddings) >= 3 and score == COSINE_SCORE:
        return estimate_threshold(embeddings, ceiling=ceiling)
    return None


def check_image_count(count: int, minimum: int = MIN_IMAGES, hint: str | None = None) -> None:
    """``ValueError`` unless a class is enrolled from at least ``minimum`` images (``hint`` says how to change it)."""
    if count < minimum:
        raise InvalidInput(
            f"enrolling a class needs at least {counted(minimum, 'image')}, got {count}"
            + (f" ({hint})" if hint else "")
        )


def draw_shots(items: Sequence[T], shots: int | None, seed: int = 0) -> list[T]:
    """``shots`` of ``items`` drawn at random with ``seed``, in sorted order (all of them when ``shots`` is None)."""
    if shots is None:
        return list(items)
    if shots < 1:
        raise InvalidInput(f"the number of shots must be at least 1, got {shots}")
    if shots > len(items):
        raise InvalidInput(f"cannot draw {shots} shots: only {counted(len(items), 'image')} given")
    return sorted(random.Random(seed).sample(list(items), shots))  # type: ignore[type-var]


def enrolment_files(
    inputs: Iterable[str | os.PathLike[str]],
    shots: int | None = None,
    seed: int = 0,
    minimum: int = MIN_IMAGES,
    hint: str | None = None,
) -> list[Path]:
    """The image files a class is enrolled from: files and folders (searched recursively),
    ``shots`` of them drawn by :func:`draw_shots`, at least ``minimum``."""
    files = draw_shots(collect_image_files(inputs), shots, seed)
    check_image_count(len(files), minimum, hint)
    return files


@dataclass(frozen=True)
class Enrolled:
    """A class just enrolled: its name, how many samples made it, its own threshold (None: the
    global one), its center, and what it was estimated to take from the other classes (None
    when the model has no face density to estimate it with)."""

    name: str
    count: int
    threshold: float | None
    center: np.ndarray
    harm: HarmReport | None = None


class HarmfulEnrolment(Unusable):
    """An enrolment refused because the new class would take too much of an existing one."""

    def __init__(self, harm: HarmReport) -> None:
        worst, share = harm.worst  # type: ignore[misc]
        super().__init__(
            f"enrolling {harm.new_class!r} refused: it {harm.summary()}, more than the {harm.limit:.0%} allowed "
            f"of any class ({worst}: {share:.0%}). Enrol from more, or more varied, photos of the expression, or "
            "adapt the bank to these photos' camera first (spherefer adapt); to enrol it anyway, accept the harm "
            "(CLI: --accept-harm; HTTP: accept_harm=true)"
        )
        self.harm = harm


def enrol_class(
    bank: CenterBank,
    name: str,
    embeddings: np.ndarray,
    threshold: float | None = None,
    density: FaceDensity | None = None,
    accept_harm: bool = False,
) -> Enrolled:
    """Add class ``name`` to ``bank`` from sample ``embeddings``, with the threshold of
    :func:`new_class_threshold` (``threshold`` overrides the estimate). With the model's
    ``density`` (and a bank with class means) the harm to the other classes is estimated first
    (:func:`~spherefer.bank.harm.estimate_harm`); :class:`HarmfulEnrolment` refuses the class, leaving
    the bank unchanged, when it exceeds the limit and ``accept_harm`` is false."""
    name = bank.check_new_name(name)
    x = as_embeddings(embeddings, bank.embedding_size, f"adding class {name!r}")
    own = new_class_threshold(x, ceiling=bank.threshold, threshold=threshold, score=bank.score)
    harm = None
    if density is not None and bank.means is not None and len(bank):
        harm = estimate_harm(bank, density, lambda trial: trial.add(name, x, threshold=own), name)
        if harm.harmful and not accept_harm:
            raise HarmfulEnrolment(harm)
    center = bank.add(name, x, threshold=own)
    return Enrolled(name, int(x.shape[0]), own, center, harm)


def old_center_weight(momentum: float, count: int, per: str = "call") -> float:
    """The weight the old center keeps in an update from ``count`` instances
    (:meth:`CenterBank.update`): ``momentum`` per call, ``momentum ** count`` per instance;
    the new instances share the rest."""
    if per not in ("call", "instance"):
        raise InvalidInput(f"per must be 'call' or 'instance', got {per!r}")
    return float(momentum) if per == "call" else float(momentum) ** count


def update_class(
    bank: CenterBank, name: str, embeddings: np.ndarray, momentum: float = 0.9, per: str = "call"
) -> float:
    """Move class ``name``'s center towards new instances (:meth:`CenterBank.update`; once
    per call by default, see :func:`old_center_weight`); the angle it moved, in degrees."""
    before = bank.center(name)
    return angle_degrees(before, bank.update(name, embeddings, momentum=momentum, per=per))
