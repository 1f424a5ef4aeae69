"""Choose the global and per-class cosine thresholds from held-out labelled data.

A *false match* of class c is a face whose nearest center is c although it is not c:
a face of another known class, or of a class the bank does not know (dataset classes
missing from the bank count as unknown faces). For a target false-accept rate
``far``, the threshold of c is the ``1 - far`` quantile of the cosines of c's false
matches, so at most ``far`` of them are still accepted; the global threshold is the
same quantile over every false match. A class with fewer than ``min_false`` false
matches keeps the global threshold.

Thresholds that would accept fewer than :data:`MIN_CORRECT_ACCEPTED` (half) of the
correctly matched known faces are not stored unless forced: such a bank calls almost
every face ``unknown`` (calibration data unlike the faces the bank will see, or a model
that matches few of them right, make it so).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .data import open_dataset
from .evaluate import embed_arrays
from .labels import decide, nearest_match
from .recognizer import Recognizer

__all__ = ["MIN_CORRECT_ACCEPTED", "Calibration", "calibrate", "choose_thresholds"]

MIN_CORRECT_ACCEPTED = 0.5
"""Floor on the share of correctly matched known faces that stored thresholds accept
(:func:`calibrate` refuses to store thresholds below it unless ``force``)."""


@dataclass
class Calibration:
    """Thresholds chosen for a target false-accept rate and what they give on the calibration data."""

    target_far: float
    global_threshold: float
    class_thresholds: dict[str, float | None]
    false_accept_rate: float
    genuine_accept_rate: float
    accuracy_accepted: float
    n_known: int
    n_unknown: int

    @property
    def below_floor(self) -> bool:
        """The thresholds accept fewer than :data:`MIN_CORRECT_ACCEPTED` of the correctly matched known faces."""
        return self.genuine_accept_rate < MIN_CORRECT_ACCEPTED

    def floor_message(self) -> str:
        return (f"these thresholds would make most faces unknown: correct faces accepted {self.genuine_accept_rate:.1%}, "
                f"below the floor of {MIN_CORRECT_ACCEPTED:.0%} (global threshold {self.global_threshold:.3f})")

    def to_markdown(self) -> str:
        rows = "\n".join(f"| {n} | {'global' if t is None else f'{t:.3f}'} |" for n, t in self.class_thresholds.items())
        return (
            f"Calibration for false-accept rate {self.target_far:.1%} on {self.n_known} known + {self.n_unknown} unknown faces:\n\n"
            f"- global threshold {self.global_threshold:.3f}\n"
            f"- false matches accepted {self.false_accept_rate:.1%}; correct faces accepted {self.genuine_accept_rate:.1%}; "
            f"accuracy of the accepted known faces {self.accuracy_accepted:.1%}\n\n"
            f"| class | threshold |\n|---|---|\n{rows}\n"
        )


def choose_thresholds(
    cosines: np.ndarray, labels: np.ndarray, names: list[str], target_far: float, min_false: int = 20
) -> tuple[float, dict[str, float | None]]:
    """(global, per-class) thresholds; ``labels`` index ``names`` or are -1 for unknown faces."""
    if not 0.0 < target_far < 1.0:
        raise ValueError(f"target FAR must be between 0 and 1, got {target_far}")
    nearest, score = nearest_match(cosines)
    false = nearest != labels
    if false.sum() == 0:
        raise ValueError("the calibration data has no false matches at all; it cannot set a false-accept rate")
    global_t = float(np.quantile(score[false], 1.0 - target_far))
    per_class: dict[str, float | None] = {}
    for c, name in enumerate(names):
        mask = false & (nearest == c)
        per_class[name] = float(np.quantile(score[mask], 1.0 - target_far)) if mask.sum() >= min_false else None
    return min(global_t, 1.0), per_class


def calibrate(recognizer: Recognizer, data: str, target_far: float = 0.05, min_false: int = 20, apply: bool = True,
              force: bool = False) -> Calibration:
    """Measure on ``data`` (``FORMAT:PATH[:SPLIT]``), choose thresholds, and store them in the bank when ``apply``.

    Thresholds below the floor (:attr:`Calibration.below_floor`) raise ``ValueError`` and
    leave the bank as it was, unless ``force``; with ``apply=False`` nothing is stored
    and nothing is refused.
    """
    bank = recognizer.bank
    dataset = open_dataset(data)
    images, targets = dataset.load_arrays(size=recognizer.config.input_size)
    labels = np.array([bank.names.index(dataset.classes[t]) if dataset.classes[t] in bank.names else -1 for t in targets])
    cosines = bank.cosine(embed_arrays(recognizer, images))
    global_t, per_class = choose_thresholds(cosines, labels, bank.names, target_far, min_false)
    thresholds = np.array([global_t if per_class[n] is None else per_class[n] for n in bank.names])
    nearest, _, index = decide(cosines, thresholds)
    accepted = index >= 0
    correct = nearest == labels
    result = Calibration(
        target_far=target_far,
        global_threshold=global_t,
        class_thresholds=per_class,
        false_accept_rate=float(accepted[~correct].mean()) if (~correct).any() else 0.0,
        genuine_accept_rate=float(accepted[correct].mean()) if correct.any() else 0.0,
        accuracy_accepted=float(correct[accepted & (labels >= 0)].mean()) if (accepted & (labels >= 0)).any() else 0.0,
        n_known=int((labels >= 0).sum()),
        n_unknown=int((labels < 0).sum()),
    )
    if apply and result.below_floor and not force:
        raise ValueError(f"{result.floor_message()} on {data}; nothing stored (calibrate on data like the faces the bank will see, "
                         "or pass --force / force=True to store them anyway)")
    if apply:
        bank.set_threshold(None, global_t)
        for name, value in per_class.items():
            bank.set_threshold(name, value)
    return result
