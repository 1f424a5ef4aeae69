"""Teacher targets for distillation: what an ensemble of trained models says of each training face.

:func:`teacher_probabilities` averages, over the teachers and over each face and its mirror
image, the softmax of ``scale * cosine / temperature`` to each teacher's trained centers
(the head's own logits for a margin head, softened by ``temperature``). The result is kept as
a file beside the runs (:func:`write_teacher_targets`: safetensors, one row per training
face, named by the dataset's record ids), so that students are cheap to retrain:
``spherefer train ... data.teacher=FILE data.teacher_weight=0.5`` trains on
``(1 - w) * the data's targets + w * the teachers'`` (:func:`read_teacher_targets` aligns the
rows with the training faces and refuses a file made for other faces or classes).
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from spherefer.core.errors import InvalidInput
from spherefer.core.storage import read_safetensors, write_safetensors
from spherefer.evaluation.evaluate import embed_arrays

if TYPE_CHECKING:
    from spherefer.runtime.recognizer import Recognizer

__all__ = ["SCHEMA", "read_teacher_targets", "teacher_probabilities", "trained_classes", "write_teacher_targets"]

SCHEMA = "spherefer.teacher_targets"


def trained_classes(teacher: Recognizer) -> list[str]:
    """The classes a teacher was trained on (its bank's trained classes; all of them for a bank without)."""
    return list(teacher.bank.trained) or list(teacher.bank.names)


def teacher_probabilities(
    teachers: Sequence[Recognizer], images: np.ndarray, temperature: float = 1.0, progress: bool = False
) -> np.ndarray:
    """(N, C) float32: the flip-averaged, teacher-averaged class probabilities of uint8 faces ``images``
    (N, S, S) at each teacher's input size, over the teachers' trained classes (the same for all)."""
    if not teachers:
        raise InvalidInput("distillation needs at least one teacher")
    if temperature <= 0:
        raise InvalidInput(f"the temperature must be positive, got {temperature}")
    total = None
    names = None
    for teacher in teachers:
        bank = copy.deepcopy(teacher.bank)
        if bank.trained:
            bank.restore_trained()
        if names is not None and bank.names != names:
            raise InvalidInput(f"teachers disagree on the classes: {names} and {bank.names}")
        names = bank.names
        for view in (images, images[:, :, ::-1]):
            logits = bank.scale * bank.cosine(
                embed_arrays(teacher, np.ascontiguousarray(view), progress=progress)
            ).astype(np.float64)
            logits /= temperature
            odds = np.exp(logits - logits.max(axis=1, keepdims=True))
            probabilities = odds / odds.sum(axis=1, keepdims=True)
            total = probabilities if total is None else total + probabilities
    assert total is not None  # at least one teacher
    return (total / (2 * len(teachers))).astype(np.float32)


def write_teacher_targets(
    path: str | os.PathLike[str],
    probabilities: np.ndarray,
    classes: Sequence[str],
    ids: Sequence[str],
    about: dict[str, object],
) -> None:
    """Save teacher ``probabilities`` (N, C) over ``classes`` for the faces named ``ids`` (the dataset's
    record ids), with ``about`` (teachers, temperature, data) in the metadata; atomically."""
    if probabilities.shape != (len(ids), len(classes)):
        raise InvalidInput(f"need ({len(ids)}, {len(classes)}) probabilities, got {probabilities.shape}")
    meta = {"schema": SCHEMA, "classes": list(classes), "ids": list(ids), **about}
    write_safetensors(
        path, {"probabilities": np.asarray(probabilities, dtype=np.float32)}, metadata={"spherefer": json.dumps(meta)}
    )


def read_teacher_targets(path: str | os.PathLike[str], classes: Sequence[str], ids: Sequence[str]) -> np.ndarray:
    """The (N, C) teacher probabilities of the faces named ``ids``, in that order, over ``classes``;
    ``ValueError`` naming the file when it is not a teacher-targets file, has other classes, or misses faces."""
    tensors, metadata = read_safetensors(path, "teacher targets")
    try:
        meta = json.loads(metadata["spherefer"])
        if meta["schema"] != SCHEMA:
            raise KeyError("schema")
        stored_classes, stored_ids = list(meta["classes"]), list(meta["ids"])
        probabilities = tensors["probabilities"]
    except (KeyError, json.JSONDecodeError, TypeError) as err:
        raise InvalidInput(f"{path} is not a spherefer teacher-targets file (bad or missing {err})") from err
    if stored_classes != list(classes):
        raise InvalidInput(f"{path} holds targets over {stored_classes}, the run trains {list(classes)}")
    row = {name: i for i, name in enumerate(stored_ids)}
    missing = [name for name in ids if name not in row]
    if missing:
        raise InvalidInput(
            f"{path} has no teacher targets for {len(missing)} of the {len(ids)} training faces (e.g. {missing[0]!r}): "
            "make it for this training data (tools/teacher_targets.py)"
        )
    return probabilities[[row[name] for name in ids]]
