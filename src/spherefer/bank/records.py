"""One class of a center bank, and a trained class's original: what
:class:`~spherefer.bank.centers.CenterBank` holds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from spherefer.core.confusables import confusable_key
from spherefer.core.errors import Conflict, InvalidInput
from spherefer.core.labels import check_class_name, shown
from spherefer.core.sphere import as_array, normalize

ORIGINS = ("trained", "enrolled", "composed")


class ClassExists(Conflict):
    """A new class name that the bank already has."""


@dataclass
class ClassRecord:
    """One class of a bank: its unit ``center`` (D,) float32, its ``mean`` embedding (None in banks
    without means), where it came from (``origin``: trained, enrolled or composed), how many samples
    built it (``count``), how often it moved (``updates``) and its own ``threshold`` (None: the bank's)."""

    name: str
    center: np.ndarray
    origin: str = "trained"
    count: int = 0
    updates: int = 0
    threshold: float | None = None
    mean: np.ndarray | None = None


@dataclass(frozen=True)
class TrainedClass:
    """A trained class as training left it: what :meth:`CenterBank.reset` brings back."""

    center: np.ndarray
    mean: np.ndarray | None = None


def records_of(names: Sequence[str], centers: object, means: object | None) -> list[ClassRecord]:
    """The records of classes ``names`` with (C, D) ``centers`` (normalised here) and optional (C, D)
    ``means``; a ``ValueError`` names what does not fit."""
    names = list(names)
    values = as_array(centers)
    if values.ndim != 2 or values.shape[0] != len(names):
        raise InvalidInput(f"centers must be ({len(names)}, D), got {tuple(values.shape)}")
    values = normalize(values, axis=1)
    for name in names:
        check_class_name(name)
    if len(set(names)) != len(names):
        raise InvalidInput(f"class names must be unique, got {names}")
    mean_values = None if means is None else as_array(means)
    if mean_values is not None and mean_values.shape != values.shape:
        raise InvalidInput(
            f"class means must have the centers' shape {tuple(values.shape)}, got {tuple(mean_values.shape)}"
        )
    return [
        ClassRecord(name, center, mean=None if mean_values is None else mean_values[i])
        for i, (name, center) in enumerate(zip(names, values))
    ]


def new_class_name(name: str, existing: Sequence[str]) -> str:
    """``name`` in NFKC form if it may name a new class beside ``existing``: it follows the class-name rule
    (:func:`~spherefer.core.labels.check_class_name`, ``ValueError``), is not taken and does not look like
    a class's name (:func:`~spherefer.core.confusables.confusable_key`; both :class:`ClassExists`)."""
    name = check_class_name(name)
    if name in existing:
        raise ClassExists(f"class {shown(name)} already exists")
    key = confusable_key(name)
    alike = [n for n in existing if confusable_key(n) == key]
    if alike:
        raise ClassExists(
            f"class {shown(name)} would look like the existing class {shown(alike[0])} (same letters to a reader)"
        )
    return name
