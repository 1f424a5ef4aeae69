"""The decision rule: the paper's cosine, and the mean gate that puts trained and enrolled classes on one footing."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from spherefer.bank.centers import CenterBank
from spherefer.bank.decision import MEAN_GATE, PAPER, RULES, check_rule
from spherefer.runtime.tracking import LabelSmoother, SmoothingConfig


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture
def bank() -> CenterBank:
    """Two trained classes whose head centers (e0, e1) sit away from their faces' means, as a margin head's rows do."""
    centers = np.eye(4, dtype=np.float32)[:2]
    means = np.array(
        [[0.4, 0.0, 0.6, 0.0], [0.0, 0.4, -0.6, 0.0]], dtype=np.float32
    )  # faces' cosines to their centers: 0.4
    bank = CenterBank.from_head(type("Head", (), {"centers": lambda self: centers, "scale": 16.0})(), ["a", "b"])
    bank.set_means(means)
    return bank


def test_check_rule_names_the_rules_and_what_each_needs() -> None:
    assert set(RULES) == {PAPER, MEAN_GATE}
    with pytest.raises(ValueError, match="unknown decision rule 'nearest'"):
        check_rule("nearest", True)
    with pytest.raises(ValueError, match="has none"):
        check_rule(MEAN_GATE, False)


def test_banks_with_means_gate_and_banks_without_use_the_paper_rule(bank: CenterBank) -> None:
    assert bank.rule is None and bank.decision_rule_name == MEAN_GATE
    assert CenterBank(["x", "y"], np.eye(3)[:2]).decision_rule_name == PAPER
    with pytest.raises(ValueError, match="has none"):
        CenterBank(["x", "y"], np.eye(3)[:2]).use_rule(MEAN_GATE)


def test_trained_classes_alone_are_decided_by_their_head_centers(bank: CenterBank) -> None:
    faces = unit(np.random.default_rng(0).normal(size=(200, 4)))
    assert np.array_equal(bank.nearest(faces), bank.cosine(faces).argmax(1))


def test_an_enrolled_class_takes_only_faces_nearer_its_mean_than_every_trained_mean(bank: CenterBank) -> None:
    new = unit(np.array([[0.3, 0.0, 0.6, 0.6]]))
    bank.add("c", np.repeat(new, 5, axis=0))
    a_face = unit(np.array([[0.4, 0.0, 0.6, 0.1]]))  # an 'a' face: cosine 0.4 to a's center, far more to c's mean
    c_face = unit(np.array([[0.3, 0.0, 0.5, 0.8]]))
    paper = copy.deepcopy(bank)
    paper.use_rule(PAPER)
    assert paper.classify(a_face, threshold=-1.0).labels == [
        "c"
    ]  # the paper's rule: the enrolled center claims the trained class's face
    assert bank.classify(a_face, threshold=-1.0).labels == ["a"] and bank.classify(c_face, threshold=-1.0).labels == [
        "c"
    ]
    ranking = bank.ranking(a_face)[0]
    to_means = unit(bank.means.astype(np.float64)) @ a_face[0]
    assert ranking[0] == pytest.approx(to_means[:2].max()) and ranking[2] == pytest.approx(to_means[2])
    result = bank.classify(c_face)
    assert result[0].nearest == "c" and result[0].cosine == pytest.approx(float(bank.cosine(c_face)[0, 2]), abs=1e-6)


def test_the_rule_survives_saving_and_an_explicit_paper_rule_is_kept(bank: CenterBank, tmp_path) -> None:
    bank.use_rule(PAPER)
    bank.save(tmp_path / "bank.safetensors")
    assert CenterBank.load(tmp_path / "bank.safetensors").rule == PAPER


def test_the_video_smoother_decides_by_the_banks_rule(bank: CenterBank) -> None:
    bank.add("c", np.repeat(unit(np.array([[0.3, 0.0, 0.6, 0.6]])), 5, axis=0))
    smoother = LabelSmoother.from_bank(bank, threshold=-1.0, config=SmoothingConfig(alpha=1.0, patience=1))
    faces = unit(np.random.default_rng(1).normal(size=(50, 4)) + np.array([0.3, 0.0, 0.6, 0.3]))
    expected = [bank.names[i] for i in bank.nearest(faces)]
    assert [smoother.update(k, face).decision for k, face in enumerate(faces)] == expected
    assert len(set(expected)) > 1
