"""Threshold calibration and fitting the unknown score: the quantile rule, calibrate() and
fit_unknown_score() end to end on fixtures, and on the shipped model with real faces (slow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fixtures import PATTERN_CLASSES, make_pattern_folder, make_tiny_model

import spherefer
from spherefer.core.labels import COSINE_SCORE, MAHALANOBIS_SCORE
from spherefer.evaluation.calibrate import (
    MIN_KNOWN_FACES,
    DegenerateCalibration,
    calibrate,
    check_calibration_data,
    choose_thresholds,
    fit_unknown_score,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
DATA = Path("~/.cache/spherefer-data").expanduser()


def test_choose_thresholds_is_the_known_faces_quantile() -> None:
    scores = np.linspace(0.0, 1.0, 101)
    nearest = np.r_[np.zeros(60, int), np.ones(41, int)]
    labels = np.r_[nearest[:100], -1]  # the last face is of a class the bank lacks
    global_t, per_class = choose_thresholds(scores, nearest, labels, ["a", "b"], accept=0.9, min_faces=50)
    assert global_t == pytest.approx(np.quantile(scores[:100], 0.1))
    assert per_class == {"a": pytest.approx(np.quantile(scores[:60], 0.1)), "b": None}  # b: 40 known faces < 50
    assert (scores[:100] >= global_t).mean() >= 0.9


@pytest.mark.parametrize("accept", [0.0, 1.0, -0.1])
def test_bad_acceptance(accept: float) -> None:
    with pytest.raises(ValueError, match="share of known faces"):
        choose_thresholds(np.zeros(100), np.zeros(100, int), np.zeros(100, int), ["a"], accept)


def test_too_few_known_faces_are_refused() -> None:
    labels = np.r_[np.zeros(MIN_KNOWN_FACES - 1, int), -np.ones(100, int)]
    with pytest.raises(ValueError, match=f"at least {MIN_KNOWN_FACES} faces of the bank's classes"):
        choose_thresholds(np.zeros(len(labels)), np.zeros(len(labels), int), labels, ["a"])


def test_calibrate_stores_thresholds_in_the_bank(tmp_path: Path) -> None:
    data = make_pattern_folder(tmp_path / "faces", per_class=30)
    recognizer = make_tiny_model(tmp_path / "model", classes=PATTERN_CLASSES[:2])
    result = calibrate(
        recognizer, f"folder:{data}", accept=0.8, min_faces=10, force=True
    )  # an untrained net: near-copies
    # the third pattern class is not in the bank: its faces are the unknowns
    assert result.n_unknown == 30 and result.n_known == 60 and result.score == COSINE_SCORE
    assert recognizer.bank.threshold == pytest.approx(result.global_threshold)
    for name in PATTERN_CLASSES[:2]:
        own = result.class_thresholds[name]
        assert recognizer.bank.info[name].threshold == (None if own is None else pytest.approx(own))
    assert result.known_accepted >= 0.8 - 1 / 30
    assert result.accuracy_after <= result.accuracy_before
    assert "global threshold" in result.to_markdown()


def test_calibrate_dry_run_and_refusal_leave_the_bank(tmp_path: Path) -> None:
    data = make_pattern_folder(tmp_path / "faces", per_class=30)
    recognizer = make_tiny_model(tmp_path / "model", classes=PATTERN_CLASSES[:2])
    calibrate(recognizer, f"folder:{data}", apply=False, force=True)
    few = make_pattern_folder(tmp_path / "few", per_class=10)
    with pytest.raises(ValueError, match="nothing stored"):
        calibrate(recognizer, f"folder:{few}")
    assert recognizer.bank.threshold == 0.6
    assert all(recognizer.bank.info[n].threshold is None for n in recognizer.bank.names)


def test_fit_unknown_score_turns_the_bank_and_survives_saving(tmp_path: Path) -> None:
    train = make_pattern_folder(tmp_path / "train", classes=PATTERN_CLASSES[:2], per_class=30)
    val = make_pattern_folder(tmp_path / "val", classes=PATTERN_CLASSES[:2], per_class=40, seed=1)
    recognizer = make_tiny_model(tmp_path / "model", classes=PATTERN_CLASSES[:2])
    result = fit_unknown_score(recognizer, f"folder:{train}", f"folder:{val}", accept=0.9)
    bank = recognizer.bank
    assert bank.score == MAHALANOBIS_SCORE and bank.threshold == bank.trained_threshold == pytest.approx(
        result.global_threshold
    )
    assert all(v is None for v in result.class_thresholds.values())
    assert recognizer.density is not None and recognizer.density.faces == 60
    recognizer.save(tmp_path / "model")
    loaded = spherefer.load_model(tmp_path / "model")
    assert loaded.bank.score == MAHALANOBIS_SCORE
    images = sorted((val / PATTERN_CLASSES[0]).glob("*.png"))
    scores = [p.score for p in loaded.predict(images)]
    np.testing.assert_allclose(scores, [p.score for p in recognizer.predict(images)], rtol=1e-4, atol=1e-3)
    assert np.mean([p.label != "unknown" for p in loaded.predict(images)]) >= 0.8


def test_fitting_needs_faces_of_every_class(tmp_path: Path) -> None:
    train = make_pattern_folder(tmp_path / "train", classes=PATTERN_CLASSES[:1], per_class=30)
    recognizer = make_tiny_model(tmp_path / "model", classes=PATTERN_CLASSES[:2])
    with pytest.raises(ValueError, match=rf"has none of \['{PATTERN_CLASSES[1]}'\]"):
        fit_unknown_score(recognizer, f"folder:{train}", f"folder:{train}")
    assert recognizer.bank.score == COSINE_SCORE and recognizer.density is None


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/datasets (the real FER+ and CK+48 data)")
def test_calibrating_the_shipped_model_on_real_faces(tmp_path: Path) -> None:
    if not (DATA / "ferplus" / "data").is_dir() or not (DATA / "ckplus48" / "CK+48").is_dir():
        pytest.skip("extract ferplus.tar and ckplus48.tar into ~/.cache/spherefer-data (see the README)")
    recognizer = spherefer.load_model("default")
    shipped = recognizer.bank.threshold
    result = calibrate(recognizer, f"ferplus:{DATA / 'ferplus'}:valid", min_faces=None, apply=False)
    # the shipped threshold is the one that accepts 95% of FER+ validation faces
    assert result.score == MAHALANOBIS_SCORE and result.global_threshold == pytest.approx(shipped, abs=0.5)
    assert 0.94 <= result.known_accepted <= 0.96 and result.accuracy_before - result.accuracy_after < 0.05
    # CK+'s contempt faces are unknown to the bank: calibrating on them alone is refused, nothing stored
    contempt = tmp_path / "contempt"
    (contempt / "contempt").mkdir(parents=True)
    for path in sorted((DATA / "ckplus48" / "CK+48" / "contempt").glob("*.png")):
        (contempt / "contempt" / path.name).write_bytes(path.read_bytes())
    with pytest.raises(ValueError, match="at least 50 faces of the bank's classes .* got 0 .* nothing stored"):
        calibrate(recognizer, f"folder:{contempt}")
    assert recognizer.bank.threshold == shipped


def test_degenerate_calibration_data_is_refused_unless_forced() -> None:
    rng = np.random.default_rng(0)
    names = ["a", "b"]
    varied = rng.normal(size=(120, 32))
    labels = np.repeat([0, 1], 60)
    check_calibration_data(varied, labels, names, accept=0.95)  # fine
    copies = np.repeat(varied[:1], 120, axis=0) + 1e-4 * rng.normal(size=(120, 32))
    with pytest.raises(DegenerateCalibration, match=r"only 1 distinct face among the 120 .* --force"):
        check_calibration_data(copies, labels, names, accept=0.95)
    with pytest.raises(DegenerateCalibration, match=r"one class \(a\)"):
        check_calibration_data(varied, np.zeros(120, int), names, accept=0.95)
    with pytest.raises(DegenerateCalibration, match="accepting 1% of the known faces leaves 99% of them unknown"):
        check_calibration_data(varied, labels, names, accept=0.01)


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/datasets (the real CK+48 data)")
def test_sixty_copies_of_one_real_face_are_refused(tmp_path: Path) -> None:
    import shutil

    import spherefer

    face = sorted((DATA / "ckplus48" / "CK+48" / "happy").glob("*.png"))[0]
    folder = tmp_path / "copies" / "happy"
    folder.mkdir(parents=True)
    for i in range(60):
        shutil.copy(face, folder / f"copy{i}.png")
    recognizer = spherefer.load_model("default")
    before = recognizer.bank.threshold
    with pytest.raises(DegenerateCalibration, match=r"only 1 distinct face among the 60 .*nothing stored"):
        calibrate(recognizer, f"folder:{tmp_path / 'copies'}")
    with pytest.raises(DegenerateCalibration, match="leaves 99% of them unknown"):
        calibrate(recognizer, f"ferplus:{DATA / 'ferplus'}:valid", accept=0.01)
    assert recognizer.bank.threshold == before
