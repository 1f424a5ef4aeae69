"""How ``spherefer predict`` writes a face record as a CSV row: the columns, one per class probability."""

from __future__ import annotations

from typing import Any

from spherefer.face import LANDMARK_NAMES

__all__ = ["PHOTO_COLUMNS", "csv_row"]

PHOTO_COLUMNS = [
    "source",
    "frame",
    "time",
    "face",
    "track",
    "x0",
    "y0",
    "x1",
    "y1",
    "detector_score",
    *(f"{name}_{axis}" for name in LANDMARK_NAMES for axis in "xy"),
    "label",
    "raw_label",
    "nearest",
    "reason",
    "cosine",
    "score",
    "size",
    "sharpness",
    "yaw",
]
"""CSV columns of whole-photo and video predictions, followed by one probability column per class."""


def csv_row(row: dict[str, Any], names: list[str]) -> list[object]:
    """A photo or frame record (:func:`spherefer.core.labels.frame_records`) as a row of :data:`PHOTO_COLUMNS` + one
    probability per class."""

    def blank(value: object) -> object:
        return "" if value is None else value

    box = row["box"] or [None] * 4
    landmarks = row["landmarks"] or {}
    quality = row["quality"] or {}
    probabilities = row["probabilities"] or {}
    points = [blank((landmarks.get(name) or [None, None])[axis]) for name in LANDMARK_NAMES for axis in (0, 1)]
    return [
        row["source"],
        blank(row["frame"]),
        blank(row["time"]),
        blank(row["face"]),
        blank(row["track"]),
        *map(blank, box),
        blank(row["detector_score"]),
        *points,
        row["label"],
        row["raw_label"],
        blank(row["nearest"]),
        blank(row["reason"]),
        blank(row["cosine"]),
        blank(row["score"]),
        *(blank(quality.get(key)) for key in ("size", "sharpness", "yaw")),
        *(blank(probabilities.get(name)) for name in names),
    ]
