"""ExpW (Expression in-the-Wild): face boxes in original web images, one label per face."""

from __future__ import annotations

from pathlib import Path
from typing import Unpack

from spherefer.core.errors import InvalidInput
from spherefer.data.base import (
    DatasetOptions,
    ImageFile,
    ImageFileDataset,
    parse_int,
    read_label_lines,
    require_dir,
    require_file,
)
from spherefer.data.vocabulary import EXPRESSIONS

__all__ = ["EXPW_CLASSES", "ExpW"]

EXPW_CLASSES: tuple[str, ...] = EXPRESSIONS[:7]
"""ExpW classes in label order 0..6 (the same as FER2013's)."""

_FIELDS = ("image_name", "face_id", "top", "left", "right", "bottom", "confidence", "expression_label")

_LAYOUT = """\
  ROOT/label/label.lst   lines "image_name face_id top left right bottom confidence expression_label"
  ROOT/image/origin/<image_name>
  (expression_label: 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral)"""


class ExpW(ImageFileDataset):
    """Every labelled face of ExpW; ``dataset[i]`` is the face box cropped from its original image.

    ``classes`` in ``EXPRESSIONS`` order (angry, disgust, fear, happy, sad,
    surprise, neutral); ``ids`` are ``"image/origin/<name>#left,top,right,bottom"``.
    ExpW has no official split.
    """

    def __init__(self, root: str | Path, **options: Unpack[DatasetOptions]) -> None:
        root = Path(root)
        label_file = require_file(root / "label" / "label.lst", _LAYOUT)
        image_folder = require_dir(root / "image" / "origin", _LAYOUT)
        records, labels = [], []
        for where, fields in read_label_lines(label_file, _FIELDS):
            top, left, right, bottom = (parse_int(text, name, where) for name, text in zip(_FIELDS[2:6], fields[2:6]))
            if not (0 <= left < right and 0 <= top < bottom):
                raise InvalidInput(
                    f"{where}: face box top={top} left={left} right={right} bottom={bottom} is empty or negative"
                )
            label = parse_int(fields[7], "expression_label", where)
            if not 0 <= label < len(EXPW_CLASSES):
                raise InvalidInput(f"{where}: expression_label {label} is outside 0..{len(EXPW_CLASSES) - 1}")
            records.append(ImageFile(image_folder / fields[0], (left, top, right, bottom)))
            labels.append(EXPW_CLASSES[label])
        if not records:
            raise InvalidInput(f"{label_file} lists no faces")
        super().__init__(root, records, labels, EXPW_CLASSES, **options)
