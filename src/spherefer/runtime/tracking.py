"""Faces across video frames: a small box tracker and temporal smoothing of labels.

Both classes are pure logic on numbers (no images, no I/O), used by
:meth:`~spherefer.runtime.recognizer.Recognizer.analyze_video`.

**Tracking** (:class:`FaceTracker`). Each track remembers its last box and a velocity
(an exponential average of its per-frame displacement). On every frame each live track
predicts where its face is now (last box moved by the velocity, for at most
``max_extrapolation`` frames), and detections are matched to predictions greedily by
the cost ``(1 - IoU) + d``, ``d`` being the distance between box centres in units of the
predicted box's size (the square root of its area); a pair may match only when the IoU
is at least ``min_iou`` or ``d`` at most ``max_distance``, and when the two boxes' sizes
differ by less than a factor ``max_size_ratio``. Unmatched detections open new tracks;
a track unmatched for more than ``max_age`` consecutive frames is dropped. Ids are
consecutive integers from 0 and never reused, so a face that comes back after
``max_age`` frames gets a new id.

**Smoothing** (:class:`LabelSmoother`). The paper's argument for the cosine margin is
that plain softmax labels "shake" near the border between classes; over video frames a
face near a border flickers between labels. Per track:

1. *Embedding EMA.* The unnormalised exponential average of the track's unit embeddings,
   ``s_1 = e_1``, ``s_t = (1 - alpha) s_(t-1) + alpha e_t``, i.e. in closed form
   ``s_t = (1 - alpha)^(t-1) e_1 + sum_(k=2..t) alpha (1 - alpha)^(t-k) e_k``; the
   smoothed embedding is ``s_t / |s_t|``; its cosines to the class centers and its
   unknown score are compared with the thresholds exactly as for a single face.
2. *Label hysteresis.* The frame's decision ``d`` is the accept rule
   (:func:`spherefer.core.labels.decide`) on the smoothed embedding: the nearest center, or
   ``unknown`` below that class's threshold. The first decision of a track is taken at
   once. Afterwards the held label ``L`` changes to ``d`` only when ``d`` has been the
   decision on ``patience`` consecutive classified frames of the track, each time with
   a *lead* of at least ``margin`` over ``L``:
   ``cos_d - cos_L`` between two classes, ``score - threshold_d`` from ``unknown`` to
   a class, ``threshold_L - score`` from a class to ``unknown`` (``score``: the smoothed
   embedding's unknown score, in its own units; the paper's rule: ``cos_L``) -- how far the smoothed
   embedding has crossed the border between the two labels. A frame whose decision is
   ``L``, or whose lead is below ``margin``, resets the count; a frame in which the
   track is not classified (face missing or rejected by a quality check) leaves the
   state as it is.

With ``alpha=1, margin=0, patience=1`` the smoother returns each frame's own decision.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from spherefer.bank.decision import DecisionRule
from spherefer.bank.scoring import decision_rule
from spherefer.core.errors import InvalidInput
from spherefer.core.labels import decide, label_of

if TYPE_CHECKING:
    from spherefer.bank.centers import CenterBank

__all__ = ["FaceTracker", "LabelSmoother", "SmoothedLabel", "SmoothingConfig", "Track", "box_iou"]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) intersection over union of (N, 4) and (M, 4) boxes (x0, y0, x1, y1)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def _centre(box: np.ndarray) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])


def _side(box: np.ndarray) -> float:
    """The square root of a box's area (at least 1e-6)."""
    return math.sqrt(max((box[2] - box[0]) * (box[3] - box[1]), 1e-12))


# ---------------------------------------------------------------- tracking


@dataclass
class Track:
    """One face followed across frames."""

    id: int
    box: np.ndarray  # last matched box (x0, y0, x1, y1)
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))  # box change per frame
    hits: int = 1  # frames in which it was matched
    missed: int = 0  # consecutive frames without a match since then

    def predicted(self, max_extrapolation: int) -> np.ndarray:
        """Where the face is expected in the next frame."""
        return self.box + self.velocity * min(self.missed + 1, max_extrapolation)


class FaceTracker:
    """Stable ids for face boxes across frames (see the module docstring for the rule).

    Call :meth:`update` once per analysed frame with that frame's boxes; it returns one
    track id per box, in the same order. :attr:`removed` lists the ids dropped by the
    last update (to let per-track state go).
    """

    def __init__(
        self,
        max_age: int = 15,
        min_iou: float = 0.2,
        max_distance: float = 0.6,
        max_size_ratio: float = 2.0,
        velocity_momentum: float = 0.5,
        max_extrapolation: int = 5,
    ) -> None:
        if max_age < 0:
            raise InvalidInput(f"max_age must be 0 or more, got {max_age}")
        if not 0.0 <= velocity_momentum <= 1.0:
            raise InvalidInput(f"velocity_momentum must lie in [0, 1], got {velocity_momentum}")
        if max_size_ratio < 1.0:
            raise InvalidInput(f"max_size_ratio must be at least 1, got {max_size_ratio}")
        self.max_age = max_age
        self.min_iou = min_iou
        self.max_distance = max_distance
        self.max_size_ratio = max_size_ratio
        self.velocity_momentum = velocity_momentum
        self.max_extrapolation = max(1, int(max_extrapolation))
        self.tracks: list[Track] = []
        self.removed: list[int] = []
        self._next_id = 0

    def reset(self) -> None:
        """Forget every track (ids keep counting up)."""
        self.removed = [track.id for track in self.tracks]
        self.tracks = []

    def _pairs(self, boxes: np.ndarray) -> list[tuple[float, int, int]]:
        """Allowed (cost, track index, box index) pairs, cheapest first."""
        if not self.tracks or not len(boxes):
            return []
        predicted = np.stack([track.predicted(self.max_extrapolation) for track in self.tracks])
        iou = box_iou(predicted, boxes)
        pairs = []
        for t, guess in enumerate(predicted):
            side, middle = _side(guess), _centre(guess)
            for b, box in enumerate(boxes):
                distance = float(np.hypot(*(_centre(box) - middle))) / side
                ratio = _side(box) / side
                if not (iou[t, b] >= self.min_iou or distance <= self.max_distance):
                    continue
                if not (1.0 / self.max_size_ratio < ratio < self.max_size_ratio):
                    continue
                pairs.append((1.0 - float(iou[t, b]) + distance, t, b))
        return sorted(pairs)

    def update(self, boxes: Sequence[Sequence[float] | np.ndarray] | np.ndarray) -> list[int]:
        """Match this frame's boxes (N, 4) to the tracks; one track id per box."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        ids: list[int | None] = [None] * len(boxes)
        matched_tracks: set[int] = set()
        for _, t, b in self._pairs(boxes):
            if t in matched_tracks or ids[b] is not None:
                continue
            track = self.tracks[t]
            step = (boxes[b] - track.box) / (track.missed + 1)
            m = self.velocity_momentum
            track.velocity = step if track.hits == 1 else m * track.velocity + (1.0 - m) * step
            track.box, track.missed = boxes[b].copy(), 0
            track.hits += 1
            matched_tracks.add(t)
            ids[b] = track.id
        kept: list[Track] = []
        self.removed = []
        for t, track in enumerate(self.tracks):
            if t not in matched_tracks:
                track.missed += 1
                if track.missed > self.max_age:
                    self.removed.append(track.id)
                    continue
            kept.append(track)
        self.tracks = kept
        for b, box in enumerate(boxes):
            if ids[b] is None:
                self.tracks.append(Track(self._next_id, box.copy()))
                ids[b] = self._next_id
                self._next_id += 1
        return [int(i) for i in ids]  # type: ignore[arg-type]


# ---------------------------------------------------------------- label smoothing


@dataclass(frozen=True)
class SmoothingConfig:
    """Parameters of :class:`LabelSmoother` (see the module docstring for the rule).

    ``alpha``: weight of the newest frame in the embedding EMA (1: no averaging);
    ``margin``: the lead a new label needs on each frame (in cosine between two classes; to
    or from ``unknown``, in the unknown score's own units, where 0.02 is next to nothing
    for the relative Mahalanobis score and ``patience`` does the holding); ``patience``: on
    how many consecutive frames (1: switch at once).
    """

    alpha: float = 0.4
    margin: float = 0.02
    patience: int = 3

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha <= 1.0:
            raise InvalidInput(f"smoothing alpha must lie in (0, 1], got {self.alpha}")
        if self.margin < 0:
            raise InvalidInput(f"smoothing margin must be 0 or more, got {self.margin}")
        if self.patience < 1:
            raise InvalidInput(f"smoothing patience must be at least 1, got {self.patience}")


@dataclass
class SmoothedLabel:
    """The smoother's answer for one track on one frame."""

    label: str  # the held label: a class name or ``unknown``
    decision: str  # this frame's decision on the smoothed embedding, before hysteresis
    embedding: np.ndarray  # (D,) unit smoothed embedding
    cosines: np.ndarray  # (C,) its cosines to the class centers


@dataclass
class _TrackState:
    total: np.ndarray  # unnormalised EMA s_t
    label: int  # held class index, -1 for unknown
    challenger: int | None = None
    count: int = 0


class LabelSmoother:
    """Per-track embedding EMA and label hysteresis over class ``centers`` (C, D) named
    ``names``, with per-class ``thresholds`` (C,) on the unknown score that ``score``
    gives a unit embedding (D,) (None: the cosine to the nearest center, the paper's rule).

    Build it from a bank with :meth:`from_bank`; call :meth:`update` with a track id and
    that frame's unit embedding of the face; :meth:`forget` drops a track's state.
    """

    def __init__(
        self,
        centers: np.ndarray,
        names: Sequence[str],
        thresholds: Sequence[float] | np.ndarray,
        config: SmoothingConfig = SmoothingConfig(),
        score: Callable[[np.ndarray], float] | None = None,
        rule: DecisionRule | None = None,
    ) -> None:
        self.names = list(names)
        self.thresholds = np.asarray(thresholds, dtype=np.float64).reshape(-1)
        self._use(centers, rule)
        if len(self.thresholds) != len(self.centers):
            raise InvalidInput(
                f"need C centers, C names and C thresholds, got {self.centers.shape}, {len(self.names)}, "
                f"{len(self.thresholds)}"
            )
        self.config = config
        self.score = score
        self._state: dict[int, _TrackState] = {}

    @classmethod
    def from_bank(
        cls,
        bank: CenterBank,
        threshold: float | None = None,
        config: SmoothingConfig = SmoothingConfig(),
        score: Callable[[np.ndarray], float] | None = None,
    ) -> LabelSmoother:
        """A smoother for a :class:`~spherefer.bank.centers.CenterBank` (``threshold`` overrides the global one,
        as in ``classify``), deciding by the bank's rule (:mod:`spherefer.bank.decision`)."""
        return cls(bank.centers, bank.names, bank.thresholds(threshold), config, score, decision_rule(bank))

    def follow(self, bank: CenterBank) -> None:
        """Classify with ``bank``'s moved centers and means from now on (the same classes;
        :class:`~spherefer.bank.adapt.OnlineAdapter`)."""
        if list(bank.names) != self.names:
            raise InvalidInput(f"the smoother classifies {self.names}, the bank has {bank.names}")
        self._use(bank.centers, decision_rule(bank))

    def _use(self, centers: np.ndarray, rule: DecisionRule | None) -> None:
        values = np.asarray(centers, dtype=np.float64)
        if values.ndim != 2 or len(values) != len(self.names):
            raise InvalidInput(f"need C centers and C names, got {values.shape} and {len(self.names)}")
        self.centers = values / np.maximum(np.linalg.norm(values, axis=1, keepdims=True), 1e-12)
        self.rule = rule

    def __contains__(self, track: int) -> bool:
        return track in self._state

    def forget(self, *tracks: int) -> None:
        for track in tracks:
            self._state.pop(track, None)

    def _lead(self, new: int, held: int, cosines: np.ndarray, ranking: np.ndarray, score: float) -> float:
        if new >= 0 and held >= 0:
            return float(ranking[new] - ranking[held])
        if new >= 0:  # unknown -> class
            return float(score - self.thresholds[new])
        return float(self.thresholds[held] - (cosines[held] if self.score is None else score))  # class -> unknown

    def update(self, track: int, embedding: np.ndarray) -> SmoothedLabel:
        """Feed one frame's unit embedding (D,) of ``track``; the held label and the smoothed embedding."""
        e = np.asarray(embedding, dtype=np.float64).reshape(-1)
        if e.shape[0] != self.centers.shape[1]:
            raise InvalidInput(f"embedding has {e.shape[0]} dimensions, the centers {self.centers.shape[1]}")
        state = self._state.get(track)
        a = self.config.alpha
        total = e.copy() if state is None else (1.0 - a) * state.total + a * e
        norm = float(np.linalg.norm(total))
        unit = total / norm if norm > 1e-12 else e / max(float(np.linalg.norm(e)), 1e-12)
        cosines = np.einsum("cd,d->c", self.centers, unit)  # not BLAS: see CenterBank.cosine
        ranking = cosines if self.rule is None else self.rule.ranking(unit, cosines)
        score = cosines[int(ranking.argmax())] if self.score is None else self.score(unit.astype(np.float32))
        own_score = None if self.score is None else np.asarray(score)
        decision = int(decide(cosines, self.thresholds, own_score, ranking).index)
        if state is None:
            state = self._state[track] = _TrackState(total, decision)
        else:
            state.total = total
            lead = self._lead(decision, state.label, cosines, ranking, float(score)) if decision != state.label else 0.0
            if decision != state.label and lead >= self.config.margin:
                if decision == state.challenger:
                    state.count += 1
                else:
                    state.challenger, state.count = decision, 1
                if state.count >= self.config.patience:
                    state.label, state.challenger, state.count = decision, None, 0
            else:
                state.challenger, state.count = None, 0
        return SmoothedLabel(
            label_of(state.label, self.names),
            label_of(decision, self.names),
            unit.astype(np.float32),
            cosines.astype(np.float32),
        )
