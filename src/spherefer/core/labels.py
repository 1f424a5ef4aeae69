"""What a face is called and how that is written down: the rules every front end shares.

This is the floor of the package (it imports nothing from spherefer), so the library,
video tracking, threshold calibration, the command line and the HTTP service all
answer with the same words:

- the **reserved labels** ``unknown`` (classified, but below the threshold),
  ``rejected`` (a face that failed a quality check and was not classified) and
  ``no_face`` (a photo or frame in which no face was found);
- the **class-name rule** (:func:`check_class_name`): what may name a class, refused
  identically by :class:`~spherefer.bank.centers.CenterBank`, ``spherefer classes`` and
  ``POST /v1/classes``;
- the **unknown scores** (:data:`SCORES`): what a bank's thresholds are compared with,
  the paper's best cosine or the relative Mahalanobis score of :mod:`spherefer.bank.unknown`;
- the **accept rule** (:func:`decide`): a face is its nearest center's class when its
  unknown score reaches that class's threshold (its own, else the global one),
  otherwise ``unknown``;
- the **output records**: :meth:`Prediction.to_dict` (label, cosine, score, probabilities),
  :func:`face_dict` (one detected face) and :func:`no_face_dict`, and
  :func:`frame_records` (a photo's or frame's records, with where they come from).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from spherefer.core.errors import InvalidInput

__all__ = [
    "CLASS_NAME_RULE",
    "COSINE_SCORE",
    "FACE_FIELDS",
    "MAHALANOBIS_SCORE",
    "MAX_CLASS_NAME_LENGTH",
    "NO_FACE",
    "REJECTED",
    "RESERVED_LABELS",
    "SCORES",
    "UNKNOWN",
    "Classification",
    "Decision",
    "Prediction",
    "check_class_name",
    "class_name_problem",
    "counted",
    "decide",
    "face_dict",
    "frame_records",
    "label_of",
    "normalized_class_name",
    "nearest_match",
    "no_face_dict",
    "rounded_points",
    "shown",
]

UNKNOWN = "unknown"
REJECTED = "rejected"  # a face that failed a quality check and was not classified
NO_FACE = "no_face"  # the record of a photo in which no face was found
RESERVED_LABELS = (UNKNOWN, REJECTED, NO_FACE)

# ---------------------------------------------------------------- class names

MAX_CLASS_NAME_LENGTH = 64
CLASS_NAME_RULE = (
    f"a class name is a non-empty string of at most {MAX_CLASS_NAME_LENGTH} printable characters without "
    f"surrounding spaces, with no / or \\ (or look-alikes), not . or .., not a reserved label "
    f"({', '.join(RESERVED_LABELS)}), and not like another class's name"
)
_SLASHES = "/\\\u2215\u2044\u29f8\u29f9\u2216\ufe68"
"""The path separators and the characters drawn like them that NFKC leaves as they are."""


def shown(value: object, limit: int = 80) -> str:
    """``repr`` of user input for an error message, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``count`` and ``noun``, plural unless the count is one: ``1 image``, ``3 images``
    (``plural`` when the plural is not ``noun + "s"``)."""
    return f"{count} {noun}" if count == 1 else f"{count} {plural or noun + 's'}"


def normalized_class_name(name: object) -> object:
    """``name`` in Unicode NFKC form when it is a string (how classes are stored and looked up: an
    accent written as one character or as a combining mark is one name), else unchanged."""
    return unicodedata.normalize("NFKC", name) if isinstance(name, str) else name


def class_name_problem(name: object) -> str | None:
    """Why ``name`` (in NFKC form, :func:`normalized_class_name`) cannot name a class (None when it can):
    see :data:`CLASS_NAME_RULE`; whether it looks like another class's is the bank's to say.

    Names end up in URLs (``/v1/classes/{name}``), file names, CSV headers and log
    lines, so they are short, printable, free of path separators and never one of the
    labels a result can have besides a class.
    """
    if not isinstance(name, str):
        return f"it is not a string but {type(name).__name__}"
    if not name.strip():
        return "it is empty"
    if len(name) > MAX_CLASS_NAME_LENGTH:
        return f"it is {len(name)} characters long"
    if name != name.strip():
        return "it has surrounding spaces"
    if not name.isprintable():
        return "it holds a character that is not printable"
    if any(c in _SLASHES for c in name):
        return "it holds a / or \\, or a character drawn like one"
    if name in (".", ".."):
        return "it is a path step"
    if name in RESERVED_LABELS:
        return "it is a reserved label"
    return None


def check_class_name(name: object) -> str:
    """``name`` in NFKC form when it may name a class, else ``ValueError`` saying why and what the rule is."""
    normalized = normalized_class_name(name)
    problem = class_name_problem(normalized)
    if problem is not None:
        raise InvalidInput(f"{shown(name)} cannot be a class name ({problem}): {CLASS_NAME_RULE}")
    return normalized  # type: ignore[return-value]


# ---------------------------------------------------------------- the accept rule

COSINE_SCORE = "cosine"
MAHALANOBIS_SCORE = "relative_mahalanobis"
SCORES = {
    COSINE_SCORE: "the cosine to the nearest center (the paper's rule; thresholds in [-1, 1], the paper's is 0.6)",
    MAHALANOBIS_SCORE: "the relative Mahalanobis score of spherefer.bank.unknown (higher is more known; thresholds "
    "are calibrated per model)",
}
"""The scores a bank's thresholds can be on, by name, with what they are."""


@dataclass(frozen=True)
class Decision:
    """The accept rule's answer per face: the ``nearest`` class index, its unknown ``score``
    and the accepted class index (``index``, -1 where the face is unknown)."""

    nearest: np.ndarray
    score: np.ndarray
    index: np.ndarray

    @property
    def accepted(self) -> np.ndarray:
        return self.index >= 0


def nearest_match(cosines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index, cosine) of the nearest center of each face in (N, C) ``cosines`` (or one face's (C,)); ties go to the
    first class."""
    cos = np.asarray(cosines)
    nearest = cos.argmax(axis=-1)
    return nearest, np.take_along_axis(cos, np.expand_dims(nearest, -1), axis=-1).squeeze(-1)


def decide(
    cosines: np.ndarray, thresholds: np.ndarray, scores: np.ndarray | None = None, ranking: np.ndarray | None = None
) -> Decision:
    """The accept rule on (N, C) ``cosines`` (or one face's (C,)) against per-class ``thresholds`` (C,).

    A face's class is the argmax of ``ranking`` (the decision rule's values, :mod:`spherefer.bank.decision`;
    by default the cosines: the nearest center), ties going to the first class. It is accepted
    when its unknown score is at least that class's threshold; otherwise it is unknown
    (index -1). The score is ``scores`` (N,) (or one face's ()), or the cosine to the
    class's center when None (the paper's rule). The arrays keep their dtypes: the
    comparison is exactly ``score >= threshold``.
    """
    cos = np.asarray(cosines)
    limits = np.asarray(thresholds)
    if cos.shape[-1] != limits.shape[-1] or limits.ndim != 1 or cos.ndim not in (1, 2):
        raise InvalidInput(f"need (N, C) or (C,) cosines and (C,) thresholds, got {cos.shape} and {limits.shape}")
    nearest = np.asarray(cos if ranking is None else ranking).argmax(axis=-1)
    score = np.take_along_axis(cos, np.expand_dims(nearest, -1), axis=-1).squeeze(-1)  # the class's cosine
    if scores is not None:
        score = np.asarray(scores)
        if score.shape != nearest.shape:
            raise InvalidInput(f"need one score per face: {nearest.shape} faces, scores of shape {score.shape}")
    index = np.where(score >= limits[nearest], nearest, -1)
    return Decision(nearest, score, index)


def label_of(index: int, names: Sequence[str]) -> str:
    """The label of an accepted class index: its name, or ``unknown`` for -1."""
    return UNKNOWN if index < 0 else names[index]


# ---------------------------------------------------------------- output records


@dataclass
class Prediction:
    """One face's result: the label (or ``unknown``), the ``nearest`` class and its ``cosine``,
    the unknown ``score`` the threshold was compared with (the cosine itself under the paper's
    rule), and per-class cosines and probabilities."""

    label: str
    score: float
    cosine: float
    nearest: str
    cosines: dict[str, float]
    probabilities: dict[str, float]

    @property
    def is_unknown(self) -> bool:
        return self.label == UNKNOWN

    def to_dict(self, digits: int = 4) -> dict[str, Any]:
        """The record fields of a classified face: ``label``, ``nearest`` (the class it is nearest to,
        also when the label is ``unknown``), its ``cosine``, ``score`` and ``probabilities`` (rounded)."""
        return {
            "label": self.label,
            "nearest": self.nearest,
            "cosine": round(self.cosine, digits),
            "score": round(self.score, digits),
            "probabilities": {name: round(p, digits) for name, p in self.probabilities.items()},
        }

    @property
    def caption(self) -> str:
        """The label as annotations write it: ``happy``, or ``unknown (sad)`` naming the nearest class."""
        return f"{self.label} ({self.nearest})" if self.is_unknown else self.label


@dataclass
class Classification:
    """Batch result of :meth:`CenterBank.classify`; iterate it for per-row :class:`Prediction`."""

    names: list[str]
    labels: list[str]
    indices: np.ndarray  # (N,) index of the winning class, -1 where unknown
    scores: np.ndarray  # (N,) unknown score (the best cosine under the paper's rule)
    cosines: np.ndarray  # (N, C) float32
    probabilities: np.ndarray  # (N, C) softmax of scale * the decision rule's values (scale * cosine: the paper's rule)
    nearest: np.ndarray  # (N,) index of each face's class under the decision rule, before the threshold

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, row: int) -> Prediction:
        cos, prob = self.cosines[row].tolist(), self.probabilities[row].tolist()
        nearest = int(self.nearest[row])
        return Prediction(
            label=self.labels[row],
            score=float(self.scores[row]),
            cosine=cos[nearest],
            nearest=self.names[nearest],
            cosines=dict(zip(self.names, cos)),
            probabilities=dict(zip(self.names, prob)),
        )

    def __iter__(self) -> Iterator[Prediction]:
        return (self[i] for i in range(len(self)))


FACE_FIELDS = (
    "face",
    "track",
    "box",
    "landmarks",
    "detector_score",
    "label",
    "raw_label",
    "nearest",
    "reason",
    "cosine",
    "score",
    "probabilities",
    "quality",
)
"""The keys of every face record (:func:`face_dict`, :func:`no_face_dict`), in order."""


def rounded_points(points: Mapping[str, Sequence[float] | np.ndarray], digits: int = 1) -> dict[str, list[float]]:
    """Named (x, y) points as ``{name: [x, y]}`` rounded to ``digits`` (how records write landmarks)."""
    return {name: [round(float(x), digits), round(float(y), digits)] for name, (x, y) in points.items()}


def face_dict(
    index: int,
    track: int | None,
    box: Sequence[float] | np.ndarray,
    landmarks: Mapping[str, Sequence[float] | np.ndarray],
    detector_score: float | None,
    prediction: Prediction | None,
    raw_prediction: Prediction | None,
    issues: Sequence[str],
    quality: Mapping[str, Any],
    digits: int = 4,
) -> dict[str, Any]:
    """One detected face as a JSON-ready record (keys :data:`FACE_FIELDS`).

    ``label`` is the prediction's (a class or ``unknown``), or ``rejected`` when the face
    was not classified (``issues`` then give the ``reason``); ``raw_label`` is the
    frame's own label before temporal smoothing (``raw_prediction``; the label itself
    when there was no smoothing).
    """
    label = prediction.label if prediction is not None else REJECTED
    empty = {"nearest": None, "cosine": None, "score": None, "probabilities": None}
    scores = prediction.to_dict(digits) if prediction is not None else empty
    return {
        "face": index,
        "track": track,
        "box": [round(float(v), 1) for v in box],
        "landmarks": rounded_points(landmarks),
        "detector_score": None if detector_score is None else round(float(detector_score), digits),
        "label": label,
        "raw_label": raw_prediction.label if raw_prediction is not None else label,
        "nearest": scores["nearest"],
        "reason": "; ".join(issues) or None,
        "cosine": scores["cosine"],
        "score": scores["score"],
        "probabilities": scores["probabilities"],
        "quality": dict(quality),
    }


def no_face_dict() -> dict[str, Any]:
    """The record of a photo or frame without a face: :data:`FACE_FIELDS`, label and raw label ``no_face``."""
    record: dict[str, Any] = dict.fromkeys(FACE_FIELDS)
    record.update(label=NO_FACE, raw_label=NO_FACE, reason="no face found")
    return record


def frame_records(
    source: str, faces: Sequence[Mapping[str, Any]], frame: int | None = None, time: float | None = None
) -> list[dict[str, Any]]:
    """The records of one photo or video frame: ``source``, ``frame`` and ``time`` (None for
    photos; seconds, rounded to ms) followed by each face's fields, or one :func:`no_face_dict`."""
    where = {"source": source, "frame": frame, "time": None if time is None else round(time, 3)}
    return [{**where, **face} for face in faces] if faces else [{**where, **no_face_dict()}]
