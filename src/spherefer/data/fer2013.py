"""FER2013, in the Kaggle image-folder layout and as the original ``fer2013.csv``.

Both readers use the official splits ``train`` (Training), ``publictest``
(PublicTest, the validation split) and ``privatetest`` (PrivateTest, the test
split), and FER2013's own class order: angry, disgust, fear, happy, sad,
surprise, neutral (labels 0..6, the first seven of ``EXPRESSIONS``).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Unpack

import numpy as np
from PIL import Image

from spherefer.core.errors import InvalidInput
from spherefer.data.base import (
    DatasetOptions,
    ExpressionDataset,
    ImageFile,
    ImageFileDataset,
    check_choice,
    class_of_folder,
    parse_int,
    require_dir,
    require_file,
)
from spherefer.data.vocabulary import EXPRESSIONS

__all__ = ["FER2013_CLASSES", "FER2013_SPLITS", "FER2013Folder", "FER2013CSV"]

FER2013_CLASSES: tuple[str, ...] = EXPRESSIONS[:7]
"""FER2013 classes in label order 0..6."""

FER2013_SPLITS: dict[str, tuple[str, str]] = {
    "train": ("train", "Training"),
    "publictest": ("test", "PublicTest"),
    "privatetest": ("test", "PrivateTest"),
}
"""Split name -> (image folder, file-name prefix in the folder layout / ``Usage`` value in the CSV)."""

_USAGES = tuple(usage for _, usage in FER2013_SPLITS.values())
"""The CSV's ``Usage`` values."""

_IMAGE_SIZE = 48

_FOLDER_LAYOUT = """\
  ROOT/train/<class>/Training_<id>.jpg
  ROOT/test/<class>/PublicTest_<id>.jpg
  ROOT/test/<class>/PrivateTest_<id>.jpg
  (<class>: angry disgust fear happy neutral sad surprise)"""

_CSV_LAYOUT = """\
  fer2013.csv with header emotion,pixels,Usage
  emotion: 0..6; pixels: 2304 space-separated ints 0..255; Usage: Training, PublicTest or PrivateTest"""


class FER2013Folder(ImageFileDataset):
    """FER2013 in the Kaggle image-folder layout (``root/train/<class>/Training_*.jpg``, ``root/test/<class>/...``).

    ``ids`` are paths relative to ``root`` (file names alone are not unique: a few
    Training ids occur in two class folders with different images).
    """

    def __init__(self, root: str | Path, split: str = "train", **options: Unpack[DatasetOptions]) -> None:
        self.split = check_choice("FER2013 split", split, tuple(FER2013_SPLITS))
        folder_name, prefix = FER2013_SPLITS[split]
        root = Path(root)
        split_folder = require_dir(root / folder_name, _FOLDER_LAYOUT)
        records, labels = [], []
        for class_folder in sorted(path for path in split_folder.iterdir() if path.is_dir()):
            label = class_of_folder(class_folder, FER2013_CLASSES, _FOLDER_LAYOUT)
            for path in sorted(class_folder.glob(f"{prefix}_*.jpg")):
                records.append(ImageFile(path))
                labels.append(label)
        if not records:
            raise FileNotFoundError(
                f"no {prefix}_*.jpg images in {split_folder}/<class>/; expected layout:\n{_FOLDER_LAYOUT}"
            )
        super().__init__(root, records, labels, FER2013_CLASSES, **options)


class FER2013CSV(ExpressionDataset[int]):
    """FER2013 from the original ``fer2013.csv`` (``emotion,pixels,Usage``).

    The selected split's pixels are decoded once, at construction. ``rows[i]`` is
    sample ``i``'s 0-based data row in the CSV (the index FER+'s
    ``fer2013new.csv`` rows follow); ``ids`` are ``"fer2013.csv:<row>"``.
    """

    def __init__(self, csv_path: str | Path, split: str = "train", **options: Unpack[DatasetOptions]) -> None:
        self.split = check_choice("FER2013 split", split, tuple(FER2013_SPLITS))
        self.csv_path = require_file(Path(csv_path), _CSV_LAYOUT)
        usage = FER2013_SPLITS[split][1]
        self._pixels: dict[int, np.ndarray] = {}
        labels = []
        with self.csv_path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            missing = {"emotion", "pixels", "Usage"} - set(reader.fieldnames or ())
            if missing:
                raise InvalidInput(
                    f"{self.csv_path}: header lacks column(s) {', '.join(sorted(missing))}; expected:\n{_CSV_LAYOUT}"
                )
            for row_index, row in enumerate(reader):
                where = f"{self.csv_path}, line {reader.line_num}"
                if None in row:
                    raise InvalidInput(f"{where}: more fields than the header's {len(reader.fieldnames or ())}")
                row_usage = row["Usage"]
                if row_usage not in _USAGES:
                    raise InvalidInput(f"{where}: unknown Usage {row_usage!r}; expected one of {', '.join(_USAGES)}")
                if row_usage != usage:
                    continue
                labels.append(_parse_emotion(row["emotion"], where))
                self._pixels[row_index] = _parse_pixels(row["pixels"], where)
        super().__init__(list(self._pixels), labels, FER2013_CLASSES, **options)

    @property
    def rows(self) -> list[int]:
        """Each sample's 0-based data row in the CSV."""
        return list(self.records)

    def _load_image(self, record: int) -> Image.Image:
        return Image.fromarray(self._pixels[record])

    def _record_id(self, record: int) -> str:
        return f"{self.csv_path.name}:{record}"


def _parse_emotion(text: str | None, where: str) -> str:
    """The class name of a CSV ``emotion`` field (0..6)."""
    label = parse_int(text or "", "emotion", where)
    if not 0 <= label < len(FER2013_CLASSES):
        raise InvalidInput(f"{where}: emotion {label} is outside 0..{len(FER2013_CLASSES) - 1}")
    return FER2013_CLASSES[label]


def _parse_pixels(text: str | None, where: str) -> np.ndarray:
    """A 48x48 uint8 image from a CSV ``pixels`` field."""
    try:
        values = np.array((text or "").split(), dtype=np.int64)
    except ValueError:
        raise InvalidInput(f"{where}: pixels are not all integers") from None
    if values.size != _IMAGE_SIZE * _IMAGE_SIZE:
        raise InvalidInput(f"{where}: {values.size} pixel values, expected {_IMAGE_SIZE * _IMAGE_SIZE}")
    if values.min() < 0 or values.max() > 255:
        raise InvalidInput(f"{where}: pixel values outside 0..255")
    return values.astype(np.uint8).reshape(_IMAGE_SIZE, _IMAGE_SIZE)
