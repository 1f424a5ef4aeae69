"""spherefer.core.labels: the reserved labels, the class-name rule, the accept rule and the output
records -- and that the bank, the video smoother, calibration and the record writers use them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spherefer import face
from spherefer.bank.centers import CenterBank
from spherefer.core.labels import (
    FACE_FIELDS,
    MAX_CLASS_NAME_LENGTH,
    NO_FACE,
    REJECTED,
    RESERVED_LABELS,
    UNKNOWN,
    Prediction,
    check_class_name,
    class_name_problem,
    counted,
    decide,
    face_dict,
    frame_records,
    label_of,
    nearest_match,
    no_face_dict,
    shown,
)
from spherefer.evaluation.calibrate import choose_thresholds
from spherefer.runtime.tracking import LabelSmoother, SmoothingConfig

BAD_NAMES = [
    "",
    "   ",
    " padded",
    "padded ",
    "a/b",
    "back\\slash",
    ".",
    "..",
    "line\nbreak",
    "tab\there",
    "x" * 10_000,
    "x" * (MAX_CLASS_NAME_LENGTH + 1),
    *RESERVED_LABELS,
]
GOOD_NAMES = ["contempt", "happily surprised", "Überraschung-2", "a+b", "x" * MAX_CLASS_NAME_LENGTH, "..."]


# ---------------------------------------------------------------- labels and names


def test_reserved_labels_are_the_ones_everyone_imports() -> None:
    assert RESERVED_LABELS == (UNKNOWN, REJECTED, NO_FACE) == ("unknown", "rejected", "no_face")
    assert (face.REJECTED, face.NO_FACE) == (REJECTED, NO_FACE)


@pytest.mark.parametrize("name", BAD_NAMES, ids=lambda n: repr(n)[:20])
def test_bad_class_names_are_refused_with_the_reason_and_the_rule(name: str) -> None:
    problem = class_name_problem(name)
    assert problem is not None
    with pytest.raises(ValueError) as refused:
        check_class_name(name)
    message = str(refused.value)
    assert (
        message.startswith(f"{shown(name)} cannot be a class name ({problem}): a class name is") and "\n" not in message
    )
    assert len(message) < 400  # a 10k-character name is shown cut


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_good_class_names_pass(name: str) -> None:
    assert class_name_problem(name) is None and check_class_name(name) == name


def test_non_strings_are_not_names() -> None:
    with pytest.raises(ValueError, match="not a string but int"):
        check_class_name(5)


def test_counted_is_singular_only_for_one() -> None:
    assert [counted(n, "image") for n in (0, 1, 2)] == ["0 images", "1 image", "2 images"]
    assert counted(1, "class", "classes") == "1 class" and counted(3, "class", "classes") == "3 classes"


def test_shown_cuts_long_input() -> None:
    assert shown("abc") == "'abc'"
    assert len(shown("x" * 500)) == 80 and shown("x" * 500).endswith("...'")


# ---------------------------------------------------------------- the accept rule


def test_decide_accepts_the_nearest_class_at_or_above_its_threshold() -> None:
    cosines = np.array([[0.9, 0.1, 0.0], [0.5, 0.4, 0.0], [0.2, 0.7, 0.3], [0.3, 0.3, 0.1]], dtype=np.float32)
    thresholds = np.array([0.5, 0.8, 0.2], dtype=np.float32)
    decision = decide(cosines, thresholds)
    assert decision.nearest.tolist() == [0, 0, 1, 0]  # a tie goes to the first class
    np.testing.assert_array_equal(decision.score, np.array([0.9, 0.5, 0.7, 0.3], dtype=np.float32))
    assert decision.index.tolist() == [0, 0, -1, -1]  # 0.5 >= 0.5 is accepted; 0.7 < 0.8 is not
    assert decision.accepted.tolist() == [True, True, False, False]
    assert [label_of(i, ["a", "b", "c"]) for i in decision.index] == ["a", "a", UNKNOWN, UNKNOWN]
    one = decide(cosines[2], thresholds)
    assert (int(one.nearest), int(one.index)) == (1, -1)
    nearest, score = nearest_match(cosines)
    assert nearest.tolist() == decision.nearest.tolist() and score.tolist() == decision.score.tolist()
    with pytest.raises(ValueError, match="thresholds"):
        decide(cosines, thresholds[:2])


def test_decide_compares_the_given_scores_not_the_cosines() -> None:
    cosines = np.array([[0.9, 0.1], [0.2, 0.7], [0.6, 0.5]], dtype=np.float32)
    scores = np.array([-80.0, -10.0, -50.0], dtype=np.float32)  # e.g. relative Mahalanobis: the cosine does not matter
    decision = decide(cosines, np.array([-60.0, -20.0], dtype=np.float32), scores)
    assert decision.nearest.tolist() == [0, 1, 0]  # the class is still the nearest center
    assert decision.index.tolist() == [-1, 1, 0] and decision.score.tolist() == scores.tolist()
    with pytest.raises(ValueError, match="one score per face"):
        decide(cosines, np.zeros(2), scores[:2])


def _bank(thresholds: list[float | None], global_threshold: float = 0.6) -> CenterBank:
    bank = CenterBank(["a", "b", "c"], torch.eye(3, 4), threshold=global_threshold)
    for name, value in zip(bank.names, thresholds):
        bank.set_threshold(name, value)
    return bank


def test_the_bank_the_smoother_and_calibration_use_the_same_rule() -> None:
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(200, 4)).astype(np.float32)
    bank = _bank([0.3, None, 0.8], global_threshold=0.5)
    cosines = bank.cosine(embeddings)
    expected = decide(cosines, bank.thresholds())

    classified = bank.classify(embeddings)
    assert classified.indices.tolist() == expected.index.tolist()
    assert classified.labels == [label_of(i, bank.names) for i in expected.index]
    np.testing.assert_array_equal(classified.scores, expected.score)

    smoother = LabelSmoother.from_bank(bank, config=SmoothingConfig(alpha=1.0, margin=0.0, patience=1))
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    frame_labels = [smoother.update(0, e).decision for e in unit]
    assert frame_labels == [
        label_of(i, bank.names) for i in decide(unit.astype(np.float64) @ smoother.centers.T, smoother.thresholds).index
    ]
    assert frame_labels == classified.labels

    nearest, best = nearest_match(cosines)  # calibration quantiles the score the rule compares
    global_t, _ = choose_thresholds(best, nearest, np.zeros(len(cosines), int), bank.names, accept=0.5)
    assert global_t == pytest.approx(float(np.quantile(classified.scores, 0.5)))


def test_a_threshold_override_goes_through_the_same_rule() -> None:
    bank = _bank([None, None, 0.9], global_threshold=0.6)
    e = np.array([[0.0, 0.0, 1.0, 0.2], [0.4, 0.1, 0.0, 0.0]], dtype=np.float32)
    assert bank.classify(e).labels == ["c", "a"]
    assert bank.classify(e, threshold=0.99).labels == ["c", UNKNOWN]  # a class's own threshold still wins


# ---------------------------------------------------------------- records


def _prediction(label: str = "a") -> Prediction:
    return Prediction(
        label=label,
        score=-12.345678,
        cosine=0.123456,
        nearest="a",
        cosines={"a": 0.123456, "b": -0.5},
        probabilities={"a": 0.7777777, "b": 0.2222223},
    )


def test_prediction_to_dict_is_label_nearest_cosine_score_and_rounded_probabilities() -> None:
    assert _prediction().to_dict() == {
        "label": "a",
        "nearest": "a",
        "cosine": 0.1235,
        "score": -12.3457,
        "probabilities": {"a": 0.7778, "b": 0.2222},
    }
    assert _prediction().to_dict(digits=2)["cosine"] == 0.12


def test_an_unknown_face_keeps_its_nearest_class_in_records_and_captions() -> None:
    unknown = _prediction("unknown")
    assert unknown.to_dict()["nearest"] == "a" and unknown.caption == "unknown (a)"
    assert _prediction().caption == "a"


def test_face_records_and_the_no_face_record_share_one_schema() -> None:
    landmarks = {"right_eye": (10.04, 20.06), "left_eye": (30.0, 20.0)}
    classified = face_dict(
        0, 3, [1.04, 2, 3, 4], landmarks, 0.98765, _prediction(), _prediction("b"), [], {"size": 3.0}
    )
    rejected = face_dict(1, None, [1, 2, 3, 4], {}, 0.5, None, None, ["too small: 3 px", "too blurred"], {"size": 3.0})
    nothing = no_face_dict()
    assert tuple(classified) == tuple(rejected) == tuple(nothing) == FACE_FIELDS
    assert classified["label"] == "a" and classified["raw_label"] == "b" and classified["reason"] is None
    assert classified["box"] == [1.0, 2.0, 3.0, 4.0] and classified["landmarks"]["right_eye"] == [10.0, 20.1]
    assert classified["detector_score"] == 0.9877 and classified["cosine"] == 0.1235 and classified["score"] == -12.3457
    assert (
        rejected["label"] == rejected["raw_label"] == REJECTED and rejected["reason"] == "too small: 3 px; too blurred"
    )
    assert rejected["cosine"] is None and rejected["score"] is None and rejected["probabilities"] is None
    assert nothing["label"] == nothing["raw_label"] == NO_FACE and nothing["reason"] == "no face found"
    assert all(nothing[key] is None for key in FACE_FIELDS if key not in ("label", "raw_label", "reason"))


def test_frame_records_say_where_the_faces_come_from() -> None:
    faces = [{"face": 0, "label": "a"}, {"face": 1, "label": "b"}]
    assert frame_records("clip.mp4", faces, frame=7, time=0.28049) == [
        {"source": "clip.mp4", "frame": 7, "time": 0.28, "face": 0, "label": "a"},
        {"source": "clip.mp4", "frame": 7, "time": 0.28, "face": 1, "label": "b"},
    ]
    [empty] = frame_records("photo.jpg", [])
    assert (
        list(empty) == ["source", "frame", "time", *FACE_FIELDS]
        and empty["label"] == NO_FACE
        and empty["frame"] is None
    )


def test_a_face_record_writes_itself_with_face_dict() -> None:
    detected = face.DetectedFace([10, 20, 60, 80], [[20, 40], [50, 40]], ("right_eye", "left_eye"), 0.9, "test")
    record = face.FaceRecord(
        2,
        detected,
        np.zeros((48, 48, 3), np.uint8),
        {"size": 50.0},
        [],
        _prediction(),
        None,
        track=4,
        raw_prediction=_prediction("b"),
    )
    assert record.to_dict() == face_dict(
        2, 4, detected.box, record.landmarks, 0.9, _prediction(), _prediction("b"), [], {"size": 50.0}
    )
    assert (
        record.to_dict()["landmarks"]
        == detected.landmark_dict()
        == {"right_eye": [20.0, 40.0], "left_eye": [50.0, 40.0]}
    )


def test_names_are_kept_in_nfkc_and_slash_look_alikes_are_refused() -> None:
    import unicodedata

    decomposed = "cafe\u0301"
    assert check_class_name(decomposed) == unicodedata.normalize("NFC", decomposed) == "caf\u00e9"
    assert check_class_name("\uff21bc") == "Abc"  # a fullwidth letter is its plain form
    for name in ("a\u2215b", "a\uff0fb", "a\u2044b", "a\uff3cb"):
        with pytest.raises(ValueError, match="look-alike"):
            check_class_name(name)
