"""The faces of a dataset for the sphere pictures and the spread of each class: embedded, labelled, optionally
subsampled."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spherefer.bank.centers import CenterBank
from spherefer.core.errors import InvalidInput

__all__ = ["FaceSet", "check_class_names", "load_faces"]


@dataclass
class FaceSet:
    """Unit embeddings of a dataset's faces with their class names and file ids."""

    data: str
    embeddings: np.ndarray
    labels: list[str]
    files: list[str]
    classes: list[str] = field(default_factory=list)


def check_class_names(bank: CenterBank, classes: Sequence[str] | None, argument: str = "classes") -> list[str] | None:
    """``classes`` as a list, or None when it names none; ValueError when a name is not a class of ``bank`` or repeats.

    ``argument`` is what the error messages call ``classes`` (a command line may pass its option's name).
    """
    if not classes:
        return None
    unknown = [name for name in classes if name not in bank.names]
    if unknown:
        raise InvalidInput(
            f"unknown class {', '.join(map(repr, unknown))} in {argument}; the model's classes are "
            f"{', '.join(bank.names)}"
        )
    if len(set(classes)) != len(classes):
        raise InvalidInput(f"a class is named twice in {argument}: {', '.join(classes)}")
    return list(classes)


def load_faces(
    recognizer: Any,
    data: str,
    classes: Sequence[str] | None = None,
    max_points: int | None = None,
    seed: int = 0,
    batch_size: int = 512,
) -> FaceSet:
    """Embed the faces of dataset ``data`` (``FORMAT:PATH[:SPLIT]``) whose classes the bank knows.

    ``classes`` (bank class names) keeps only those; ``max_points`` draws that many faces
    at random (``seed``) before any image is read. Raises ValueError when the data has no
    faces of a class the bank knows (or of the classes asked for).
    """
    from spherefer.data import open_dataset
    from spherefer.evaluation.evaluate import embed_arrays

    bank = recognizer.bank
    wanted = check_class_names(bank, classes)
    if max_points is not None and max_points < 0:
        raise InvalidInput(f"max_points must be None or 0 (all faces) or positive, got {max_points}")
    dataset = open_dataset(data)
    counts = dataset.class_counts()
    known = [name for name in dataset.classes if name in bank.names and counts.get(name, 0) > 0]
    if not known:
        raise InvalidInput(
            f"{data} has classes {dataset.classes}, none of which (with images) the model knows "
            f"({', '.join(bank.names)})"
        )
    keep = known if wanted is None else [name for name in wanted if name in known]
    if not keep:
        raise InvalidInput(f"{data} has no images of {', '.join(wanted or [])}; it has images of {', '.join(known)}")
    targets = np.asarray(dataset.targets)
    index = np.flatnonzero(np.isin(targets, [dataset.classes.index(name) for name in keep]))
    if max_points and len(index) > max_points:
        index = np.sort(np.random.default_rng(seed).choice(index, size=max_points, replace=False))
    subset = copy.copy(dataset)
    subset.records = [dataset.records[i] for i in index]
    subset.targets = [dataset.targets[i] for i in index]
    images, targets = subset.load_arrays(size=recognizer.config.input_size)
    embeddings = embed_arrays(recognizer, images, batch_size)
    labels = [dataset.classes[t] for t in targets]
    return FaceSet(data, embeddings, labels, subset.ids, keep)
