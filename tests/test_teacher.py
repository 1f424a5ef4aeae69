"""Teacher targets: flip-averaged ensemble probabilities kept beside the runs, and students trained on them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures import PATTERN_CLASSES, make_pattern_folder, make_tiny_model, tiny_train_config

from spherefer.data import open_dataset
from spherefer.training.face_arrays import load_train_val
from spherefer.training.teacher import read_teacher_targets, teacher_probabilities, write_teacher_targets


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, np.ndarray, list[str]]:
    root = make_pattern_folder(tmp_path_factory.mktemp("data"), per_class=8)
    dataset = open_dataset(f"folder:{root}", classes=PATTERN_CLASSES)
    images, _ = dataset.load_arrays(16)
    return f"folder:{root}", images, dataset.ids


def test_teacher_probabilities_are_flip_and_ensemble_averages(faces, tmp_path: Path) -> None:
    _, images, _ = faces
    teachers = [make_tiny_model(tmp_path / f"t{seed}", seed=seed) for seed in (0, 1)]
    both = teacher_probabilities(teachers, images)
    assert both.shape == (len(images), len(PATTERN_CLASSES)) and np.allclose(both.sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(
        both, teacher_probabilities(teachers, images[:, :, ::-1].copy()), atol=1e-5
    )  # mirror-invariant
    one = [teacher_probabilities([t], images) for t in teachers]
    np.testing.assert_allclose(both, (one[0] + one[1]) / 2, atol=1e-5)
    soft = teacher_probabilities(teachers, images, temperature=4.0)
    assert soft.max(1).mean() < both.max(1).mean()  # a higher temperature softens
    with pytest.raises(ValueError, match="temperature must be positive"):
        teacher_probabilities(teachers, images, temperature=0.0)


def test_targets_file_round_trip_aligns_by_face_and_refuses_other_faces(faces, tmp_path: Path) -> None:
    _, _, ids = faces
    probabilities = np.random.default_rng(0).dirichlet(np.ones(len(PATTERN_CLASSES)), size=len(ids)).astype(np.float32)
    path = tmp_path / "teacher.safetensors"
    write_teacher_targets(path, probabilities, PATTERN_CLASSES, ids, {"teachers": ["a", "b"], "temperature": 2.0})
    order = list(reversed(ids))
    np.testing.assert_array_equal(read_teacher_targets(path, PATTERN_CLASSES, order), probabilities[::-1])
    with pytest.raises(ValueError, match="holds targets over"):
        read_teacher_targets(path, list(reversed(PATTERN_CLASSES)), ids)
    with pytest.raises(ValueError, match="no teacher targets for 1 of"):
        read_teacher_targets(path, PATTERN_CLASSES, [*ids, "elsewhere/new.png"])
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ValueError, match="teacher targets"):
        read_teacher_targets(path, PATTERN_CLASSES, ids)


def test_a_student_trains_on_the_data_and_the_teachers_mixed(faces, tmp_path: Path) -> None:
    spec, images, ids = faces
    teacher = np.full((len(ids), len(PATTERN_CLASSES)), 1.0 / len(PATTERN_CLASSES), dtype=np.float32)
    path = tmp_path / "teacher.safetensors"
    write_teacher_targets(path, teacher, PATTERN_CLASSES, ids, {})
    plain = tiny_train_config(tmp_path / "runs", spec)
    taught = tiny_train_config(
        tmp_path / "runs", spec, PATTERN_CLASSES, f"data.teacher={path}", "data.teacher_weight=0.25"
    )
    (train, _), (mixed, _) = load_train_val(plain.data, 16), load_train_val(taught.data, 16)
    torch.testing.assert_close(mixed.targets, 0.75 * train.targets + 0.25 * torch.from_numpy(teacher))
    with pytest.raises(ValueError, match="teacher_weight is a share"):
        tiny_train_config(tmp_path / "runs", spec, PATTERN_CLASSES, f"data.teacher={path}", "data.teacher_weight=0")
