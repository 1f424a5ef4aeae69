"""Fit the unknown score and choose its thresholds from labelled faces.

:func:`fit_unknown_score` turns a recognizer's bank to the relative Mahalanobis score of
:mod:`spherefer.bank.unknown`: the class means and the network's face density come from
training faces, and the global threshold from validation faces. ``spherefer train`` does
it at the end of every run.

:func:`calibrate` chooses the thresholds of the bank's own score (the best cosine or the
relative Mahalanobis score) on labelled faces like the ones the bank will see (default:
accept 95% of them). The global threshold is the ``1 - accept`` quantile of the scores
of every face of the bank's classes; a class with at least ``min_faces`` faces matched
to it (nearest center) gets the same quantile of theirs, so that each class accepts
about ``accept`` of its faces. Faces of dataset classes the bank does not know are
unknown faces: the report says how many of them are still accepted. Calibration data
with fewer than :data:`MIN_KNOWN_FACES` faces of the bank's classes is refused (nothing
is stored): a quantile of a handful of faces is noise. So is, unless forced
(:func:`check_calibration_data`), data that would store thresholds for the wrong reasons:
fewer than :data:`MIN_KNOWN_FACES` *distinct* faces (copies of one face count once), faces
of one class only, or an acceptance under :data:`MIN_ACCEPT` (most known faces unknown).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from spherefer.bank.unknown import FaceDensity, class_mean
from spherefer.core.errors import InvalidInput, Unusable
from spherefer.core.labels import MAHALANOBIS_SCORE, counted
from spherefer.core.sphere import distinct
from spherefer.data import open_dataset
from spherefer.evaluation.evaluate import embed_arrays
from spherefer.runtime.recognizer import Recognizer

__all__ = [
    "ACCEPT",
    "MIN_ACCEPT",
    "MIN_KNOWN_FACES",
    "Calibration",
    "DegenerateCalibration",
    "calibrate",
    "check_calibration_data",
    "choose_thresholds",
    "fit_unknown_score",
]

ACCEPT = 0.95
"""Default share of known faces the thresholds accept."""
MIN_KNOWN_FACES = 50
"""Fewest faces of the bank's classes :func:`calibrate` chooses thresholds from."""
MIN_ACCEPT = 0.5
"""Lowest share of known faces a calibration may accept without being forced."""


class DegenerateCalibration(Unusable):
    """Calibration data or settings that would store misleading thresholds (refused unless forced)."""


def check_calibration_data(embeddings: np.ndarray, labels: np.ndarray, names: list[str], accept: float) -> None:
    """:class:`DegenerateCalibration` when thresholds chosen from these known faces (``labels`` >= 0)
    at ``accept`` would mislead: too few distinct faces, one class only, or most faces left unknown."""
    known = labels >= 0
    hint = "; to store the thresholds anyway, force it (CLI: --force)"
    if accept < MIN_ACCEPT:
        raise DegenerateCalibration(
            f"accepting {accept:.0%} of the known faces leaves {1 - accept:.0%} of them unknown{hint}"
        )
    distinct_faces = int(distinct(embeddings[known]).sum())
    if distinct_faces < MIN_KNOWN_FACES:
        raise DegenerateCalibration(
            f"only {counted(distinct_faces, 'distinct face')} among the {int(known.sum())} faces of the bank's classes "
            f"(the others are near-copies), fewer than the {MIN_KNOWN_FACES} calibrating needs{hint}"
        )
    present = sorted({names[c] for c in labels[known]})
    if len(present) < 2:
        raise DegenerateCalibration(
            f"every known face is of one class ({present[0]}): thresholds chosen on it would be guesses for the "
            f"others{hint}"
        )


@dataclass
class Calibration:
    """Thresholds chosen for a target acceptance of known faces, and what they give on the calibration data."""

    accept: float
    score: str
    global_threshold: float
    class_thresholds: dict[str, float | None]
    known_accepted: float
    unknown_accepted: float | None
    accuracy_before: float
    accuracy_after: float
    n_known: int
    n_unknown: int

    def to_markdown(self) -> str:
        rows = "\n".join(f"| {n} | {'global' if t is None else f'{t:.4f}'} |" for n, t in self.class_thresholds.items())
        unknown = (
            "no unknown faces"
            if self.unknown_accepted is None
            else f"unknown faces accepted {self.unknown_accepted:.1%}"
        )
        return (
            f"Calibration of the {self.score} score to accept {self.accept:.0%} of known faces, on {self.n_known} "
            "known "
            f"+ {self.n_unknown} unknown faces:\n\n"
            f"- global threshold {self.global_threshold:.4f}\n"
            f"- known faces accepted {self.known_accepted:.1%}; {unknown}\n"
            f"- accuracy on the known faces (unknown counts as wrong) {self.accuracy_before:.1%} without a threshold, "
            f"{self.accuracy_after:.1%} with these\n\n"
            f"| class | threshold |\n|---|---|\n{rows}\n"
        )


def choose_thresholds(
    scores: np.ndarray,
    nearest: np.ndarray,
    labels: np.ndarray,
    names: list[str],
    accept: float = ACCEPT,
    min_faces: int = 20,
) -> tuple[float, dict[str, float | None]]:
    """(global, per-class) thresholds accepting ``accept`` of the known faces (``labels`` >= 0, indexing
    ``names``; -1 for unknown faces): ``scores`` (N,) quantiles, per class over the known faces whose
    ``nearest`` class it is (at least ``min_faces`` of them, else None: the global one applies)."""
    if not 0.0 < accept < 1.0:
        raise InvalidInput(f"the share of known faces to accept must be between 0 and 1, got {accept}")
    known = labels >= 0
    if known.sum() < MIN_KNOWN_FACES:
        raise InvalidInput(
            f"calibrating needs at least {MIN_KNOWN_FACES} faces of the bank's classes {names}, got {int(known.sum())}"
        )
    global_t = float(np.quantile(scores[known], 1.0 - accept))
    per_class: dict[str, float | None] = {}
    for c, name in enumerate(names):
        mask = known & (nearest == c)
        per_class[name] = float(np.quantile(scores[mask], 1.0 - accept)) if mask.sum() >= min_faces else None
    return global_t, per_class


def _labelled_embeddings(
    recognizer: Recognizer, data: str, max_faces: int | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of ``data``'s faces (a seeded draw of ``max_faces``) and their labels as bank
    indices (-1: a class the bank lacks)."""
    dataset = open_dataset(data)
    images, targets = dataset.load_arrays(size=recognizer.config.input_size)
    if max_faces is not None:
        chosen = np.sort(np.random.default_rng(seed).permutation(len(targets))[:max_faces])
        images, targets = images[chosen], targets[chosen]
    names = recognizer.bank.names
    labels = np.array(
        [names.index(dataset.classes[t]) if dataset.classes[t] in names else -1 for t in targets], dtype=np.int64
    )
    return embed_arrays(recognizer, images), labels


def calibrate(
    recognizer: Recognizer,
    data: str,
    accept: float = ACCEPT,
    min_faces: int | None = 20,
    apply: bool = True,
    force: bool = False,
) -> Calibration:
    """Measure on ``data`` (``FORMAT:PATH[:SPLIT]``), choose the thresholds of the bank's score
    (``min_faces=None``: the global one only), and store them in the bank when ``apply``. Refused
    with ``ValueError`` (nothing stored) when the data has fewer than :data:`MIN_KNOWN_FACES`
    faces of the bank's classes, and, unless ``force``, when :func:`check_calibration_data` finds it degenerate."""
    if not 0.0 < accept < 1.0:
        raise InvalidInput(f"the share of known faces to accept must be between 0 and 1, got {accept}")
    bank = recognizer.bank
    embeddings, labels = _labelled_embeddings(recognizer, data)
    if not force and (labels >= 0).sum() >= MIN_KNOWN_FACES:
        try:
            check_calibration_data(embeddings, labels, bank.names, accept)
        except DegenerateCalibration as err:
            raise DegenerateCalibration(f"{err} ({data}); nothing stored") from None
    nearest = bank.nearest(embeddings) if len(embeddings) else np.empty(0, int)
    scores = recognizer.unknown_scores(embeddings) if len(embeddings) else np.empty(0)
    try:
        global_t, per_class = choose_thresholds(
            scores, nearest, labels, bank.names, accept, len(labels) + 1 if min_faces is None else min_faces
        )
    except ValueError as err:
        raise InvalidInput(f"{err} in {data}; nothing stored") from None
    thresholds = np.array([global_t if per_class[n] is None else per_class[n] for n in bank.names])
    accepted = scores >= thresholds[nearest]
    known = labels >= 0
    correct = nearest == labels
    result = Calibration(
        accept=accept,
        score=bank.score,
        global_threshold=global_t,
        class_thresholds=per_class,
        known_accepted=float(accepted[known].mean()),
        unknown_accepted=float(accepted[~known].mean()) if (~known).any() else None,
        accuracy_before=float(correct[known].mean()),
        accuracy_after=float((correct & accepted)[known].mean()),
        n_known=int(known.sum()),
        n_unknown=int((~known).sum()),
    )
    if apply:
        bank.set_threshold(None, global_t)
        for name, value in per_class.items():
            bank.set_threshold(name, value)
    return result


def fit_unknown_score(
    recognizer: Recognizer, train: str, val: str, accept: float = ACCEPT, max_faces: int = 8000, seed: int = 0
) -> Calibration:
    """Give ``recognizer`` a copy of its bank on the relative Mahalanobis score: class means and the
    face density from at most ``max_faces`` faces of ``train`` (a seeded draw), the global threshold
    accepting ``accept`` of ``val``'s known faces (no per-class thresholds), which also becomes
    the bank's trained threshold. Every class of the bank needs faces in ``train``; a refusal
    leaves the recognizer as it was."""
    embeddings, labels = _labelled_embeddings(recognizer, train, max_faces, seed)
    bank = recognizer.bank
    missing = [name for c, name in enumerate(bank.names) if not (labels == c).any()]
    if missing:
        raise InvalidInput(
            f"fitting the unknown score needs training faces of every class; {train} has none of {missing}"
        )
    known = labels >= 0
    means = np.stack([class_mean(embeddings[labels == c]) for c in range(len(bank))])
    trial = copy.deepcopy(bank)  # the recognizer changes only once the threshold is chosen
    trial.set_means(means)
    fitted = recognizer.with_bank(trial)
    fitted.density = FaceDensity.fit(embeddings[known], labels[known], means)
    trial.use_score(MAHALANOBIS_SCORE, 0.0)
    # the run's own validation split: trusted
    result = calibrate(fitted, val, accept=accept, min_faces=None, apply=False, force=True)
    trial.use_score(MAHALANOBIS_SCORE, result.global_threshold)
    recognizer.bank, recognizer.density = trial, fitted.density
    return result
