"""A generic class-per-folder dataset (``root/<class>/<image>``)."""

from __future__ import annotations

from pathlib import Path
from typing import Unpack

from spherefer.core.errors import InvalidInput
from spherefer.data.base import DatasetOptions, ImageFile, ImageFileDataset, require_dir
from spherefer.data.vocabulary import canonical_name, is_expression_name

__all__ = ["IMAGE_SUFFIXES", "ImageFolder"]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
"""File suffixes (any case) :class:`ImageFolder` reads as images; other files are ignored."""

_LAYOUT = "  ROOT/<class>/<image>.{jpg,jpeg,png,bmp,webp}"


class ImageFolder(ImageFileDataset):
    """Images in one sub-folder per class.

    A folder named after a known expression ("Anger", "happiness") gives its
    canonical name ("angry", "happy"); any other folder name is kept verbatim.
    ``classes`` are these names sorted alphabetically.
    """

    def __init__(self, root: str | Path, **options: Unpack[DatasetOptions]) -> None:
        root = require_dir(Path(root), _LAYOUT)
        folder_of_class: dict[str, Path] = {}
        records, labels = [], []
        for class_folder in sorted(path for path in root.iterdir() if path.is_dir()):
            name = canonical_name(class_folder.name) if is_expression_name(class_folder.name) else class_folder.name
            if name in folder_of_class:
                raise InvalidInput(f"folders {folder_of_class[name]} and {class_folder} both name class {name!r}")
            folder_of_class[name] = class_folder
            images = sorted(
                path for path in class_folder.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
            )
            records += [ImageFile(path) for path in images]
            labels += [name] * len(images)
        if not records:
            raise FileNotFoundError(f"no images in {root}/<class>/; expected layout:\n{_LAYOUT}")
        super().__init__(root, records, labels, sorted(folder_of_class), **options)
