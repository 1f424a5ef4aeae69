"""The decision rule: which class a face belongs to, before the unknown threshold is applied.

A bank holds two kinds of classes that stand on different footings:

- a **trained** class's center is a row of the margin head's weights. It is not where its
  faces lie: on the shipped ``default`` model a happy face's cosine to the happy center is
  about 0.4, and the classes' own cosines range from 0.11 (disgust) to 0.57 (neutral);
- an **enrolled** (or composed) class's center is the normalised mean of its shots, which
  sits inside its faces' cloud, so its faces' cosines to it are about 0.8.

Comparing the two kinds by the cosine to their centers (:data:`PAPER`, the paper's rule) lets
a new class claim faces of trained classes (docs/RESULTS.md, section 9, measures it).

:data:`MEAN_GATE` (the default for banks that hold class means) puts every class on one
footing where trained and enrolled classes meet:

1. the trained classes decide among themselves by the cosine to their head centers, exactly
   as the paper does (a bank of trained classes only classifies as it always did);
2. an enrolled class takes a face only when the face is nearer the enrolled class's mean
   direction than every trained class's mean direction (both are means of faces, so both
   sit inside their faces' clouds); among enrolled classes the nearest mean direction wins.

:meth:`DecisionRule.ranking` writes both steps as one (N, C) matrix whose row-wise argmax is
the class, so that every front end (batch classification, the video smoother, calibration,
evaluation) takes the same argmax. The measured comparison of rules is in docs/RESULTS.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spherefer.core.errors import InvalidInput

__all__ = ["DEFAULT_RULE", "MEAN_GATE", "PAPER", "RULES", "DecisionRule", "check_rule"]

PAPER = "paper"
MEAN_GATE = "mean_gate"
RULES = {
    PAPER: "the cosine to every class's center (the paper's rule: head-weight rows for trained classes, "
    "shot means for enrolled ones)",
    MEAN_GATE: "trained classes by the cosine to their head centers; an enrolled class wins a face only when "
    "the face is nearer its mean than every trained class's mean",
}
"""The decision rules by name, with what they compare."""
DEFAULT_RULE = MEAN_GATE
"""The rule of banks that hold class means (banks without means can only use :data:`PAPER`)."""


def check_rule(name: object, has_means: bool) -> str:
    """``name`` if it names a rule a bank with (or without) class means can use, else ``ValueError``."""
    if name not in RULES:
        raise InvalidInput(f"unknown decision rule {name!r}; rules are {sorted(RULES)}")
    if name == MEAN_GATE and not has_means:
        raise InvalidInput(
            f"the {MEAN_GATE} rule compares class means, and this bank has none (use {PAPER!r}, or set the means first)"
        )
    return str(name)


@dataclass(frozen=True)
class DecisionRule:
    """A bank's rule frozen with what it needs: ``name``, which classes are ``trained`` (C,) and the
    classes' unit mean ``directions`` (C, D) (None under :data:`PAPER`)."""

    name: str
    trained: np.ndarray
    directions: np.ndarray | None = None

    @property
    def mixed(self) -> bool:
        """Whether the rule differs from the paper's here: mean gate with trained and other classes together."""
        return (
            self.name == MEAN_GATE
            and self.directions is not None
            and bool(self.trained.any())
            and not bool(self.trained.all())
        )

    def ranking(self, embeddings: np.ndarray, cosines: np.ndarray) -> np.ndarray:
        """Per-class values whose argmax over the last axis is each face's class, for unit ``embeddings``
        (N, D) or (D,) and their ``cosines`` (N, C) or (C,) to the centers.

        Under the mean gate a trained class's value is its cosine minus the best trained cosine
        plus the best cosine to a trained mean direction, and another class's value is the cosine
        to its own mean direction: the head's winner carries the trained side's best mean cosine
        into the comparison with the enrolled classes."""
        if not self.mixed:
            return cosines
        x = np.asarray(embeddings, dtype=np.float64)
        cos = np.asarray(cosines, dtype=np.float64)
        single = cos.ndim == 1
        x, cos = np.atleast_2d(x), np.atleast_2d(cos)
        assert self.directions is not None  # a mixed rule has them
        to_means = np.einsum("nd,cd->nc", x, self.directions)  # not BLAS: see CenterBank.cosine
        trained = self.trained
        ranking = to_means.copy()
        head = cos[:, trained]
        ranking[:, trained] = head - head.max(axis=1, keepdims=True) + to_means[:, trained].max(axis=1, keepdims=True)
        return ranking[0] if single else ranking
