"""spherefer.bank.enrol: the name, image, shot and threshold rules of enrolment that the CLI and the service share."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures import PATTERN_CLASSES, make_pattern_folder, make_tiny_model
from PIL import Image
from skimage import data

from spherefer.bank.centers import CenterBank
from spherefer.bank.enrol import (
    MIN_IMAGES,
    check_image_count,
    draw_shots,
    enrol_class,
    enrolment_files,
    estimate_threshold,
    new_class_threshold,
    old_center_weight,
    update_class,
)
from spherefer.bank.records import ClassExists
from spherefer.runtime.samples import enrolment_embeddings


@pytest.fixture
def bank() -> CenterBank:
    return CenterBank(["angry", "happy"], torch.eye(2, 4), threshold=0.6)


def loose_samples(n: int = 10, seed: int = 0) -> np.ndarray:
    return np.array([0, 0, 1.0, 0]) + np.random.default_rng(seed).normal(0, 0.8, (n, 4))


def test_estimate_threshold_from_leave_one_out_spread():
    tight = np.array([[1.0, 0.01 * i, 0, 0] for i in range(5)])
    assert estimate_threshold(tight, ceiling=0.6) == 0.6  # tight classes keep the global threshold
    rng = np.random.default_rng(0)
    loose = np.array([1.0, 0, 0, 0]) + rng.normal(0, 0.8, (10, 4))
    unit = loose / np.linalg.norm(loose, axis=1, keepdims=True)
    loo = [unit[i] @ (m := unit.sum(0) - unit[i]) / np.linalg.norm(m) for i in range(10)]
    assert estimate_threshold(loose, ceiling=0.99) == pytest.approx(np.quantile(loo, 0.1), abs=1e-5)
    with pytest.raises(ValueError, match="at least 3"):
        estimate_threshold(tight[:2], ceiling=0.6)


def test_the_new_class_threshold_policy(bank):
    loose = loose_samples()
    assert new_class_threshold(loose, ceiling=0.99) == estimate_threshold(
        loose, ceiling=0.99
    )  # estimated from 3+ samples
    assert (
        estimate_threshold(loose, ceiling=0.99) > 0.05 and new_class_threshold(loose, ceiling=0.05) == 0.05
    )  # never stricter than the global one
    assert new_class_threshold(loose, ceiling=0.99, threshold=0.42) == 0.42  # an explicit threshold wins
    assert new_class_threshold(loose[:2], ceiling=0.99) is None  # too few samples to measure a spread: the global one


def test_enrol_class_adds_the_class_with_its_threshold(bank):
    loose = loose_samples()
    enrolled = enrol_class(bank, "contempt", loose)
    assert (enrolled.name, enrolled.count) == ("contempt", 10) and bank.names[-1] == "contempt"
    assert (
        enrolled.threshold
        == pytest.approx(estimate_threshold(loose, ceiling=0.6))
        == pytest.approx(bank.info["contempt"].threshold)
    )
    torch.testing.assert_close(enrolled.center, bank.center("contempt"))
    assert enrol_class(bank, "pair", loose[:2]).threshold is None and bank.info["pair"].threshold is None
    assert enrol_class(bank, "fixed", loose, threshold=0.3).threshold == 0.3


def test_enrol_class_checks_the_name_before_anything_else(bank):
    with pytest.raises(ClassExists, match="already exists"):
        enrol_class(bank, "happy", np.ones((0, 4)))  # the samples are never looked at
    with pytest.raises(ValueError, match="cannot be a class name"):
        enrol_class(bank, "a/b", loose_samples())
    assert bank.names == ["angry", "happy"]


def test_update_class_returns_how_far_the_center_moved(bank):
    moved = update_class(bank, "happy", np.array([[1.0, 0, 0, 0]]), momentum=0.5)
    assert moved == pytest.approx(45.0, abs=1e-4) and bank.info["happy"].updates == 1
    with pytest.raises(KeyError, match="no class named 'joy'"):
        update_class(bank, "joy", np.ones((1, 4)))


def test_shots_are_drawn_deterministically_in_sorted_order():
    items = [f"img{i:02d}.png" for i in range(20)]
    first = draw_shots(items, 5, seed=3)
    assert first == draw_shots(items, 5, seed=3) == sorted(first) and len(set(first)) == 5 and set(first) <= set(items)
    assert draw_shots(items, 5, seed=4) != first
    assert draw_shots(items, None) == items and draw_shots(items, 20, seed=1) == items
    with pytest.raises(ValueError, match="only 20 images"):
        draw_shots(items, 21)
    with pytest.raises(ValueError, match="at least 1"):
        draw_shots(items, 0)


def test_image_count_and_enrolment_files(tmp_path: Path):
    folder = make_pattern_folder(tmp_path / "faces", classes=["surprise"], per_class=8)
    assert MIN_IMAGES == 3
    check_image_count(3)
    with pytest.raises(ValueError, match=r"at least 3 images, got 2 \(lower it\)"):
        check_image_count(2, hint="lower it")
    files = enrolment_files([folder], shots=5, seed=3)
    assert len(files) == 5 and files == sorted(files) and files == enrolment_files([folder], shots=5, seed=3)
    assert len(enrolment_files([folder])) == 8
    with pytest.raises(ValueError, match="at least 9 images, got 8"):
        enrolment_files([folder], minimum=9)
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        enrolment_files([tmp_path / "nope"])


def test_update_class_is_once_per_call_and_says_how_much_the_old_center_weighs(bank):
    many = np.tile([[1.0, 0, 0, 0]], (200, 1))
    moved = update_class(bank, "happy", many, momentum=0.9)
    assert moved == pytest.approx(np.degrees(np.arctan2(0.1, 0.9)), abs=1e-4)  # not 90 degrees: the mean moves it once
    assert old_center_weight(0.9, 200) == 0.9
    assert old_center_weight(0.9, 200, per="instance") == pytest.approx(0.9**200)
    instance = CenterBank(["angry", "happy"], torch.eye(2, 4))
    center = np.array([0.0, 1, 0, 0])
    for _ in range(3):  # one step per instance
        center = 0.5 * center + 0.5 * np.array([1.0, 0, 0, 0])
        center /= np.linalg.norm(center)
    moved = update_class(instance, "happy", many[:3], momentum=0.5, per="instance")
    assert (
        moved
        == pytest.approx(np.degrees(np.arctan2(center[0], center[1])), abs=1e-3)
        == pytest.approx(45 + 22.5 + 11.25, abs=1e-3)
    )


def test_enrolment_embeddings_detect_photos_and_take_crops_as_given(tmp_path: Path):
    recognizer = make_tiny_model(tmp_path / "model", PATTERN_CLASSES)
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(data.astronaut()).save(photos / "face.png")
    Image.fromarray(np.full((120, 160, 3), 128, np.uint8)).save(photos / "wall.png")
    (photos / "broken.png").write_bytes(b"not an image")
    files = [photos / "face.png", photos / "wall.png", photos / "broken.png"]
    skipped: list[tuple[Path, str]] = []
    x = enrolment_embeddings(recognizer, files, on_skip=lambda path, reason: skipped.append((path, reason)))
    [face] = recognizer.analyze(photos / "face.png")
    np.testing.assert_allclose(x, face.embedding[None], atol=1e-6)
    assert [path for path, _ in skipped] == files[1:]
    assert skipped[0][1] == "no usable face found (none detected, or too small, blurred or sideways)"
    assert "cannot read image" in skipped[1][1]
    crops = sorted(make_pattern_folder(tmp_path / "crops", classes=["sad"], per_class=3).rglob("*.png"))
    skipped.clear()
    x = enrolment_embeddings(
        recognizer,
        [*crops, photos / "broken.png"],
        aligned=True,
        on_skip=lambda path, reason: skipped.append((path, reason)),
    )
    np.testing.assert_allclose(x, recognizer.embed(crops), atol=1e-6)
    assert [path for path, _ in skipped] == [photos / "broken.png"]
    assert enrolment_embeddings(recognizer, [photos / "wall.png"]).shape == (0, 8)
