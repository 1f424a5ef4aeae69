"""The ``--data FORMAT:PATH[:SPLIT]`` syntax: one string naming a dataset on disk.

Examples::

    fer2013:~/data/fer2013:privatetest     Kaggle folder layout, PrivateTest split
    fer2013:~/data/fer2013.csv             the original CSV, train split
    ferplus:~/data/ferplus:test
    ckplus48:~/data/ckplus48
    rafdb:~/data/RAF-DB/basic:test
    rafdb:~/data/RAF-DB/compound:compound-test
    folder:~/my_faces

``PATH`` may start with ``~``; it may not contain ``:`` (everything after a second
``:`` is read as the split). Without ``SPLIT`` a format with splits opens its
training split. See :data:`DATASET_FORMATS` for each format's layout and splits.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from spherefer.core.errors import InvalidInput
from spherefer.data.affectnet import AffectNet
from spherefer.data.base import ExpressionDataset, check_choice
from spherefer.data.ckplus import CKPlus, CKPlus48
from spherefer.data.expw import ExpW
from spherefer.data.fer2013 import FER2013_SPLITS, FER2013CSV, FER2013Folder
from spherefer.data.ferplus import FERPLUS_SPLITS, FERPlus
from spherefer.data.folder import ImageFolder
from spherefer.data.rafdb import RAFDB

__all__ = [
    "DatasetFormat",
    "DataSpec",
    "DATASET_FORMATS",
    "parse_data_spec",
    "given_split",
    "data_spec_stem",
    "open_dataset",
]


class DatasetFormat(NamedTuple):
    """How to open one ``--data`` format: ``opener(path, split, **kwargs)``, its splits and their default."""

    opener: Callable[..., ExpressionDataset[Any]]
    splits: tuple[str, ...]
    default_split: str | None
    description: str


class DataSpec(NamedTuple):
    """A parsed ``FORMAT:PATH[:SPLIT]``; ``split`` is the format's default when the spec gave none."""

    format: str
    path: Path
    split: str | None

    @property
    def canonical(self) -> str:
        """The spec written out in full: ``FORMAT:PATH[:SPLIT]`` with the path expanded and the default split named."""
        return f"{self.format}:{self.path}" + (f":{self.split}" if self.split else "")


def _open_fer2013(path: Path, split: str, **kwargs: Any) -> ExpressionDataset[Any]:
    """FER2013 from the CSV when ``path`` ends in .csv, else from the Kaggle folder layout."""
    if path.suffix.lower() == ".csv":
        return FER2013CSV(path, split, **kwargs)
    return FER2013Folder(path, split, **kwargs)


def _open_rafdb(path: Path, split: str, **kwargs: Any) -> RAFDB:
    """RAF-DB with ``split`` = "train"/"test" (basic subset) or "compound-train"/"compound-test"."""
    subset, _, base_split = split.rpartition("-")
    return RAFDB(path, base_split, subset or "basic", **kwargs)


def _open_affectnet(path: Path, split: str, **kwargs: Any) -> AffectNet:
    """AffectNet from its root: ``Manually_Annotated_file_lists/<split>.csv`` + ``Manually_Annotated_Images/``."""
    csv_name = {"train": "training.csv", "validation": "validation.csv"}[split]
    return AffectNet(path / "Manually_Annotated_file_lists" / csv_name, path / "Manually_Annotated_Images", **kwargs)


def _without_split(dataset_class: Callable[..., ExpressionDataset[Any]]) -> Callable[..., ExpressionDataset[Any]]:
    """An opener for a format with no splits."""
    return lambda path, split, **kwargs: dataset_class(path, **kwargs)


DATASET_FORMATS: dict[str, DatasetFormat] = {
    "fer2013": DatasetFormat(
        _open_fer2013,
        tuple(FER2013_SPLITS),
        "train",
        "FER2013: Kaggle folders PATH/{train,test}/<class>/*.jpg, or the original fer2013.csv when PATH ends in .csv",
    ),
    "ferplus": DatasetFormat(
        FERPlus,
        tuple(FERPLUS_SPLITS),
        "train",
        "FER+ majority labels: PATH/data/FER2013{Train,Valid,Test}/*.png + label.csv",
    ),
    "ckplus48": DatasetFormat(_without_split(CKPlus48), (), None, "CK+48 crops: PATH/CK+48/<class>/S*_*_*.png"),
    "ckplus": DatasetFormat(
        _without_split(CKPlus),
        (),
        None,
        "CK+ official layout: PATH/cohn-kanade-images/S###/###/*.png + PATH/Emotion/S###/###/*_emotion.txt",
    ),
    "rafdb": DatasetFormat(
        _open_rafdb,
        ("train", "test", "compound-train", "compound-test"),
        "train",
        "RAF-DB: PATH/EmoLabel/list_patition_label.txt + PATH/Image/aligned/*_aligned.jpg (compound-*: compound "
        "labels)",
    ),
    "expw": DatasetFormat(
        _without_split(ExpW),
        (),
        None,
        "ExpW: PATH/label/label.lst + PATH/image/origin/*, faces cropped",
    ),
    "affectnet": DatasetFormat(
        _open_affectnet,
        ("train", "validation"),
        "train",
        "AffectNet: PATH/Manually_Annotated_file_lists/{training,validation}.csv + PATH/Manually_Annotated_Images/",
    ),
    "folder": DatasetFormat(
        _without_split(ImageFolder),
        (),
        None,
        "any PATH/<class>/*.{jpg,jpeg,png,bmp,webp}",
    ),
}
"""``--data`` format name -> how to open it."""


def _parts(spec: str) -> list[str]:
    """``[FORMAT, PATH]`` or ``[FORMAT, PATH, SPLIT]`` as written (checked for shape only)."""
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[1]:
        raise InvalidInput(f"dataset spec {spec!r} is not FORMAT:PATH[:SPLIT] (PATH may not contain ':')")
    return parts


def parse_data_spec(spec: str) -> DataSpec:
    """Split ``FORMAT:PATH[:SPLIT]`` and check the format and split (ValueError listing the valid ones)."""
    parts = _parts(spec)
    format_name = check_choice("dataset format", parts[0], tuple(DATASET_FORMATS))
    dataset_format = DATASET_FORMATS[format_name]
    path = Path(parts[1]).expanduser()
    if len(parts) == 2:
        return DataSpec(format_name, path, dataset_format.default_split)
    if not dataset_format.splits:
        raise InvalidInput(f"dataset format {format_name!r} has no splits, got {parts[2]!r} in {spec!r}")
    return DataSpec(format_name, path, check_choice(f"{format_name} split", parts[2], dataset_format.splits))


def given_split(spec: str) -> str | None:
    """The split ``spec`` names itself (None when it leaves the format's default)."""
    parse_data_spec(spec)
    parts = _parts(spec)
    return parts[2] if len(parts) == 3 else None


def data_spec_stem(spec: str) -> str:
    """A file stem for outputs about ``spec``: ``FORMAT``, or ``FORMAT_SPLIT`` when the spec names its split."""
    split = given_split(spec)
    return parse_data_spec(spec).format + (f"_{split}" if split else "")


def open_dataset(spec: str, **kwargs: Any) -> ExpressionDataset[Any]:
    """Open the dataset named by ``FORMAT:PATH[:SPLIT]``; ``kwargs`` go to its class (``classes=``, ``mode=``, ...)."""
    data_spec = parse_data_spec(spec)
    return DATASET_FORMATS[data_spec.format].opener(data_spec.path, data_spec.split, **kwargs)
