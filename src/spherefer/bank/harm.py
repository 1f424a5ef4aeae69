"""How much of each existing class a new class would take, estimated when it is enrolled, without training data.

The model's face density (:class:`~spherefer.bank.unknown.FaceDensity`) and the bank's class means
already describe where each class's faces lie: around the class's mean, spread by the shared
within-class covariance (the inverse of ``FaceDensity.within``). :func:`estimate_harm` draws
:data:`SAMPLES` faces of every existing class from that Gaussian (the same standard-normal
draws for every class, seeded, so the estimate is repeatable), projects them onto the unit
sphere and classifies them by the bank's own decision rule with the new class in it. The
share of a class's draws that the new class takes is the estimate of the share of that
class's faces it would take.

Measured against the faces' actual shares (docs/RESULTS.md, section 9): on FER+ test faces
the estimate is within 5 points for every class and draw of CK+ contempt enrolled from ten
shots; on CK+48 itself the faces are posed and tighter than FER+'s, and the estimate is
pessimistic there.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from spherefer.bank.centers import CenterBank
from spherefer.bank.unknown import FaceDensity
from spherefer.core.errors import InvalidInput

__all__ = ["HARM_LIMIT", "SAMPLES", "HarmReport", "estimate_harm"]

HARM_LIMIT = 0.10
"""Largest estimated share of any existing class that an enrolment may take without the user insisting."""
SAMPLES = 2000
"""Faces drawn per existing class."""
_SEED = 0


@dataclass(frozen=True)
class HarmReport:
    """The estimated share of each existing class's faces (``taken``, 0-1, by class name) that
    ``new_class`` would take, against the ``limit``."""

    new_class: str
    taken: dict[str, float]
    limit: float = HARM_LIMIT

    @property
    def worst(self) -> tuple[str, float] | None:
        """The class that would lose most, and its share (None for a bank with no other class)."""
        return max(self.taken.items(), key=lambda item: item[1]) if self.taken else None

    @property
    def harmful(self) -> bool:
        """Whether some class would lose more than the limit."""
        return self.worst is not None and self.worst[1] > self.limit

    def summary(self, at_least: float = 0.01) -> str:
        """ "would take 4% of happy, 1% of neutral" (shares of at least ``at_least``), or "would take
        under 1% of any class"."""
        shown = sorted(((n, s) for n, s in self.taken.items() if s >= at_least), key=lambda item: -item[1])
        if not shown:
            return f"would take under {at_least:.0%} of any class"
        return "would take " + ", ".join(f"{share:.0%} of {name}" for name, share in shown)

    def to_dict(self) -> dict[str, object]:
        return {
            "new_class": self.new_class,
            "taken": {n: round(s, 4) for n, s in self.taken.items()},
            "limit": self.limit,
            "harmful": self.harmful,
            "summary": self.summary(),
        }


def _within_cholesky(density: FaceDensity) -> np.ndarray:
    """The lower Cholesky factor of the within-class covariance (the inverse of ``density.within``), fp64."""
    covariance = np.linalg.inv(density.within.astype(np.float64))
    return np.linalg.cholesky((covariance + covariance.T) / 2.0)


def estimate_harm(
    bank: CenterBank,
    density: FaceDensity,
    add: Callable[[CenterBank], object],
    new_class: str,
    limit: float = HARM_LIMIT,
) -> HarmReport:
    """The share of each class of ``bank`` that the class ``new_class``, added by ``add(bank_copy)``,
    would take under the bank's decision rule (``bank`` itself is not changed). Needs the
    class means (a bank on the relative Mahalanobis score has them)."""
    if bank.means is None:
        raise InvalidInput(
            "estimating what a new class would take needs the bank's class means (a model with a face density)"
        )
    trial = copy.deepcopy(bank)
    add(trial)
    new_index = trial.index(new_class)
    factor = _within_cholesky(density)
    noise = np.random.default_rng(_SEED).standard_normal((SAMPLES, factor.shape[0])) @ factor.T
    means = trial.means
    if means is None:
        raise InvalidInput("estimating harm needs a bank with class means")
    taken = {}
    for name in bank.names:
        faces = means[trial.index(name)].astype(np.float64) + noise
        faces /= np.linalg.norm(faces, axis=1, keepdims=True)
        taken[name] = float(np.mean(trial.nearest(faces.astype(np.float32)) == new_index))
    return HarmReport(new_class, taken, limit)
