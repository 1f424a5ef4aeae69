"""FaceTracker on synthetic box sequences and LabelSmoother's math (pure logic, no images)."""

from __future__ import annotations

import numpy as np
import pytest

from spherefer.bank.centers import CenterBank
from spherefer.core.labels import UNKNOWN
from spherefer.runtime.tracking import FaceTracker, LabelSmoother, SmoothingConfig, box_iou


def box(x: float, y: float, side: float = 60.0) -> list[float]:
    return [x, y, x + side, y + side]


# ---------------------------------------------------------------- tracker


def test_box_iou() -> None:
    assert box_iou(box(0, 0, 10), box(0, 0, 10))[0, 0] == pytest.approx(1.0)
    assert box_iou(box(0, 0, 10), box(5, 0, 10))[0, 0] == pytest.approx(50 / 150)
    assert box_iou(box(0, 0, 10), box(20, 0, 10))[0, 0] == 0.0
    assert box_iou(np.empty((0, 4)), [box(0, 0)]).shape == (0, 1)


def test_ids_are_stable_for_one_moving_face_and_new_faces_get_new_ids() -> None:
    tracker = FaceTracker()
    assert [tracker.update([box(100 + 4 * t, 50 + 2 * t)]) for t in range(20)] == [[0]] * 20
    assert tracker.update([box(400, 300), box(180, 90)]) == [1, 0]  # a new face; order of the boxes does not matter
    assert tracker.update([]) == []
    assert tracker.update([box(184, 92), box(400, 300)]) == [0, 1]


@pytest.mark.parametrize("occluded", [False, True])
def test_crossing_faces_keep_their_ids(occluded: bool) -> None:
    """Two faces walk through each other (boxes overlapping up to IoU ~0.7); while they
    overlap the one behind may be missing; the boxes come in the detector's order."""
    tracker = FaceTracker()
    rng = np.random.default_rng(0)
    seen: dict[str, set[int]] = {"a": set(), "b": set()}
    for t in range(40):
        a = box(20 + 8 * t, 100)
        b = box(340 - 8 * t, 110)
        faces = {"a": a, "b": b}
        if occluded and abs(a[0] - b[0]) < 40:
            del faces["b"]
        names = list(faces)
        rng.shuffle(names)
        for name, track in zip(names, tracker.update([faces[name] for name in names])):
            seen[name].add(track)
    assert seen == {"a": {0}, "b": {1}}


def test_a_face_returning_after_max_age_gets_a_new_id() -> None:
    tracker = FaceTracker(max_age=5)
    for _ in range(10):
        assert tracker.update([box(100, 100)]) == [0]
    for _ in range(5):  # gone for max_age frames: still remembered
        assert tracker.update([]) == [] and tracker.removed == []
    assert tracker.update([box(102, 101)]) == [0]
    for _ in range(5):
        tracker.update([])
    assert tracker.update([]) == [] and tracker.removed == [0]  # the 6th frame without it: dropped
    assert tracker.update([box(100, 100)]) == [1]  # back, but a new face as far as the tracker knows
    assert [track.id for track in tracker.tracks] == [1]


def test_a_face_of_very_different_size_is_not_the_same_track() -> None:
    tracker = FaceTracker()
    assert tracker.update([box(100, 100, 60)]) == [0]
    assert tracker.update([[70.0, 70.0, 220.0, 220.0]]) == [1]  # same centre, 2.5 times the size


def test_tracker_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="max_age"):
        FaceTracker(max_age=-1)
    with pytest.raises(ValueError, match="max_size_ratio"):
        FaceTracker(max_size_ratio=0.5)


# ---------------------------------------------------------------- smoother


def unit(*values: float) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    return v / np.linalg.norm(v)


def two_class_smoother(config: SmoothingConfig, thresholds: tuple[float, float] = (-1.0, -1.0)) -> LabelSmoother:
    return LabelSmoother(np.eye(3)[:2], ["a", "b"], thresholds, config)


def test_embedding_ema_matches_its_closed_form() -> None:
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(4, 6))
    smoother = LabelSmoother(centers, list("wxyz"), [0.0] * 4, SmoothingConfig(alpha=0.3, patience=1000))
    e = rng.normal(size=(12, 6))
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    for t in range(1, len(e) + 1):
        out = smoother.update(7, e[t - 1])
        expected = (0.7 ** (t - 1)) * e[0] + sum(0.3 * 0.7 ** (t - k) * e[k - 1] for k in range(2, t + 1))
        expected /= np.linalg.norm(expected)
        np.testing.assert_allclose(out.embedding, expected, atol=1e-6)
        np.testing.assert_allclose(
            out.cosines, (centers / np.linalg.norm(centers, axis=1, keepdims=True)) @ expected, atol=1e-6
        )
        assert np.linalg.norm(out.embedding) == pytest.approx(1.0, abs=1e-6)


def test_without_smoothing_the_label_is_each_frames_own_decision() -> None:
    rng = np.random.default_rng(1)
    bank = CenterBank(["p", "q", "r"], rng.normal(size=(3, 5)), threshold=0.3)
    bank.set_threshold("q", 0.1)
    smoother = LabelSmoother.from_bank(bank, config=SmoothingConfig(alpha=1.0, margin=0.0, patience=1))
    embeddings = rng.normal(size=(40, 5))
    expected = bank.classify(embeddings).labels
    got = [smoother.update(0, e).label for e in embeddings]
    assert got == expected and UNKNOWN in got and len(set(got)) >= 3


def test_hysteresis_holds_against_short_blips_and_switches_after_patience_frames() -> None:
    smoother = two_class_smoother(SmoothingConfig(alpha=1.0, margin=0.05, patience=3))
    a, b = unit(1, 0.2, 0), unit(0.2, 1, 0)
    labels = [smoother.update(0, e).label for e in [a, a, b, b, a, b, a, b, b, a]]
    assert labels == ["a"] * 10  # never three b frames in a row
    decisions, labels = [], []
    for e in [b, b, b, b]:
        out = smoother.update(0, e)
        decisions.append(out.decision)
        labels.append(out.label)
    assert decisions == ["b"] * 4 and labels == ["a", "a", "b", "b"]  # switches on the 3rd consecutive frame


def test_hysteresis_margin_keeps_the_label_near_the_border() -> None:
    smoother = two_class_smoother(SmoothingConfig(alpha=1.0, margin=0.05, patience=2))
    assert smoother.update(0, unit(1, 0.5, 0)).label == "a"
    just_past = unit(1.0, 1.02, 0)  # b leads by ~0.014 < margin
    outs = [smoother.update(0, just_past) for _ in range(10)]
    assert {o.decision for o in outs} == {"b"} and {o.label for o in outs} == {"a"}
    clearly = unit(1.0, 1.3, 0)  # b leads by ~0.18
    assert [smoother.update(0, clearly).label for _ in range(2)] == ["a", "b"]


def test_unknown_transitions_use_the_threshold_as_the_border() -> None:
    smoother = two_class_smoother(SmoothingConfig(alpha=1.0, margin=0.05, patience=2), thresholds=(0.8, 0.8))
    assert smoother.update(0, unit(1, 0.1, 0)).label == "a"
    slightly_below = unit(0.78, 0, 0.626)  # cos_a = 0.78: below 0.8 by only 0.02
    assert {smoother.update(0, slightly_below).label for _ in range(5)} == {"a"}
    far = unit(0.5, 0, 0.866)  # cos_a = 0.5: 0.3 below the threshold
    assert [smoother.update(0, far).label for _ in range(2)] == ["a", UNKNOWN]
    assert smoother.update(0, unit(0.1, 1, 0)).decision == "b"  # back to a class needs patience too
    assert smoother.update(0, unit(0.1, 1, 0)).label == "b"


def test_with_an_unknown_score_the_smoother_compares_the_score_not_the_cosine() -> None:
    # score: how far the embedding's third coordinate is below 0.5 (a stand-in for the relative Mahalanobis score)
    smoother = LabelSmoother(
        np.eye(3)[:2],
        ["a", "b"],
        (0.0, 0.0),
        SmoothingConfig(alpha=1.0, margin=0.05, patience=2),
        score=lambda e: 0.5 - float(e[2]),
    )
    assert smoother.update(0, unit(1, 0.1, 0.9)).label == UNKNOWN  # cos_a 0.74 would pass any cosine rule; score -0.16
    assert smoother.update(0, unit(1, 0.1, 0.1)).decision == "a"  # score 0.4: accepted, on patience
    assert smoother.update(0, unit(1, 0.1, 0.1)).label == "a"
    slightly = unit(1, 0, 0.61)  # score about -0.02: below the threshold by less than the margin, so held
    assert {smoother.update(0, slightly).label for _ in range(4)} == {"a"}
    far = unit(1, 0, 1.5)  # score about -0.33
    assert [smoother.update(0, far).label for _ in range(2)] == ["a", UNKNOWN]


def test_tracks_are_independent_and_forget_resets() -> None:
    smoother = two_class_smoother(SmoothingConfig(alpha=0.5, margin=0.0, patience=5))
    a, b = unit(1, 0, 0), unit(0, 1, 0)
    assert smoother.update(1, a).label == "a" and smoother.update(2, b).label == "b"
    assert smoother.update(1, b).label == "a"  # track 1 holds a
    smoother.forget(1)
    assert 1 not in smoother and 2 in smoother
    assert smoother.update(1, b).label == "b"  # a fresh track takes its first decision at once


def test_smoothing_config_validation() -> None:
    for bad in ({"alpha": 0.0}, {"alpha": 1.5}, {"margin": -0.1}, {"patience": 0}):
        with pytest.raises(ValueError):
            SmoothingConfig(**bad)
    with pytest.raises(ValueError, match="dimensions"):
        two_class_smoother(SmoothingConfig()).update(0, np.ones(4))
