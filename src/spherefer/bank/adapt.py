"""Adapting a bank to a new camera or population from unlabelled faces (no labels, no training).

The rule, chosen by ``benchmarks/adaptation.py`` (docs/RESULTS.md, section 7):

1. **Measure the shift.** Each new face goes to its nearest center. For each class, the
   mean ``m_c`` of its ``n_c`` new faces is compared with the class's training mean ``mu_c``
   (the bank's class means) in the model's within-class Mahalanobis metric ``W``
   (:mod:`spherefer.bank.unknown`): ``z_c = n_c (m_c - mu_c)^T W (m_c - mu_c) / D - 1`` (``D`` the
   embedding size; the displacement grows in weight with the evidence, and faces of the
   training distribution give ``z_c`` below 0, since the shrunk metric gives one face a
   length well under ``D``). ``z`` is the median of ``z_c`` over the faces, 0 at the least:
   the few faces of another class that land on a center do not count as a shift. ``z``
   grows with the evidence: on CK+48, 40 faces give 0, 200 about 0.5, all 927 about 4.
2. **Refine.** Spherical k-means on the new faces, started at the current centers; a
   class with fewer than :data:`MIN_CLASS_FACES` faces, or under :data:`MIN_CLASS_SHARE` of
   them, keeps its center (such faces are mostly another class's, landed on it).
3. **Blend.** Every center moves ``z / (1 + z)`` of the way to its refined position
   (then renormalised), and each class's mean moves as far towards its new faces' mean.
   Faces like the training faces move nothing; a single class's faces move nothing.

Only faces the bank accepts (the unknown score at or above the threshold,
:func:`~spherefer.core.labels.decide`) take part, and each face once: near-copies
(:func:`~spherefer.core.sphere.distinct`: the same photo sent again, re-encoded, or the next video
frame) count as one face, so repeating a face adds no evidence. The faces must spread over
at least :data:`MIN_ADAPT_CLASSES` classes (a camera shows several expressions; one
expression's faces are no evidence of a camera), and no center moves more than
:data:`MAX_MOVE_DEGREES` in one call (send the faces again to go further). Classes without
new faces keep their center. Nothing here needs PyTorch.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from spherefer.bank.centers import CenterBank
from spherefer.bank.unknown import FaceDensity, bank_scores, class_mean
from spherefer.core.errors import InvalidInput
from spherefer.core.labels import counted
from spherefer.core.sphere import angle_degrees, as_embeddings, distinct, normalize

__all__ = [
    "MIN_ADAPT_FACES",
    "MIN_ADAPT_CLASSES",
    "MAX_MOVE_DEGREES",
    "MIN_CLASS_FACES",
    "MIN_CLASS_SHARE",
    "KMEANS_ITERATIONS",
    "Adaptation",
    "OnlineAdapter",
    "domain_shift",
    "adapt_bank",
]

MIN_ADAPT_FACES = 30
"""Fewest distinct faces a bank is adapted from."""
MIN_ADAPT_CLASSES = 2
"""Fewest classes whose faces (:data:`MIN_CLASS_FACES` each) an adaptation needs."""
MAX_MOVE_DEGREES = 30.0
"""Farthest one adaptation moves a center (on CK+48 the full move is 45-70 degrees: two calls)."""
MIN_CLASS_FACES = 5
"""Fewest faces that move a class's center."""
MIN_CLASS_SHARE = 0.025
"""Smallest share of the faces that moves a class's center."""
KMEANS_ITERATIONS = 10


@dataclass
class Adaptation:
    """What :func:`adapt_bank` did: the measured ``shift`` (``z``), the ``weight`` the refined centers
    got, and per class the angle its center moved (degrees) and its share of the faces before and after."""

    faces: int
    left_out: int
    duplicates: int
    shift: float
    weight: float
    moved: dict[str, float]
    share_before: dict[str, float]
    share_after: dict[str, float]

    def to_markdown(self) -> str:
        rows = "\n".join(
            f"| {n} | {self.moved[n]:.2f} | {self.share_before[n]:.1%} | {self.share_after[n]:.1%} |"
            for n in self.moved
        )
        return (
            f"{counted(self.faces, 'face')} of the new setting ({self.left_out} more left out: "
            "unknown to the bank; "
            f"{counted(self.duplicates, 'near-copy', 'near-copies')} of other faces counted once); "
            f"measured shift {self.shift:.2f} (0: like the training faces, or too few faces to tell); "
            f"the centers move {self.weight:.0%} of the way to the new faces' clusters.\n\n"
            f"| class | center moved (degrees) | faces before | faces after |\n|---|---|---|---|\n{rows}\n"
        )


def domain_shift(centers: np.ndarray, means: np.ndarray, density: FaceDensity, embeddings: np.ndarray) -> float:
    """``z`` of step 1 (see the module docstring) for unit ``embeddings`` (N, D); 0 at the least."""
    nearest = (embeddings @ centers.T).argmax(1)
    per_face = np.empty(len(embeddings))
    for c in np.unique(nearest):
        members = nearest == c
        d = embeddings[members].mean(0) - means[c]
        per_face[members] = members.sum() * density.within_norm2(d) / embeddings.shape[1] - 1.0
    return max(0.0, float(np.median(per_face)))


def _enough(nearest: np.ndarray, classes: int) -> np.ndarray:
    """(C,) whether each class has the faces to move: :data:`MIN_CLASS_FACES` and :data:`MIN_CLASS_SHARE`."""
    counts = np.bincount(nearest, minlength=classes)
    return (counts >= MIN_CLASS_FACES) & (counts >= MIN_CLASS_SHARE * len(nearest))


def _kmeans(centers: np.ndarray, x: np.ndarray) -> np.ndarray:
    c = centers.copy()
    for _ in range(KMEANS_ITERATIONS):
        nearest = (x @ c.T).argmax(1)
        enough = _enough(nearest, len(c))
        c = np.stack([normalize(x[nearest == k].sum(0)) if enough[k] else c[k] for k in range(len(c))])
    return c


def _capped(before: np.ndarray, after: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``after``'s centers brought back along the great circle to at most :data:`MAX_MOVE_DEGREES` from
    ``before``'s, and the share (C,) of each move kept (1 where the move was within the cap)."""
    angles = np.degrees(np.arccos(np.clip((before * after).sum(1), -1.0, 1.0)))
    reach = np.minimum(1.0, MAX_MOVE_DEGREES / np.maximum(angles, 1e-9))
    theta = np.radians(angles)[:, None]
    t = reach[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        slerp = (np.sin((1 - t) * theta) * before + np.sin(t * theta) * after) / np.sin(theta)
    return np.where(reach[:, None] < 1.0, slerp, after), reach


def _shares(names: list[str], nearest: np.ndarray) -> dict[str, float]:
    counts = np.bincount(nearest, minlength=len(names))
    return {n: float(v) / len(nearest) for n, v in zip(names, counts)}


def adapt_bank(bank: CenterBank, density: FaceDensity | None, embeddings: object) -> Adaptation:
    """Adapt ``bank`` in place to the unit ``embeddings`` (N, D) of unlabelled faces of the new setting.

    Needs the bank's class means and the model's face density (a model with the unknown score);
    fewer than :data:`MIN_ADAPT_FACES` faces are refused. Either refusal leaves the bank as it was.
    """
    if len(np.asarray(embeddings)) == 0:
        raise InvalidInput(
            f"adapting needs at least {MIN_ADAPT_FACES} faces of the new setting, got none (no usable face found)"
        )
    x = normalize(as_embeddings(embeddings, bank.embedding_size, "adapting"), axis=1).astype(np.float64)
    if bank.means is None or density is None:
        raise InvalidInput(
            "adapting needs the class means and the model's face density (a model with the unknown score, "
            "see `spherefer info`); this bank or model has none"
        )
    accepted = bank.classify(x, scores=bank_scores(bank, density, x)).indices >= 0
    left_out, x = int((~accepted).sum()), x[accepted]
    once = distinct(x)
    duplicates, x = int((~once).sum()), x[once]
    if len(x) < MIN_ADAPT_FACES:
        copies = counted(duplicates, "near-copy", "near-copies")
        raise InvalidInput(
            f"adapting needs at least {MIN_ADAPT_FACES} distinct faces of the new setting that the bank "
            f"accepts, got {len(x)} ({left_out} unknown to the bank left out, {copies} counted once)"
        )
    centers, means = bank.centers.astype(np.float64), bank.means.astype(np.float64)
    before = (x @ centers.T).argmax(1)
    if _enough(before, len(centers)).sum() < MIN_ADAPT_CLASSES:
        raise InvalidInput(
            f"adapting needs faces of at least {MIN_ADAPT_CLASSES} classes ({MIN_CLASS_FACES} each); "
            f"these {len(x)} faces "
            "are nearly all of one: one expression's faces are no evidence of a new camera"
        )
    shift = domain_shift(centers, means, density, x)
    weight = shift / (1.0 + shift)
    refined = _kmeans(centers, x)
    adapted, reach = _capped(centers, normalize(centers + weight * (refined - centers), axis=1))
    after = (x @ adapted.T).argmax(1)
    new_means = means.copy()
    for c in np.flatnonzero(_enough(after, len(centers))):  # the classes whose centers k-means may move
        new_means[c] = means[c] + reach[c] * weight * (class_mean(x[after == c]) - means[c])
    moved = {n: angle_degrees(a, b) for n, a, b in zip(bank.names, centers, adapted)}
    bank.replace_centers(adapted, new_means)
    for name, angle in moved.items():
        if angle > 0.0:
            bank.info[name].updates += 1  # `classes list` shows the move
    return Adaptation(
        len(x), left_out, duplicates, shift, weight, moved, _shares(bank.names, before), _shares(bank.names, after)
    )


class OnlineAdapter:
    """Adaptation during a stream
    (:meth:`Recognizer.analyze_video <spherefer.runtime.recognizer.Recognizer.analyze_video>` with ``adapt=True``):
    the bank re-adapts every ``every`` new accepted faces, on the last ``window`` of them, always **from its
    state when the stream began** -- so adaptations never compound and the stream cannot drift further than
    one adaptation on its recent faces moves it.
    Faces come in through :meth:`add` (unit embeddings of the faces the bank accepted)."""

    def __init__(self, bank: CenterBank, density: FaceDensity | None, window: int = 600, every: int = 100) -> None:
        if bank.means is None or density is None:
            raise InvalidInput(
                "adapting needs the class means and the model's face density (a model with the unknown score)"
            )
        if every < 1 or window < MIN_ADAPT_FACES:
            raise InvalidInput(
                f"online adaptation needs every >= 1 and window >= {MIN_ADAPT_FACES}, got {every} and {window}"
            )
        self.bank, self.density, self.every = bank, density, every
        self._start = (bank.centers.copy(), bank.means.copy())
        self._faces: deque[np.ndarray] = deque(maxlen=window)
        self._since = 0
        self.last: Adaptation | None = None

    def add(self, embeddings: np.ndarray) -> Adaptation | None:
        """Take new faces' unit embeddings (N, D); returns the adaptation when one ran."""
        self._faces.extend(np.asarray(embeddings, dtype=np.float32))
        self._since += len(embeddings)
        if self._since < self.every or len(self._faces) < MIN_ADAPT_FACES:
            return None
        self._since = 0
        self.bank.replace_centers(*self._start)
        try:
            self.last = adapt_bank(self.bank, self.density, np.stack(self._faces))
        except ValueError:  # too few of the window's faces accepted by the starting bank: stay there
            self.last = None
        return self.last
