"""Adapting a bank to unlabelled faces: the gated refinement on synthetic clouds, the CLI and
HTTP entry points, and the measured gain on real CK+48 faces (slow)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from fixtures import make_pattern_folder, moving_astronaut

import spherefer
from spherefer.bank.adapt import MAX_MOVE_DEGREES, MIN_ADAPT_FACES, adapt_bank, domain_shift
from spherefer.bank.centers import CenterBank
from spherefer.bank.records import TrainedClass
from spherefer.bank.unknown import FaceDensity, class_mean
from spherefer.cli import main

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
DATA = Path("~/.cache/spherefer-data").expanduser()


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _faces(
    rng: np.random.Generator, n: int, shift: np.ndarray | None = None, classes: tuple[int, ...] = (0, 1, 2)
) -> tuple[np.ndarray, np.ndarray]:
    """Unit embeddings of three classes around e0, e1, e2 in 8-d, optionally all displaced by ``shift``."""
    labels = np.resize(np.array(classes), n)
    x = np.eye(8)[labels] + 0.35 * rng.normal(size=(n, 8)) + (0 if shift is None else shift)
    return _unit(x), labels


def _bank_and_density(rng: np.random.Generator) -> tuple[CenterBank, FaceDensity]:
    x, labels = _faces(rng, 3000)
    means = np.stack([class_mean(x[labels == c]) for c in range(3)])
    bank = CenterBank(["a", "b", "c"], np.eye(8)[:3])
    bank.trained = {n: TrainedClass(c.copy()) for n, c in zip(bank.names, bank.centers)}
    bank.set_means(means)
    return bank, FaceDensity.fit(x, labels, means)


def _accuracy(bank: CenterBank, x: np.ndarray, labels: np.ndarray) -> float:
    return float((bank.cosine(x).argmax(1) == labels).mean())


def test_faces_like_the_training_faces_move_little() -> None:
    rng = np.random.default_rng(0)
    bank, density = _bank_and_density(rng)
    test_faces, test_labels = _faces(rng, 900)
    x, _ = _faces(rng, 400)
    adapted = copy.deepcopy(bank)
    report = adapt_bank(adapted, density, x)
    assert report.shift < 1.0 and report.weight < 0.5, report
    assert _accuracy(adapted, test_faces, test_labels) >= _accuracy(bank, test_faces, test_labels) - 0.01
    # faces of one class only: measured on real faces (the slow test below), where the shift is 0


def test_a_shifted_camera_moves_the_centers_towards_its_faces() -> None:
    rng = np.random.default_rng(1)
    bank, density = _bank_and_density(rng)
    shift = 0.9 * (np.eye(8)[1] - np.eye(8)[0]) + 0.5 * np.eye(8)[5]  # class a's faces now look half like b's
    adapt_faces, _ = _faces(rng, 600, shift)
    test_faces, test_labels = _faces(rng, 600, shift)
    before = _accuracy(bank, test_faces, test_labels)
    z = domain_shift(bank.centers.astype(np.float64), bank.means.astype(np.float64), density, adapt_faces)
    report = adapt_bank(bank, density, adapt_faces)
    assert z > 5 and report.shift > 5  # on all faces, and on those the bank accepts
    assert report.shift > 5 and report.weight > 0.8 and report.faces + report.left_out + report.duplicates == 600
    assert max(report.moved.values()) == pytest.approx(MAX_MOVE_DEGREES, abs=1e-3)  # one call moves 30 degrees at most
    assert _accuracy(bank, test_faces, test_labels) > before + 0.05
    adapt_bank(bank, density, adapt_faces)  # the same faces again take the centers further
    assert _accuracy(bank, test_faces, test_labels) > before + 0.1
    assert set(report.share_before) == set(report.share_after) == {"a", "b", "c"}
    assert "measured shift" in report.to_markdown()
    bank.restore_trained()  # adapting is undone like any other edit
    np.testing.assert_allclose(bank.centers, np.eye(8)[:3], atol=1e-6)


def test_refusals_leave_the_bank_as_it_was() -> None:
    rng = np.random.default_rng(2)
    bank, density = _bank_and_density(rng)
    before = bank.centers.copy()
    with pytest.raises(
        ValueError, match=rf"at least {MIN_ADAPT_FACES} distinct faces of the new setting .*, got \d \("
    ):
        adapt_bank(bank, density, _faces(rng, 5)[0])
    copies = np.repeat(_faces(rng, 1)[0], 100, axis=0)
    with pytest.raises(ValueError, match=r"got 1 \(0 unknown to the bank left out, 99 near-copies counted once\)"):
        adapt_bank(bank, density, copies)
    one_class, _ = _faces(rng, 200, classes=(0,))
    with pytest.raises(ValueError, match="at least 2 classes"):
        adapt_bank(bank, density, one_class)
    with pytest.raises(ValueError, match="class means and the model's face density"):
        adapt_bank(bank, None, _faces(rng, 100)[0])
    with pytest.raises(ValueError, match="dimension 4"):
        adapt_bank(bank, density, np.ones((100, 4)))
    np.testing.assert_array_equal(bank.centers, before)


def _example_crops(folder: Path) -> list[Path]:
    """30 aligned crops of the example photo's face, shifted and mirrored a little, as PNG files."""
    from PIL import Image

    [face] = spherefer.load_model("default").analyze(spherefer.core.images.example_photo())
    crop = np.asarray(face.crop)
    folder.mkdir(parents=True)
    for i in range(MIN_ADAPT_FACES):
        moved = np.roll(crop, (i % 5 - 2, i // 5 % 5 - 2), axis=(0, 1))
        Image.fromarray(moved[:, ::-1].copy() if i % 2 else moved).save(folder / f"{i:02d}.png")
    return sorted(folder.glob("*.png"))


def test_the_cli_refuses_one_face_sent_many_times_and_non_faces(tmp_path: Path) -> None:
    env = {"SPHEREFER_HOME": str(tmp_path / "home")}
    runner = CliRunner()
    crops = _example_crops(tmp_path / "crops")  # one person's face, shifted and mirrored: no evidence of a camera
    refused = runner.invoke(main, ["adapt", str(tmp_path / "crops"), "--aligned", "--dry-run"], env=env)
    assert refused.exit_code == 2 and "distinct faces of the new setting that the bank accepts" in refused.output, (
        refused.output
    )
    assert not (tmp_path / "home" / "banks" / "default.safetensors").exists()
    patterns = sorted(make_pattern_folder(tmp_path / "patterns", per_class=10, size=48).glob("*/*.png"))
    refused = runner.invoke(main, ["adapt", *map(str, patterns), "--aligned"], env=env)
    assert refused.exit_code == 2 and "unknown to the bank left out" in refused.output
    few = runner.invoke(main, ["adapt", str(crops[0]), "--aligned"], env=env)
    assert few.exit_code == 2 and "got 1 (0 unknown" in few.output


def test_the_service_refuses_copies_of_one_face_and_keeps_the_profile(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from spherefer.serve import build_app

    key = "k" * 24
    with TestClient(build_app("default", db=tmp_path / "banks.sqlite3", api_key=key)) as client:
        files = [("files", (path.name, path.read_bytes(), "image/png")) for path in _example_crops(tmp_path / "crops")]
        assert client.post("/v1/adapt?profile=lab", files=files, data={"aligned": "true"}).status_code == 401
        refused = client.post(
            "/v1/adapt?profile=lab", files=files, data={"aligned": "true"}, headers={"X-API-Key": key}
        )
        assert refused.status_code == 400 and "near-copies counted once" in refused.json()["detail"], refused.text
        assert client.get("/v1/versions?profile=lab").json()["version"] == 0


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/datasets (the real CK+48 and FER+ data)")
def test_adapting_to_ck_plus_faces_of_other_subjects_helps_and_fer_plus_costs_nothing() -> None:
    from spherefer.data import CKPlus48, FERPlus
    from spherefer.data.splits import subject_split
    from spherefer.evaluation.evaluate import embed_arrays

    if not (DATA / "ckplus48" / "CK+48").is_dir() or not (DATA / "ferplus" / "data").is_dir():
        pytest.skip("extract ckplus48.tar and ferplus.tar into ~/.cache/spherefer-data (see the README)")
    recognizer = spherefer.load_model("default")
    names = recognizer.bank.names
    ck = CKPlus48(DATA / "ckplus48")
    images, targets = ck.load_arrays(48)
    labels = np.array(ck.classes)[targets]
    shared = np.isin(labels, names)
    x = embed_arrays(recognizer, images[shared])
    y = np.array([names.index(n) for n in labels[shared]])
    adapt_on, test_on = subject_split(list(np.array(ck.subjects)[shared]), 0.5, seed=0)
    bank = copy.deepcopy(recognizer.bank)
    adapt_bank(bank, recognizer.density, x[adapt_on])
    assert (
        _accuracy(bank, x[test_on], y[test_on]) > _accuracy(recognizer.bank, x[test_on], y[test_on]) + 0.04
    )  # measured +7.4
    valid, valid_targets = FERPlus(DATA / "ferplus", "valid", classes=names).load_arrays(48)
    test, test_targets = FERPlus(DATA / "ferplus", "test", classes=names).load_arrays(48)
    bank = copy.deepcopy(recognizer.bank)
    report = adapt_bank(bank, recognizer.density, embed_arrays(recognizer, valid))
    x_test = embed_arrays(recognizer, test)
    assert (
        report.shift < 0.2
        and abs(_accuracy(bank, x_test, test_targets) - _accuracy(recognizer.bank, x_test, test_targets)) <= 0.005
    )
    happy_only = copy.deepcopy(recognizer.bank)
    valid_happy = embed_arrays(recognizer, valid[valid_targets == names.index("happy")])
    assert adapt_bank(happy_only, recognizer.density, valid_happy).shift < 0.2
    assert abs(_accuracy(happy_only, x_test, test_targets) - _accuracy(recognizer.bank, x_test, test_targets)) <= 0.005


def test_online_adaptation_restarts_from_the_starting_bank_every_time() -> None:
    from spherefer.bank.adapt import OnlineAdapter

    rng = np.random.default_rng(3)
    bank, density = _bank_and_density(rng)
    start = copy.deepcopy(bank)
    shift = 0.9 * (np.eye(8)[1] - np.eye(8)[0]) + 0.5 * np.eye(8)[5]
    adapter = OnlineAdapter(bank, density, window=200, every=100)
    faces = [_faces(rng, 50, shift)[0] for _ in range(6)]
    results = [adapter.add(batch) for batch in faces]
    assert [r is not None for r in results] == [False, True, False, True, False, True]
    expected = copy.deepcopy(start)
    adapt_bank(expected, density, np.concatenate(faces[-4:]))  # the last window, from the start: nothing compounds
    np.testing.assert_allclose(bank.centers, expected.centers, atol=1e-6)
    with pytest.raises(ValueError, match="window >= 30"):
        OnlineAdapter(bank, density, window=10)


def test_analyze_video_adapts_a_copy_of_the_bank(tmp_path: Path) -> None:
    path = moving_astronaut(tmp_path / "astronaut.avi", frames=6)
    recognizer = spherefer.load_model("default")
    before = recognizer.bank.centers.copy()
    plain = [f.faces[0].label for f in recognizer.analyze_video(path)]
    adapted = [f.faces[0].label for f in recognizer.analyze_video(path, adapt=True)]
    assert adapted == plain == ["happy"] * 6  # fewer than 100 faces: no adaptation yet, same labels
    np.testing.assert_array_equal(recognizer.bank.centers, before)
    result = CliRunner().invoke(
        main, ["predict", str(path), "--adapt", "--no-progress"], env={"SPHEREFER_HOME": str(tmp_path / "home")}
    )
    assert result.exit_code == 0 and result.output.count('"label": "happy"') == 6, result.output
