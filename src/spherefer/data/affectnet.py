"""AffectNet (manually annotated part): one CSV of faces per split, images under one folder."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Unpack

from spherefer.core.errors import InvalidInput
from spherefer.data.base import DatasetOptions, ImageFile, ImageFileDataset, parse_int, require_dir, require_file
from spherefer.data.vocabulary import EXPRESSIONS

__all__ = ["AFFECTNET_CODES", "AFFECTNET_COLUMNS", "AffectNet"]

AFFECTNET_CODES: tuple[str, ...] = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "angry", "contempt")
"""Canonical class of each AffectNet expression code 0..7; codes 8..10 (none, uncertain, no-face) are dropped."""

_DROPPED_CODES = range(8, 11)

AFFECTNET_COLUMNS: tuple[str, ...] = (
    "subDirectory_filePath",
    "face_x",
    "face_y",
    "face_width",
    "face_height",
    "facial_landmarks",
    "expression",
    "valence",
    "arousal",
)
"""The CSV columns, in file order."""

_LAYOUT = """\
  CSV (e.g. Manually_Annotated_file_lists/training.csv) with columns
    subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal
  (header row optional) and images at IMAGE_ROOT/<subDirectory_filePath>
  (expression: 0 neutral, 1 happy, 2 sad, 3 surprise, 4 fear, 5 disgust, 6 anger, 7 contempt, 8-10 dropped)"""


class AffectNet(ImageFileDataset):
    """The AffectNet faces listed in ``csv_path`` with expression 0..7, cropped to their face box.

    ``classes`` in ``EXPRESSIONS`` order (angry, disgust, fear, happy, sad,
    surprise, neutral, contempt). The header row is optional (AffectNet's
    validation.csv ships without one); columns must be in the documented order.
    """

    def __init__(self, csv_path: str | Path, image_root: str | Path, **options: Unpack[DatasetOptions]) -> None:
        csv_path = require_file(Path(csv_path), _LAYOUT)
        image_root = require_dir(Path(image_root), _LAYOUT)
        records, labels = [], []
        with csv_path.open(newline="") as handle:
            reader = csv.reader(handle)
            for fields in reader:
                if not fields:
                    continue
                where = f"{csv_path}, line {reader.line_num}"
                if reader.line_num == 1 and fields[:1] == [AFFECTNET_COLUMNS[0]]:
                    continue
                if len(fields) != len(AFFECTNET_COLUMNS):
                    raise InvalidInput(
                        f"{where}: {len(fields)} fields, expected {len(AFFECTNET_COLUMNS)} "
                        f"({','.join(AFFECTNET_COLUMNS)})"
                    )
                code = parse_int(fields[6], "expression", where)
                if code in _DROPPED_CODES:
                    continue
                if not 0 <= code < len(AFFECTNET_CODES):
                    raise InvalidInput(f"{where}: expression {code} is outside 0..10")
                x, y, width, height = (
                    parse_int(text, name, where) for name, text in zip(AFFECTNET_COLUMNS[1:5], fields[1:5])
                )
                if x < 0 or y < 0 or width <= 0 or height <= 0:
                    raise InvalidInput(
                        f"{where}: face box x={x} y={y} width={width} height={height} is empty or negative"
                    )
                records.append(ImageFile(image_root / fields[0], (x, y, x + width, y + height)))
                labels.append(AFFECTNET_CODES[code])
        if not records:
            raise InvalidInput(f"{csv_path} lists no faces with expression 0..7")
        super().__init__(image_root, records, labels, EXPRESSIONS, **options)
