"""The harm estimate: the share of each class a new class would take, from the bank's own Gaussian model."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from realdata import realdata_path

import spherefer
from spherefer.bank.centers import CenterBank
from spherefer.bank.enrol import HarmfulEnrolment, enrol_class
from spherefer.bank.harm import HARM_LIMIT, estimate_harm
from spherefer.bank.records import TrainedClass
from spherefer.bank.unknown import FaceDensity, class_mean

D = 16


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture
def model() -> tuple[CenterBank, FaceDensity, np.ndarray]:
    """Three trained classes of unit faces around separate directions, their means and their face density."""
    rng = np.random.default_rng(0)
    directions = np.eye(D)[:3]
    labels = np.repeat(np.arange(3), 400)
    faces = unit(directions[labels] + 0.15 * rng.normal(size=(len(labels), D)))
    means = np.stack([class_mean(faces[labels == c]) for c in range(3)])
    bank = CenterBank(["a", "b", "c"], directions.astype(np.float32))
    bank.trained = {n: TrainedClass(c.copy()) for n, c in zip(bank.names, bank.centers)}
    bank.set_means(means)
    return bank, FaceDensity.fit(faces, labels, means), faces[labels == 0]


def test_a_class_enrolled_on_top_of_another_takes_it_and_is_refused(model) -> None:
    bank, density, a_faces = model
    before = copy.deepcopy(bank)
    with pytest.raises(HarmfulEnrolment, match=r"refused: it would take \d+% of a.*--accept-harm") as refusal:
        enrol_class(bank, "copy_of_a", a_faces[:10], density=density)
    assert (
        refusal.value.harm.worst[0] == "a" and refusal.value.harm.taken["a"] > HARM_LIMIT and refusal.value.harm.harmful
    )
    assert bank.names == before.names and np.array_equal(bank.centers, before.centers)  # nothing changed
    enrolled = enrol_class(bank, "copy_of_a", a_faces[:10], density=density, accept_harm=True)
    assert bank.names[-1] == "copy_of_a" and enrolled.harm.taken == refusal.value.harm.taken


def test_a_class_of_its_own_takes_nothing(model) -> None:
    bank, density, _ = model
    rng = np.random.default_rng(1)
    own = unit(np.eye(D)[5] + 0.15 * rng.normal(size=(10, D)))
    enrolled = enrol_class(bank, "d", own, density=density)
    assert not enrolled.harm.harmful and max(enrolled.harm.taken.values()) < 0.01
    assert enrolled.harm.summary() == "would take under 1% of any class" and enrolled.harm.limit == HARM_LIMIT


def test_the_estimate_matches_what_the_class_takes_from_faces_drawn_by_the_model(model) -> None:
    bank, density, a_faces = model
    rng = np.random.default_rng(2)
    near_a = unit(np.eye(D)[0] + 0.3 * np.eye(D)[6] + 0.15 * rng.normal(size=(10, D)))
    report = estimate_harm(bank, density, lambda trial: trial.add("near_a", near_a), "near_a")
    after = copy.deepcopy(bank)
    after.add("near_a", near_a)
    taken = np.mean(np.array(after.names)[after.nearest(a_faces)] == "near_a")  # the faces the density was fitted on
    assert 0.05 < report.taken["a"] < 0.5 and report.taken["a"] == pytest.approx(taken, abs=0.05)
    assert estimate_harm(bank, density, lambda trial: trial.add("near_a", near_a), "near_a") == report  # seeded


@pytest.mark.slow
@pytest.mark.realdata
def test_contempt_from_ten_ck_plus_crops_estimated_against_fer_plus_test_faces() -> None:
    from spherefer.data import FERPlus
    from spherefer.evaluation.evaluate import embed_arrays

    ck_root, fer_root = realdata_path("ckplus48"), realdata_path("ferplus")
    recognizer = spherefer.load_model("default")
    shots = recognizer.embed(sorted((ck_root / "CK+48" / "contempt").glob("*.png"))[:10])
    report = estimate_harm(recognizer.bank, recognizer.density, lambda trial: trial.add("contempt", shots), "contempt")
    test = FERPlus(fer_root, "test", classes=recognizer.bank.names)
    images, targets = test.load_arrays(48)
    x, labels = embed_arrays(recognizer, images), np.array(test.classes)[targets]
    after = copy.deepcopy(recognizer.bank)
    after.add("contempt", shots)
    taken = np.array(after.names)[after.nearest(x)] == "contempt"
    for name in recognizer.bank.names:
        assert report.taken[name] == pytest.approx(taken[labels == name].mean(), abs=0.05), name
    assert report.worst[0] == "neutral" and not report.harmful
