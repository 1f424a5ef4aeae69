"""Threshold calibration: the quantile rule on known cosines, and calibrate() end to end on a fixture."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures import PATTERN_CLASSES, make_pattern_folder, make_tiny_model

from spherefer.calibrate import MIN_CORRECT_ACCEPTED, calibrate, choose_thresholds


def test_choose_thresholds_is_the_false_match_quantile():
    # class 0: false matches at cosines 0.1 .. 0.9 (nearest 0, label 1); class 1 has no false matches
    false_scores = np.linspace(0.1, 0.9, 21)
    cos = np.stack([false_scores, false_scores - 0.5], axis=1)
    genuine = np.array([[0.2, 0.95], [0.1, 0.99]])
    cosines = np.concatenate([cos, genuine])
    labels = np.array([1] * 21 + [1, 1])
    global_t, per_class = choose_thresholds(cosines, labels, ["a", "b"], target_far=0.1, min_false=20)
    assert global_t == pytest.approx(np.quantile(false_scores, 0.9))
    assert per_class == {"a": pytest.approx(np.quantile(false_scores, 0.9)), "b": None}
    # at most 10% of the false matches score at or above the threshold
    assert (false_scores >= global_t).mean() <= 0.1 + 1 / 21


def test_unknown_faces_are_false_matches():
    cosines = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]])
    global_t, _ = choose_thresholds(cosines, np.array([-1, -1, 1]), ["a", "b"], target_far=0.5, min_false=1)
    assert global_t == pytest.approx(0.85)


@pytest.mark.parametrize("far", [0.0, 1.0, -0.1])
def test_bad_target_far(far):
    with pytest.raises(ValueError, match="target FAR"):
        choose_thresholds(np.eye(2), np.array([0, 1]), ["a", "b"], far)


def test_no_false_matches_is_an_error():
    with pytest.raises(ValueError, match="no false matches"):
        choose_thresholds(np.eye(2), np.array([0, 1]), ["a", "b"], 0.05)


def test_calibrate_stores_thresholds_in_the_bank(tmp_path):
    data = make_pattern_folder(tmp_path / "faces", per_class=12)
    recognizer = make_tiny_model(tmp_path / "model", classes=PATTERN_CLASSES[:2])
    result = calibrate(recognizer, f"folder:{data}", target_far=0.2, min_false=1, force=True)  # untrained: below the floor
    # the third pattern class is not in the bank: its faces are the unknowns
    assert result.n_unknown == 12 and result.n_known == 24
    assert recognizer.bank.threshold == pytest.approx(result.global_threshold)
    for name in PATTERN_CLASSES[:2]:
        own = result.class_thresholds[name]
        assert recognizer.bank.info[name].threshold == (None if own is None else pytest.approx(own))
    assert result.false_accept_rate <= 0.2 + 1e-9 + 1 / 12
    assert "global threshold" in result.to_markdown()


def test_calibrate_dry_run_leaves_the_bank(tmp_path):
    data = make_pattern_folder(tmp_path / "faces", per_class=6)
    recognizer = make_tiny_model(tmp_path / "model", classes=PATTERN_CLASSES[:2])
    calibrate(recognizer, f"folder:{data}", target_far=0.2, min_false=1, apply=False)
    assert recognizer.bank.threshold == 0.6
    assert all(recognizer.bank.info[n].threshold is None for n in recognizer.bank.names)


def test_calibrate_refuses_to_store_thresholds_below_the_floor(tmp_path):
    data = make_pattern_folder(tmp_path / "faces", per_class=6)
    recognizer = make_tiny_model(tmp_path / "model", classes=PATTERN_CLASSES[:2])  # untrained: few faces are matched right
    with pytest.raises(ValueError, match=r"correct faces accepted 16\.7%, below the floor of 50%") as refused:
        calibrate(recognizer, f"folder:{data}", target_far=0.2, min_false=1)
    assert "force" in str(refused.value)
    assert recognizer.bank.threshold == 0.6 and all(recognizer.bank.info[n].threshold is None for n in recognizer.bank.names)
    assert MIN_CORRECT_ACCEPTED == 0.5
    # a bank whose centers sit on the classes passes without force
    from spherefer.enrol import enrol_class

    for name in PATTERN_CLASSES[:2]:
        recognizer.bank.remove(name)
        enrol_class(recognizer.bank, name, recognizer.embed(sorted((data / name).glob("*.png"))))
    result = calibrate(recognizer, f"folder:{data}", target_far=0.2, min_false=1)
    assert result.genuine_accept_rate >= 0.5 and recognizer.bank.threshold == pytest.approx(result.global_threshold)
