"""Open-set rejection: how well an unknown score tells faces of the bank's classes from faces of no class."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from spherefer.bank.centers import CenterBank
from spherefer.core.errors import InvalidInput
from spherefer.core.labels import Classification
from spherefer.core.sphere import normalize

_SKLEARN_HINT = "pip install scikit-learn"


def sklearn_module(module: str, what: str) -> Any:
    """``sklearn.<module>``, or an ImportError saying how to install scikit-learn (only the test extra brings it)."""
    try:
        return importlib.import_module(f"sklearn.{module}")
    except ImportError as err:
        raise ImportError(
            f"{what} needs scikit-learn, which spherefer does not install by default: {_SKLEARN_HINT}"
        ) from err


@dataclass
class OpenSetResult:
    """Known faces against faces of no known class, scored by their best cosine
    (``auroc_top2_margin``: scored by best minus second-best cosine instead)."""

    n_known: int
    n_unknown: int
    auroc: float
    fpr_at_95_tpr: float
    auroc_top2_margin: float
    threshold: float
    accepted_accuracy: float
    known_rejected: float
    unknown_accepted: float


def fpr_at_tpr(known_scores: np.ndarray, unknown_scores: np.ndarray, tpr: float = 0.95) -> float:
    """Fraction of unknown faces accepted at the highest threshold that still accepts ``tpr`` of the known ones."""
    ordered = np.sort(np.asarray(known_scores))
    keep = int(np.ceil(tpr * len(ordered) - 1e-9))
    if not 0 < keep <= len(ordered):
        raise InvalidInput(f"tpr must be in (0, 1] with at least one known score, got tpr={tpr}, {len(ordered)} scores")
    threshold = ordered[len(ordered) - keep]
    return float(np.mean(np.asarray(unknown_scores) >= threshold))


def open_set(
    bank: CenterBank,
    known: np.ndarray,
    known_labels: Sequence[str],
    unknown: np.ndarray,
    classify: Callable[[np.ndarray], Classification] | None = None,
) -> OpenSetResult:
    """AUROC and FPR at 95% TPR of the bank's unknown score (known = positive), and what the bank's thresholds
    accept. ``classify`` gives the scores: ``bank.classify`` (default; the best cosine) or a recognizer's
    (:meth:`~spherefer.runtime.recognizer.Recognizer.classify`, for banks on the relative Mahalanobis score)."""
    roc_auc_score = sklearn_module("metrics", "open_set()").roc_auc_score
    label_array = np.asarray(known_labels)
    if len(label_array) != len(known):
        raise InvalidInput(f"{len(known)} known embeddings but {len(label_array)} labels")
    foreign = sorted(set(label_array.tolist()) - set(bank.names))
    if foreign:
        raise InvalidInput(f"known faces are labelled with classes the bank lacks: {foreign}")
    classify = bank.classify if classify is None else classify
    seen, unseen = classify(known), classify(unknown)
    known_scores, unknown_scores = seen.scores, unseen.scores
    accepted = seen.indices >= 0
    predicted = np.array(seen.labels)
    truth = np.r_[np.ones(len(known_scores)), np.zeros(len(unknown_scores))]
    top2 = [np.sort(result.cosines, axis=1)[:, -2:] for result in (seen, unseen)]
    margins = np.r_[top2[0][:, 1] - top2[0][:, 0], top2[1][:, 1] - top2[1][:, 0]]
    return OpenSetResult(
        n_known=len(known_scores),
        n_unknown=len(unknown_scores),
        auroc=float(roc_auc_score(truth, np.r_[known_scores, unknown_scores])),
        fpr_at_95_tpr=fpr_at_tpr(known_scores, unknown_scores),
        auroc_top2_margin=float(roc_auc_score(truth, margins)) if len(bank) > 1 else float("nan"),
        threshold=bank.threshold,
        accepted_accuracy=float(np.mean(predicted[accepted] == label_array[accepted]))
        if accepted.any()
        else float("nan"),
        known_rejected=float(np.mean(~accepted)),
        unknown_accepted=float(np.mean(unseen.indices >= 0)),
    )


def data_mean_cosines(bank: CenterBank, embeddings_by_class: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Cosine between each class's center in ``bank`` and the normalised mean of its L2-normalised embeddings."""
    return {
        name: float(bank.cosine(normalize(np.asarray(x, dtype=np.float32), axis=1).mean(0))[0, bank.index(name)])
        for name, x in embeddings_by_class.items()
    }
