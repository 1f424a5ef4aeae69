"""Training and validation faces in memory: a dataset's images as one uint8 tensor with its targets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from spherefer.core.errors import InvalidInput
from spherefer.data import open_dataset, parse_data_spec, subject_kfold
from spherefer.data.ferplus import load_unknown_faces
from spherefer.training.config import DataConfig
from spherefer.training.teacher import read_teacher_targets


@dataclass
class FaceArrays:
    """A dataset held in memory: uint8 images (N, 1, S, S), int64 labels (N,) and float32 targets (N, C).

    ``targets`` are one-hot rows of ``labels``, or each face's vote distribution (FER+, ``data.target=votes``).
    """

    images: Tensor
    labels: Tensor
    classes: list[str]
    targets: Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, indices: np.ndarray) -> FaceArrays:
        index = torch.as_tensor(indices, dtype=torch.long)
        return FaceArrays(self.images[index], self.labels[index], self.classes, self.targets[index])


def load_face_arrays(spec: str, classes: list[str], size: int, target: str = "majority") -> FaceArrays:
    """Load a ``FORMAT:PATH[:SPLIT]`` dataset restricted to ``classes`` into memory.

    ``target="votes"`` takes each face's vote distribution over ``classes`` as its target
    (datasets with votes only: FER+).
    """
    dataset = open_dataset(spec, classes=classes)
    images, labels = dataset.load_arrays(size=size)
    if len(labels) == 0:
        raise InvalidInput(f"{spec} has no images of the classes {classes}")
    labels_t = torch.from_numpy(labels).long()
    if target == "votes":
        votes = getattr(dataset, "votes", None)
        if votes is None:
            raise InvalidInput(f"data.target=votes needs a dataset with vote distributions (ferplus); {spec} has none")
        targets = torch.from_numpy(np.asarray(votes, dtype=np.float32))
    else:
        targets = F.one_hot(labels_t, len(dataset.classes)).float()
    return FaceArrays(torch.from_numpy(images).unsqueeze(1), labels_t, list(dataset.classes), targets)


def other_class_faces(data: DataConfig, size: int) -> Tensor:
    """The FER+ training faces raters called unknown or not a face, (N, 1, size, size) uint8: ``data.other_class``'s
    faces."""
    spec = parse_data_spec(data.train)
    if spec.format != "ferplus" or spec.split != "train":
        raise InvalidInput(
            "data.other_class learns from the FER+ faces raters called unknown; data.train must be "
            f"ferplus:ROOT:train, got {data.train}"
        )
    return torch.from_numpy(load_unknown_faces(spec.path, "train", size)).unsqueeze(1)


def with_other_class(train: FaceArrays, faces: Tensor, name: str) -> FaceArrays:
    """``train`` plus ``faces`` as the class ``name``, the last one (every target gets its column)."""
    other = len(train.classes)
    targets = torch.cat([F.pad(train.targets, (0, 1)), F.one_hot(torch.full((len(faces),), other), other + 1).float()])
    labels = torch.cat([train.labels, torch.full((len(faces),), other)])
    return FaceArrays(torch.cat([train.images, faces]), labels, [*train.classes, name], targets)


def load_train_val(data: DataConfig, size: int) -> tuple[FaceArrays, FaceArrays]:
    """Training and validation arrays: two specs, or subject-disjoint folds of one (and the other class's faces)."""
    if not data.folds:
        others = other_class_faces(data, size) if data.other_class is not None else None
        train = load_face_arrays(data.train, data.classes, size, data.target)
        if data.teacher is not None:
            taught = read_teacher_targets(
                Path(data.teacher).expanduser(), data.classes, open_dataset(data.train, classes=data.classes).ids
            )
            train.targets = (1.0 - data.teacher_weight) * train.targets + data.teacher_weight * torch.from_numpy(taught)
        if others is not None:
            train = with_other_class(train, others, data.other_class)  # type: ignore[arg-type]
        return train, load_face_arrays(data.val, data.classes, size)
    dataset = open_dataset(data.train, classes=data.classes)
    subjects = getattr(dataset, "subjects", None)
    if subjects is None:
        raise InvalidInput(f"data.folds needs a dataset with subjects (ckplus48, ckplus); {data.train} has none")
    train_idx, val_idx = subject_kfold(subjects, data.folds, seed=data.fold_seed)[data.fold]
    everything = load_face_arrays(data.train, data.classes, size, data.target)
    return everything.subset(train_idx), everything.subset(val_idx)
