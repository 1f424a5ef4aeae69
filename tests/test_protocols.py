"""Open-vocabulary protocols on synthetic embeddings whose outcome is known (the FER+ vote rules are tested in
test_data.py)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest
from fixtures import assert_close

from spherefer.bank.centers import CenterBank
from spherefer.evaluation.open_set import data_mean_cosines, fpr_at_tpr, open_set
from spherefer.evaluation.protocols import (
    composed_centers,
    composition_angles,
    enrol_bank,
    few_shot_draws,
    few_shot_splits,
    held_out_class_draws,
    logistic_regression,
    nearest_center,
    new_class_draws,
    update_draws,
)

DIM = 16


def axis(i: int) -> np.ndarray:
    return np.eye(DIM, dtype=np.float32)[i]


def cluster(i: int, n: int, rng: np.random.Generator, noise: float = 0.05) -> np.ndarray:
    """``n`` embeddings scattered tightly around basis vector ``i``."""
    return axis(i) + noise * rng.standard_normal((n, DIM)).astype(np.float32)


def bank_of(**centers: np.ndarray) -> CenterBank:
    return CenterBank(list(centers), np.stack(list(centers.values())))


# ---------------------------------------------------------------- few-shot draws


def test_few_shot_splits_are_disjoint_reproducible_and_independent_of_draw_count() -> None:
    splits = few_shot_splits({"a": 12, "b": 30}, shots=10, draws=3, seed=7)
    for split in splits:
        for name, n in (("a", 12), ("b", 30)):
            enrol, test = split[name]
            assert len(enrol) == 10 and len(test) == n - 10
            assert sorted(np.r_[enrol, test]) == list(range(n))
    again = few_shot_splits({"a": 12, "b": 30}, shots=10, draws=2, seed=7)
    np.testing.assert_array_equal(again[1]["b"][0], splits[1]["b"][0])
    assert not np.array_equal(splits[0]["b"][0], splits[1]["b"][0])


def test_few_shot_splits_need_test_faces() -> None:
    with pytest.raises(ValueError, match="no test faces for \\{'a': 10\\}"):
        few_shot_splits({"a": 10, "b": 30}, shots=10, draws=1, seed=0)


def test_well_separated_clusters_are_recognised_perfectly() -> None:
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(0)
    classes = {"x": cluster(0, 25, rng), "y": cluster(1, 30, rng), "z": cluster(2, 20, rng)}
    far_base = bank_of(angry=axis(5), happy=axis(6))
    methods = {"alone": nearest_center(), "with base": nearest_center(far_base), "lr": logistic_regression()}
    results = few_shot_draws(classes, methods, shots=10, draws=3, seed=0)
    for result in results.values():
        assert result.classes == ["x", "y", "z"] and result.recall.shape == (3, 3)
        np.testing.assert_array_equal(result.accuracy, 1.0)


def test_a_base_class_on_top_of_a_new_class_takes_its_faces() -> None:
    rng = np.random.default_rng(1)
    classes = {"x": cluster(0, 25, rng), "y": cluster(1, 25, rng)}
    base = bank_of(happy=axis(0))  # exactly x's direction, closer to its faces than any noisy 10-shot mean
    result = few_shot_draws(classes, {"with base": nearest_center(base)}, draws=10)["with base"]
    np.testing.assert_array_equal(result.recall[:, 1], 1.0)
    assert result.recall[:, 0].mean() < 0.5


def test_enrolment_uses_every_view_and_testing_view_zero() -> None:
    rng = np.random.default_rng(2)
    faces = np.stack([cluster(0, 15, rng), cluster(1, 15, rng)], axis=1)  # (15, 2 views, D)
    seen: dict[str, list] = {"shots": [], "tests": []}

    def spy(shots: Mapping[str, np.ndarray]):
        seen["shots"].append({n: x.shape for n, x in shots.items()})

        def predict(x: np.ndarray) -> np.ndarray:
            seen["tests"].append(x)
            return np.array(["a"] * len(x))

        return predict

    result = few_shot_draws({"a": faces}, {"spy": spy}, shots=10, draws=1)["spy"]
    assert seen["shots"] == [{"a": (20, DIM)}]
    assert seen["tests"][0].shape == (5, DIM) and (seen["tests"][0] @ axis(0)).min() > 0.8
    np.testing.assert_array_equal(result.recall, [[1.0]])


def test_enrol_bank_keeps_base_centers_and_adds_missing_classes() -> None:
    base = bank_of(happy=axis(0))
    bank = enrol_bank({"happy": np.stack([axis(1)] * 3), "new": np.stack([axis(2), axis(3)])}, base)
    assert bank.names == ["happy", "new"] and base.names == ["happy"]
    assert_close(bank.center("happy"), axis(0))
    assert_close(bank.center("new"), (axis(2) + axis(3)) / np.float32(np.sqrt(2)))
    assert enrol_bank({"new": np.stack([axis(2)])}).names == ["new"]


# ---------------------------------------------------------------- composition


def test_composed_center_of_orthogonal_centers_is_at_45_degrees() -> None:
    rng = np.random.default_rng(3)
    base = bank_of(happy=axis(0), surprise=axis(1), sad=axis(2))
    pairs = {"happy+surprise": ["happy", "surprise"]}
    along_happy = {"happy+surprise": np.stack([axis(0)] * 12)}
    np.testing.assert_allclose(composition_angles(along_happy, base, pairs, draws=2), 45.0, atol=1e-3)

    diagonal = {"happy+surprise": (axis(0) + axis(1)) + 0.05 * rng.standard_normal((12, DIM)).astype(np.float32)}
    assert composition_angles(diagonal, base, pairs, draws=2).max() < 10.0
    for with_base in (False, True):
        result = few_shot_draws(diagonal, {"composed": composed_centers(base, pairs, with_base)}, draws=2)["composed"]
        np.testing.assert_array_equal(result.recall, 1.0)


def test_composed_alone_holds_only_the_compounds() -> None:
    base = bank_of(happy=axis(0), surprise=axis(1))
    predict = composed_centers(base, {"happy+surprise": ["happy", "surprise"]}, with_base=False)({})
    assert predict(np.stack([axis(0)])).tolist() == ["happy+surprise"]
    predict = composed_centers(base, {"happy+surprise": ["happy", "surprise"]}, with_base=True)({})
    assert predict(np.stack([axis(0)])).tolist() == ["happy"]


# ---------------------------------------------------------------- subject-split protocols


def subject_faces(rng: np.random.Generator, classes: Mapping[str, int], subjects: int = 20, per_subject: int = 3):
    """Every subject shows every class ``per_subject`` times around that class's basis vector."""
    embeddings, labels, who = [], [], []
    for s in range(subjects):
        for name, i in classes.items():
            embeddings.append(cluster(i, per_subject, rng))
            labels += [name] * per_subject
            who += [f"S{s:03d}"] * per_subject
    return np.concatenate(embeddings), np.array(labels), np.array(who)


def test_new_class_is_enrolled_without_hurting_separated_base_classes() -> None:
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(4)
    x, labels, subjects = subject_faces(rng, {"happy": 0, "sad": 1, "contempt": 2})
    base = bank_of(happy=axis(0), sad=axis(1), neutral=axis(3))
    methods = {"centers": nearest_center(base), "lr": logistic_regression()}
    results = new_class_draws(x, labels, subjects, "contempt", methods, shots=10, draws=3)
    for result in results.values():
        for values in (result.new_recall, result.base_before, result.base_after, result.accuracy_after):
            np.testing.assert_array_equal(values, 1.0)


def test_new_class_on_top_of_a_base_class_costs_base_accuracy() -> None:
    rng = np.random.default_rng(5)
    x, labels, subjects = subject_faces(rng, {"happy": 0, "sad": 1, "contempt": 1})  # contempt looks sad
    base = bank_of(happy=axis(0), sad=axis(1) + 0.3 * axis(4))  # the trained sad center is off its faces
    result = new_class_draws(x, labels, subjects, "contempt", {"c": nearest_center(base)}, draws=3)["c"]
    np.testing.assert_array_equal(result.base_before, 1.0)
    assert (result.base_after < 0.75).all() and (result.new_recall > 0.9).all()


def test_new_class_errors() -> None:
    rng = np.random.default_rng(6)
    x, labels, subjects = subject_faces(rng, {"happy": 0, "contempt": 2}, subjects=4, per_subject=1)
    with pytest.raises(ValueError, match="no face is labelled 'fear'"):
        new_class_draws(x, labels, subjects, "fear", {"c": nearest_center()})
    with pytest.raises(ValueError, match="fewer than the 10 needed"):
        new_class_draws(x, labels, subjects, "contempt", {"c": nearest_center()})


def test_held_out_class_is_enrolled_into_the_trained_bank() -> None:
    rng = np.random.default_rng(7)
    base = bank_of(happy=axis(0), sad=axis(1))
    test = np.concatenate([cluster(0, 20, rng), cluster(1, 20, rng), cluster(2, 10, rng)])
    labels = ["happy"] * 20 + ["sad"] * 20 + ["fear"] * 10
    result = held_out_class_draws(cluster(2, 30, rng), test, labels, base, "fear", shots=10, draws=3)
    for values in (result.new_recall, result.base_before, result.base_after, result.accuracy_after):
        np.testing.assert_array_equal(values, 1.0)
    # a held-out class whose shots look like a trained class takes that class's faces
    lookalike = held_out_class_draws(cluster(1, 30, rng), test, labels, base, "fear", draws=2)
    assert (lookalike.base_after < lookalike.base_before).all()


def test_held_out_class_errors() -> None:
    rng = np.random.default_rng(8)
    base = bank_of(happy=axis(0), sad=axis(1))
    test, labels = cluster(0, 4, rng), ["happy", "happy", "fear", "fear"]
    with pytest.raises(ValueError, match="already a class of the bank"):
        held_out_class_draws(cluster(2, 20, rng), test, labels, base, "sad")
    with pytest.raises(ValueError, match="no test face is labelled 'angry'"):
        held_out_class_draws(cluster(2, 20, rng), test, labels, base, "angry")
    with pytest.raises(ValueError, match="fewer than the 10 needed"):
        held_out_class_draws(cluster(2, 5, rng), test, labels, base, "fear")
    with pytest.raises(ValueError, match="classes the bank lacks: \\['surprise'\\]"):
        held_out_class_draws(cluster(2, 20, rng), test, ["happy", "surprise", "fear", "fear"], base, "fear")
    with pytest.raises(ValueError, match="4 test embeddings but 3 labels"):
        held_out_class_draws(cluster(2, 20, rng), test, labels[:3], base, "fear")


def test_updates_pull_a_wrong_center_onto_its_faces() -> None:
    rng = np.random.default_rng(7)
    x, labels, subjects = subject_faces(rng, {"happy": 0, "sad": 1})
    base = bank_of(
        happy=axis(2), sad=axis(1), neutral=(axis(0) + axis(2)) / np.sqrt(2)
    )  # neutral sits nearer happy's faces
    accuracy = update_draws(x, labels, subjects, base, ks=(1, 5), momentum=0.5, draws=3)
    assert accuracy.shape == (3, 3)
    np.testing.assert_array_equal(accuracy[:, 0], 0.5)
    np.testing.assert_array_equal(accuracy[:, 2], 1.0)
    np.testing.assert_array_equal(update_draws(x, labels, subjects, base, ks=(1, 5), momentum=0.99, draws=3)[:, 2], 0.5)


def test_update_errors() -> None:
    rng = np.random.default_rng(8)
    x, labels, subjects = subject_faces(rng, {"happy": 0, "sad": 1}, subjects=4)
    with pytest.raises(ValueError, match="bank lacks: \\['sad'\\]"):
        update_draws(x, labels, subjects, bank_of(happy=axis(0)))
    with pytest.raises(ValueError, match="fewer than the 20 needed"):
        update_draws(x, labels, subjects, bank_of(happy=axis(0), sad=axis(1)))


# ---------------------------------------------------------------- open set and data means


def test_fpr_at_tpr() -> None:
    known = np.arange(100) / 100
    assert fpr_at_tpr(known, np.array([0.0, 0.04, 0.05, 0.5])) == 0.5
    assert fpr_at_tpr(known, np.array([0.0, 0.04, 0.05, 0.5]), tpr=1.0) == 1.0


def test_open_set_on_hand_placed_faces() -> None:
    pytest.importorskip("sklearn")
    bank = bank_of(a=axis(0), b=axis(1))
    known = np.stack(
        [axis(0), axis(1), 0.5 * axis(0) + np.sqrt(0.75) * axis(2), axis(1)]
    )  # scores 1, 1, 0.5 (rejected), 1
    labels = ["a", "b", "a", "a"]  # the last is accepted but called b
    unknown = np.stack([axis(2), 0.8 * axis(0) + 0.6 * axis(3)])  # scores 0 and 0.8 (accepted)
    result = open_set(bank, known, labels, unknown)
    assert (result.n_known, result.n_unknown, result.threshold) == (4, 2, 0.6)
    assert result.auroc == pytest.approx(7 / 8)
    assert result.fpr_at_95_tpr == pytest.approx(0.5)
    assert result.accepted_accuracy == pytest.approx(2 / 3)
    assert result.known_rejected == pytest.approx(0.25)
    assert result.unknown_accepted == pytest.approx(0.5)
    with pytest.raises(ValueError, match="classes the bank lacks: \\['c'\\]"):
        open_set(bank, known, ["a", "b", "a", "c"], unknown)


def test_data_mean_cosines_average_normalised_embeddings() -> None:
    bank = bank_of(happy=axis(0), sad=axis(1))
    cosines = data_mean_cosines(
        bank, {"happy": np.stack([3 * (axis(0) + axis(2)), axis(0) - axis(2)]), "sad": np.stack([axis(3)])}
    )
    assert cosines == pytest.approx({"happy": 1.0, "sad": 0.0}, abs=1e-6)


# ---------------------------------------------------------------- scikit-learn is optional


@pytest.mark.parametrize("missing", ["sklearn", "sklearn.linear_model"])
def test_logistic_regression_without_scikit_learn_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, missing, None)  # makes ``import sklearn...`` raise ImportError
    if missing == "sklearn":
        monkeypatch.delitem(sys.modules, "sklearn.linear_model", raising=False)
    with pytest.raises(ImportError, match="logistic_regression\\(\\) needs scikit-learn.*pip install scikit-learn"):
        logistic_regression()


def test_open_set_without_scikit_learn_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "sklearn.metrics", None)
    bank = bank_of(a=axis(0), b=axis(1))
    with pytest.raises(ImportError, match="open_set\\(\\) needs scikit-learn.*pip install scikit-learn"):
        open_set(bank, np.stack([axis(0)]), ["a"], np.stack([axis(2)]))


def test_the_fer_plus_vote_rules_moved_to_the_dataset_module() -> None:
    import spherefer.data.ferplus as ferplus
    import spherefer.evaluation.protocols as protocols

    for name in ("compound_pair", "compound_name", "compound_sets", "is_unknown_face", "BASIC_EMOTIONS"):
        assert hasattr(ferplus, name) and not hasattr(protocols, name), name
