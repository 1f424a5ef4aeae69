"""The common base of every expression dataset, and small helpers the readers share."""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Generic, NamedTuple, TypedDict, TypeVar

import numpy as np
from PIL import Image

from spherefer.core.errors import InvalidInput
from spherefer.data.vocabulary import canonical_name, is_expression_name

__all__ = ["ExpressionDataset", "DatasetOptions", "ImageFile", "ImageFileDataset", "IMAGE_MODES"]

IMAGE_MODES = ("L", "RGB")
"""PIL modes a dataset can return its images in."""

RecordT = TypeVar("RecordT")


class DatasetOptions(TypedDict, total=False):
    """The keyword options every dataset takes (see :class:`ExpressionDataset`): ``classes``
    (a subset of the dataset's classes, in that order), the image ``mode`` ("L" or "RGB")
    and a ``transform`` applied to each image."""

    classes: Sequence[str] | None
    mode: str
    transform: Callable[[Image.Image], Any] | None


_LOAD_WORKERS = 8


def require_dir(path: Path, layout: str) -> Path:
    """Return ``path`` if it is a folder, else raise FileNotFoundError describing the expected ``layout``."""
    if not path.is_dir():
        raise FileNotFoundError(f"folder not found: {path}\nexpected layout:\n{layout}")
    return path


def require_file(path: Path, layout: str) -> Path:
    """Return ``path`` if it is a file, else raise FileNotFoundError describing the expected ``layout``."""
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}\nexpected layout:\n{layout}")
    return path


def check_choice(what: str, value: str, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise ValueError listing them."""
    if value not in choices:
        raise InvalidInput(f"unknown {what} {value!r}; valid: {', '.join(choices)}")
    return value


def class_of_folder(folder: Path, allowed: Sequence[str], layout: str) -> str:
    """The canonical class a class folder is named after, or ValueError naming the folder and the ``layout``."""
    name = canonical_name(folder.name) if is_expression_name(folder.name) else None
    if name is None or name not in allowed:
        raise InvalidInput(f"class folder {folder} is not one of {', '.join(allowed)}; expected layout:\n{layout}")
    return name


def select_classes(requested: Sequence[str] | None, available: Sequence[str], dataset: str) -> list[str]:
    """Resolve a user's ``classes=`` request against a dataset's ``available`` class names.

    Names are matched verbatim first, then through :func:`canonical_name`; the result
    keeps the requested order. ``None`` selects every available class.
    """
    if requested is None:
        return list(available)
    if isinstance(requested, str):
        raise TypeError(f"classes must be a sequence of class names, not the string {requested!r}")
    selected = []
    for name in requested:
        resolved = name if name in available or not is_expression_name(name) else canonical_name(name)
        if resolved not in available:
            raise InvalidInput(f"class {name!r} is not in {dataset}; available: {', '.join(available)}")
        if resolved in selected:
            raise InvalidInput(f"class {name!r} requested twice for {dataset}")
        selected.append(resolved)
    if not selected:
        raise InvalidInput(f"classes=[] selects nothing from {dataset}; available: {', '.join(available)}")
    return selected


def read_label_lines(path: Path, field_names: Sequence[str]) -> Iterator[tuple[str, list[str]]]:
    """Yield ``(where, fields)`` for each non-blank line of a whitespace-separated label file.

    ``where`` ("<path>, line <n>") prefixes errors; a line without exactly
    ``len(field_names)`` fields raises ValueError naming the file and line.
    """
    with path.open() as handle:
        for line_number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            where = f"{path}, line {line_number}"
            if len(fields) != len(field_names):
                raise InvalidInput(
                    f"{where}: expected {len(field_names)} fields ({' '.join(field_names)}), got {line.strip()!r}"
                )
            yield where, fields


def parse_int(text: str, what: str, where: str) -> int:
    """``text`` as an int, or ValueError naming ``what`` and ``where``."""
    try:
        return int(text)
    except ValueError:
        raise InvalidInput(f"{where}: {what} {text!r} is not an integer") from None


def read_image(path: Path) -> Image.Image:
    """Open and fully load an image file (the file handle is closed on return).

    A missing file raises FileNotFoundError; a corrupt or non-image file raises ValueError naming it.
    """
    try:
        image = Image.open(path)
        image.load()
    except FileNotFoundError:
        raise
    except (OSError, SyntaxError) as err:
        raise InvalidInput(f"cannot read image {path}: {err}") from err
    return image


class ExpressionDataset(Generic[RecordT], abc.ABC):
    """A labelled set of face images; ``dataset[i]`` is ``(image, target)``.

    ``classes`` holds canonical expression names in the dataset's fixed order
    (:data:`~spherefer.data.vocabulary.EXPRESSIONS` order unless the class says
    otherwise), or the requested subset in the requested order when ``classes=``
    is given; ``targets[i]`` indexes into it. ``records`` holds what each
    subclass needs to load sample ``i``; ``ids`` names it uniquely.

    Images come back in PIL ``mode`` ("L" greyscale or "RGB"), passed through
    ``transform`` when one is given.
    """

    def __init__(
        self,
        records: Sequence[RecordT],
        labels: Sequence[str],
        class_order: Sequence[str],
        *,
        classes: Sequence[str] | None = None,
        mode: str = "L",
        transform: Callable[[Image.Image], Any] | None = None,
    ) -> None:
        self.mode = check_choice("image mode", mode, IMAGE_MODES)
        self.transform = transform
        self.classes: list[str] = select_classes(classes, class_order, type(self).__name__)
        class_index = {name: index for index, name in enumerate(self.classes)}
        kept = [
            (record, class_index[label]) for record, label in zip(records, labels, strict=True) if label in class_index
        ]
        self.records: list[RecordT] = [record for record, _ in kept]
        self.targets: list[int] = [target for _, target in kept]

    @abc.abstractmethod
    def _load_image(self, record: RecordT) -> Image.Image:
        """The image of one record, in whatever mode it is stored."""

    @abc.abstractmethod
    def _record_id(self, record: RecordT) -> str:
        """A string naming one record uniquely within the dataset."""

    @property
    def ids(self) -> list[str]:
        """One unique identifier per sample (a relative path, or a CSV row)."""
        return [self._record_id(record) for record in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        image = self._load_image(self.records[index]).convert(self.mode)
        if self.transform is not None:
            image = self.transform(image)
        return image, self.targets[index]

    def class_counts(self) -> dict[str, int]:
        """Number of samples per class, in ``classes`` order."""
        counts = np.bincount(np.asarray(self.targets, dtype=np.int64), minlength=len(self.classes))
        return {name: int(count) for name, count in zip(self.classes, counts)}

    def load_arrays(self, size: int = 48) -> tuple[np.ndarray, np.ndarray]:
        """Every image as greyscale uint8 ``(N, size, size)`` (bilinear resize if needed) and targets as int64 ``(N,)``.

        ``transform`` and ``mode`` are not applied.
        """

        def load(record: RecordT) -> np.ndarray:
            image = self._load_image(record).convert("L")
            if image.size != (size, size):
                image = image.resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(image, dtype=np.uint8)

        with ThreadPoolExecutor(_LOAD_WORKERS) as pool:
            images = list(pool.map(load, self.records))
        pixels = np.stack(images) if images else np.empty((0, size, size), dtype=np.uint8)
        return pixels, np.asarray(self.targets, dtype=np.int64)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} samples, classes={self.classes})"


class ImageFile(NamedTuple):
    """One sample stored as an image file, optionally a face box ``(left, top, right, bottom)`` inside it."""

    path: Path
    box: tuple[int, int, int, int] | None = None


class ImageFileDataset(ExpressionDataset[ImageFile]):
    """An expression dataset whose samples are image files under ``root`` (cropped to ``box`` when set)."""

    def __init__(
        self,
        root: Path,
        records: Sequence[ImageFile],
        labels: Sequence[str],
        class_order: Sequence[str],
        **options: Any,
    ) -> None:
        self.root = root
        super().__init__(records, labels, class_order, **options)

    @property
    def paths(self) -> list[Path]:
        """The image file of each sample."""
        return [record.path for record in self.records]

    def _load_image(self, record: ImageFile) -> Image.Image:
        image = read_image(record.path)
        return image if record.box is None else image.crop(record.box)

    def _record_id(self, record: ImageFile) -> str:
        relative = record.path.relative_to(self.root).as_posix()
        return relative if record.box is None else f"{relative}#{','.join(map(str, record.box))}"
