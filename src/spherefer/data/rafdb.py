"""RAF-DB (Real-world Affective Faces), basic and compound subsets, aligned 100x100 images."""

from __future__ import annotations

from pathlib import Path
from typing import Unpack

from spherefer.core.errors import InvalidInput
from spherefer.data.base import (
    DatasetOptions,
    ImageFile,
    ImageFileDataset,
    check_choice,
    parse_int,
    read_label_lines,
    require_dir,
    require_file,
)
from spherefer.data.vocabulary import COMPOUND_EXPRESSIONS, EXPRESSIONS

__all__ = ["RAFDB_BASIC_CODES", "RAFDB_SPLITS", "RAFDB_SUBSETS", "RAFDB"]

RAFDB_BASIC_CODES: tuple[str, ...] = ("surprise", "fear", "disgust", "happy", "sad", "angry", "neutral")
"""Canonical class of each RAF-DB basic label 1..7."""

RAFDB_SPLITS = ("train", "test")

RAFDB_SUBSETS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "basic": (RAFDB_BASIC_CODES, EXPRESSIONS[:7]),
    "compound": (COMPOUND_EXPRESSIONS, COMPOUND_EXPRESSIONS),
}
"""Subset -> (class of each label 1..K, class order of the dataset)."""

_LAYOUT = """\
  ROOT/EmoLabel/list_patition_label.txt   lines "<split>_<number>.jpg <label>" (basic: 1..7, compound: 1..11)
  ROOT/Image/aligned/<split>_<number>_aligned.jpg
  (the compound subset is a separate ROOT with the same layout)"""


class RAFDB(ImageFileDataset):
    """RAF-DB ``split`` ("train" or "test") of the ``subset`` ("basic" or "compound") rooted at ``root``.

    Basic ``classes`` follow ``EXPRESSIONS`` order (angry, disgust, fear, happy,
    sad, surprise, neutral); compound ``classes`` follow RAF-DB's label order
    (``COMPOUND_EXPRESSIONS``: happily_surprised, happily_disgusted, ...).
    """

    def __init__(
        self, root: str | Path, split: str = "train", subset: str = "basic", **options: Unpack[DatasetOptions]
    ) -> None:
        self.split = check_choice("RAF-DB split", split, RAFDB_SPLITS)
        self.subset = check_choice("RAF-DB subset", subset, tuple(RAFDB_SUBSETS))
        label_codes, class_order = RAFDB_SUBSETS[subset]
        root = Path(root)
        label_file = require_file(root / "EmoLabel" / "list_patition_label.txt", _LAYOUT)
        image_folder = require_dir(root / "Image" / "aligned", _LAYOUT)
        records, labels = [], []
        for where, (name, label_text) in read_label_lines(label_file, ("image_name", "label")):
            label = parse_int(label_text, "label", where)
            if not 1 <= label <= len(label_codes):
                raise InvalidInput(f"{where}: label {label} is outside 1..{len(label_codes)} for the {subset} subset")
            if name.startswith(f"{split}_"):
                records.append(ImageFile(image_folder / f"{Path(name).stem}_aligned.jpg"))
                labels.append(label_codes[label - 1])
        if not records:
            raise InvalidInput(f"{label_file} lists no {split}_*.jpg images")
        super().__init__(root, records, labels, class_order, **options)
