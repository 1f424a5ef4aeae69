"""Subject-disjoint splits: every image of one subject lands in the same part.

Both helpers shuffle the sorted distinct subjects with ``numpy.random.default_rng(seed)``
and return sorted index arrays into ``subjects``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from spherefer.core.errors import InvalidInput

__all__ = ["subject_split", "subject_kfold"]


def _shuffled_subjects(subjects: Sequence[str], seed: int, minimum: int) -> tuple[np.ndarray, np.ndarray]:
    """(subject of each sample as an array, distinct subjects in shuffled order); at least ``minimum`` distinct."""
    per_sample = np.asarray(subjects)
    distinct = np.unique(per_sample)
    if len(distinct) < minimum:
        raise InvalidInput(f"need at least {minimum} distinct subjects, got {len(distinct)}")
    return per_sample, np.random.default_rng(seed).permutation(distinct)


def subject_split(subjects: Sequence[str], test_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices) with ``round(test_fraction * n_subjects)`` subjects (at least 1) in test."""
    if not 0.0 < test_fraction < 1.0:
        raise InvalidInput(f"test_fraction must be strictly between 0 and 1, got {test_fraction}")
    per_sample, order = _shuffled_subjects(subjects, seed, minimum=2)
    n_test = min(max(1, round(test_fraction * len(order))), len(order) - 1)
    is_test = np.isin(per_sample, order[:n_test])
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def subject_kfold(subjects: Sequence[str], k: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` (train indices, test indices) folds; each subject is in exactly one test fold."""
    if k < 2:
        raise InvalidInput(f"k must be at least 2, got {k}")
    per_sample, order = _shuffled_subjects(subjects, seed, minimum=k)
    folds = []
    for fold_subjects in np.array_split(order, k):
        is_test = np.isin(per_sample, fold_subjects)
        folds.append((np.flatnonzero(~is_test), np.flatnonzero(is_test)))
    return folds
