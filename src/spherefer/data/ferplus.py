"""FER+ (Microsoft's 10-rater relabelling of the FER2013 pixels).

On disk::

    ROOT/data/FER2013{Train,Valid,Test}/fer<number>.png + label.csv
    ROOT/fer2013new.csv

``label.csv`` rows are ``name, box, <10 vote counts>`` with the votes in
:data:`FERPLUS_VOTE_COLUMNS` order; it has no header. ``fer2013new.csv`` has a
header ``Usage,Image name,<10 vote columns>`` and one row per ``fer2013.csv`` row
(the image name is empty where FER+ dropped the image).

The vote rules beyond the majority label live here too: :func:`compound_pair` /
:func:`compound_sets` (faces whose raters split between two basic emotions, the
compound classes of the open-vocabulary benchmarks) and :func:`is_unknown_face`.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple, Unpack

import numpy as np
from PIL import Image

from spherefer.core.errors import InvalidInput
from spherefer.data.base import (
    DatasetOptions,
    ImageFile,
    ImageFileDataset,
    check_choice,
    require_dir,
    require_file,
)
from spherefer.data.vocabulary import EXPRESSIONS, canonical_name

__all__ = [
    "BASIC_EMOTIONS",
    "FERPLUS_SPLITS",
    "FERPLUS_VOTE_COLUMNS",
    "FER2013NewRow",
    "FERPlus",
    "FERPlusRow",
    "compound_name",
    "compound_pair",
    "compound_sets",
    "is_unknown_face",
    "load_unknown_faces",
    "majority_emotion",
    "read_fer2013new",
]

FERPLUS_VOTE_COLUMNS: tuple[str, ...] = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
    "unknown",
    "NF",
)
"""The 10 vote columns of ``label.csv`` / ``fer2013new.csv``, in file order (NF = not a face)."""

_EMOTION_COLUMNS = 8
"""The first 8 vote columns are emotions; the last two are ``unknown`` and ``NF``."""

_COLUMN_CLASSES: tuple[str, ...] = tuple(canonical_name(name) for name in FERPLUS_VOTE_COLUMNS[:_EMOTION_COLUMNS])
"""Canonical class name of each emotion vote column."""

_COMPOUND_COLUMNS = ("happiness", "surprise", "sadness", "anger", "disgust", "fear")
BASIC_EMOTIONS: tuple[str, ...] = tuple(canonical_name(column) for column in _COMPOUND_COLUMNS)
"""The six basic emotions compounds are made of (canonical names, in FER+ column order)."""

_BASIC_INDEX = [FERPLUS_VOTE_COLUMNS.index(column) for column in _COMPOUND_COLUMNS]
_UNKNOWN_INDEX = [FERPLUS_VOTE_COLUMNS.index(column) for column in ("unknown", "NF")]

FERPLUS_SPLITS: dict[str, str] = {"train": "FER2013Train", "valid": "FER2013Valid", "test": "FER2013Test"}
"""Split name -> folder under ``ROOT/data``."""

_TARGETS = ("majority", "votes")

_LAYOUT = """\
  ROOT/data/FER2013Train/fer<number>.png + label.csv
  ROOT/data/FER2013Valid/fer<number>.png + label.csv
  ROOT/data/FER2013Test/fer<number>.png + label.csv
  label.csv rows (no header): name,box,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"""


class FERPlusRow(NamedTuple):
    """One ``label.csv`` row: image file name and the 10 vote counts."""

    name: str
    votes: tuple[int, ...]


class FER2013NewRow(NamedTuple):
    """One ``fer2013new.csv`` row.

    ``row`` is the 0-based ``fer2013.csv`` row it labels; ``usage`` is Training,
    PublicTest or PrivateTest; ``name`` is the FER+ image file name, empty where
    FER+ has no image for that row. Note the file number in ``name`` is not ``row``.
    """

    row: int
    usage: str
    name: str
    votes: tuple[int, ...]


def majority_emotion(votes: Sequence[int]) -> str | None:
    """The canonical class with strictly the most of the 10 ``votes``; None when the top is tied, unknown or NF."""
    top = max(votes)
    winners = [column for column, count in enumerate(votes) if count == top]
    if len(winners) > 1 or winners[0] >= _EMOTION_COLUMNS:
        return None
    return _COLUMN_CLASSES[winners[0]]


def _check_votes(votes: Sequence[int]) -> None:
    if len(votes) != len(FERPLUS_VOTE_COLUMNS):
        raise InvalidInput(
            f"expected {len(FERPLUS_VOTE_COLUMNS)} FER+ vote counts ({', '.join(FERPLUS_VOTE_COLUMNS)}), got "
            f"{len(votes)}"
        )


def compound_pair(votes: Sequence[int], min_votes: int = 3) -> tuple[str, str] | None:
    """The compound (A, B) of one FER+ row of 10 vote counts, or None.

    Among the six basic emotions, the two most voted must each have at least
    ``min_votes`` votes and the third most voted strictly fewer than the second.
    A and B are canonical names in :data:`EXPRESSIONS` order.
    """
    _check_votes(votes)
    counts = [votes[i] for i in _BASIC_INDEX]
    order = sorted(range(len(counts)), key=lambda i: -counts[i])
    second, third = counts[order[1]], counts[order[2]]
    if second < min_votes or third >= second:
        return None
    first, other = sorted((BASIC_EMOTIONS[order[0]], BASIC_EMOTIONS[order[1]]), key=EXPRESSIONS.index)
    return first, other


def compound_name(pair: Sequence[str]) -> str:
    """The class name of a compound: its parts joined by ``+`` (``happy+surprise``)."""
    return "+".join(pair)


def compound_sets(rows: Sequence[Sequence[int]], min_faces: int = 20, min_votes: int = 3) -> dict[str, np.ndarray]:
    """Row indices of every compound (:func:`compound_pair`) with at least ``min_faces`` rows, most frequent first."""
    groups: dict[str, list[int]] = {}
    for index, votes in enumerate(rows):
        pair = compound_pair(votes, min_votes)
        if pair is not None:
            groups.setdefault(compound_name(pair), []).append(index)
    kept = sorted(
        (name for name, members in groups.items() if len(members) >= min_faces), key=lambda n: (-len(groups[n]), n)
    )
    return {name: np.array(groups[name]) for name in kept}


def is_unknown_face(votes: Sequence[int]) -> bool:
    """Whether raters called the face unknown: the unknown and NF votes together outnumber every emotion column."""
    _check_votes(votes)
    pooled = sum(votes[i] for i in _UNKNOWN_INDEX)
    return pooled > max(v for i, v in enumerate(votes) if i not in _UNKNOWN_INDEX)


def load_unknown_faces(root: str | Path, split: str, size: int = 48) -> np.ndarray:
    """The faces of ``split`` that raters called unknown or not a face (:func:`is_unknown_face`),
    as greyscale uint8 ``(N, size, size)``: the outliers of outlier-exposure training."""
    folder = Path(root) / "data" / FERPLUS_SPLITS[check_choice("FER+ split", split, tuple(FERPLUS_SPLITS))]
    faces = []
    for row in FERPlus.raw_table(root, split):
        if is_unknown_face(row.votes):
            with Image.open(require_file(folder / row.name, _LAYOUT)) as image:
                faces.append(
                    np.asarray(image.convert("L").resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)
                )
    return np.stack(faces) if faces else np.empty((0, size, size), dtype=np.uint8)


def _parse_votes(fields: Sequence[str], where: str) -> tuple[int, ...]:
    """The 10 vote counts from their CSV fields."""
    if len(fields) != len(FERPLUS_VOTE_COLUMNS):
        raise InvalidInput(
            f"{where}: {len(fields)} vote columns, expected {len(FERPLUS_VOTE_COLUMNS)} "
            f"({', '.join(FERPLUS_VOTE_COLUMNS)})"
        )
    try:
        votes = tuple(int(field) for field in fields)
    except ValueError:
        raise InvalidInput(f"{where}: vote counts {list(fields)} are not all integers") from None
    if min(votes) < 0 or sum(votes) == 0:
        raise InvalidInput(f"{where}: vote counts {list(votes)} must be non-negative with at least one vote")
    return votes


def read_fer2013new(path: str | Path) -> list[FER2013NewRow]:
    """Every row of FER+'s ``fer2013new.csv``, including those without an image."""
    path = require_file(Path(path), "  fer2013new.csv with header Usage,Image name," + ",".join(FERPLUS_VOTE_COLUMNS))
    rows = []
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or [column.strip() for column in header[:2]] != ["Usage", "Image name"]:
            raise InvalidInput(f"{path}, line 1: header {header} does not start with Usage,Image name")
        for row_index, fields in enumerate(reader):
            where = f"{path}, line {reader.line_num}"
            if len(fields) < 2:
                raise InvalidInput(f"{where}: expected Usage,Image name and 10 vote columns, got {fields}")
            rows.append(FER2013NewRow(row_index, fields[0], fields[1].strip(), _parse_votes(fields[2:], where)))
    return rows


class FERPlus(ImageFileDataset):
    """FER+ images of one split with majority-vote labels.

    Majority protocol: an image is kept when one of the 10 vote columns has
    strictly the most votes and that column is an emotion (not ``unknown`` or
    ``NF``); its label is that emotion. ``include_contempt=False`` also drops the
    contempt-majority images. ``classes`` follow ``EXPRESSIONS`` order (angry,
    disgust, fear, happy, sad, surprise, neutral[, contempt]), so indices 0..6
    match FER2013's labels.

    ``raw_votes`` (N, 10) int holds each kept image's vote counts in
    :data:`FERPLUS_VOTE_COLUMNS` order; ``votes`` (N, len(classes)) float32 is the
    distribution over ``classes`` (other columns removed, renormalised).
    ``target="votes"`` makes ``dataset[i]`` return ``(image, votes[i])`` instead of
    ``(image, targets[i])``. :meth:`raw_table` gives every row, dropped ones included.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        target: str = "majority",
        include_contempt: bool = True,
        **options: Unpack[DatasetOptions],
    ) -> None:
        self.split = check_choice("FER+ split", split, tuple(FERPLUS_SPLITS))
        self.target = check_choice("FER+ target", target, _TARGETS)
        root = Path(root)
        folder = root / "data" / FERPLUS_SPLITS[split]
        records, labels, raw_votes = [], [], {}
        for row in self.raw_table(root, split):
            label = majority_emotion(row.votes)
            if label is not None:
                records.append(ImageFile(folder / row.name))
                labels.append(label)
                raw_votes[folder / row.name] = row.votes
        class_order = EXPRESSIONS if include_contempt else tuple(name for name in EXPRESSIONS if name != "contempt")
        super().__init__(root, records, labels, class_order, **options)
        self.raw_votes: np.ndarray = np.array([raw_votes[path] for path in self.paths], dtype=np.int64).reshape(
            -1, len(FERPLUS_VOTE_COLUMNS)
        )
        class_votes = self.raw_votes[:, [_COLUMN_CLASSES.index(name) for name in self.classes]].astype(np.float32)
        self.votes: np.ndarray = class_votes / class_votes.sum(axis=1, keepdims=True)

    @staticmethod
    def raw_table(root: str | Path, split: str) -> list[FERPlusRow]:
        """Every ``label.csv`` row of ``split``, including images the majority protocol drops."""
        check_choice("FER+ split", split, tuple(FERPLUS_SPLITS))
        folder = require_dir(Path(root) / "data" / FERPLUS_SPLITS[split], _LAYOUT)
        path = require_file(folder / "label.csv", _LAYOUT)
        rows = []
        with path.open(newline="") as handle:
            reader = csv.reader(handle)
            for fields in reader:
                where = f"{path}, line {reader.line_num}"
                if len(fields) < 2 or not fields[0].strip():
                    raise InvalidInput(f"{where}: expected name,box and 10 vote columns, got {fields}")
                rows.append(FERPlusRow(fields[0].strip(), _parse_votes(fields[2:], where)))
        return rows

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        image, label = super().__getitem__(index)
        return (image, self.votes[index]) if self.target == "votes" else (image, label)
