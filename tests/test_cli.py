"""The spherefer command line through click's CliRunner: help, datasets, train errors, evaluate, predict."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner, Result
from fixtures import (
    PATTERN_CLASSES,
    make_fer2013_folder,
    make_pattern_folder,
    make_tiny_model,
    small_face_photo,
    tiny_config_file,
)
from PIL import Image
from realdata import realdata_path
from skimage import data

import spherefer
from spherefer.cli import main
from spherefer.cli.records import PHOTO_COLUMNS
from spherefer.data import DATASET_FORMATS
from spherefer.face import LANDMARK_NAMES
from spherefer.face import detect as face_detect
from spherefer.face import interface as face_interface


def run(*args: str) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_one_line_error(result: Result, pattern: str) -> None:
    """Exit code 2, a single 'error: ...' line on stderr matching ``pattern``, no traceback."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    assert re.search(pattern, lines[0]), lines[0]


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 pattern images per class, plus a corrupt .png and a text file in the same folder."""
    root = make_pattern_folder(tmp_path_factory.mktemp("faces"), per_class=2)
    (root / "happy" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not an image")
    (root / "notes.txt").write_text("not an image, not even a candidate")
    return root


def good_images(faces: Path) -> list[Path]:
    return sorted(path for path in faces.rglob("*.png") if path.name != "broken.png")


# ---------------------------------------------------------------- help, version, datasets


def test_help_lists_every_command() -> None:
    result = run("--help")
    assert result.exit_code == 0
    assert {"info", "train", "datasets", "evaluate", "predict"} <= set(main.commands)
    for name in main.commands:
        assert f"  {name}" in result.output
    assert run("-h").output == result.output


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0 and spherefer.__version__ in result.output


def test_datasets_lists_every_format_with_splits() -> None:
    result = run("datasets")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    for name, fmt in DATASET_FORMATS.items():
        [line] = [line for line in lines if line.split()[:1] == [name]]
        for split in fmt.splits:
            assert (f"{split}*" if split == fmt.default_split else split) in line
        if not fmt.splits:
            assert "(none)" in line
        assert fmt.description in result.output


# ---------------------------------------------------------------- train


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["epochs"], r"override 'epochs' must look like key=value"),
        (["model.marginn=0.3"], r"unknown config keys in model: \['marginn'\]"),
        (["epochz=3"], r"unknown config keys in the top level: \['epochz'\]"),
        (["optim.lr=-1"], r"optim.lr must be positive"),
        (["optim.lr=fast"], r"optim.lr must be a number"),
        (["data.classes=[happy"], r"is not valid YAML"),
        (["model.head=circle"], r"head 'circle' is not one of"),
        (["--config", "no-such-config.yaml"], r"config not found: no-such-config.yaml"),
    ],
)
def test_train_bad_config_is_a_one_line_error(args: list[str], pattern: str) -> None:
    assert_one_line_error(run("train", "--no-progress", *args), pattern)


def test_train_runs_from_a_config_file_with_overrides(tmp_path: Path) -> None:
    result = run("train", "--config", tiny_config_file(tmp_path, "cli"), "--no-progress", "model.margin=0.2")
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "runs" / "cli"
    assert f"run folder: {run_dir}" in result.stdout
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 1
    assert spherefer.load_model(run_dir / "best").config.margin == 0.2


# ---------------------------------------------------------------- evaluate


def test_evaluate_prints_markdown_and_writes_reports(model_dir: Path, tmp_path: Path) -> None:
    faces = make_pattern_folder(tmp_path / "faces", per_class=2)
    fer = make_fer2013_folder(tmp_path / "fer")
    out = tmp_path / "out"
    result = run(
        "evaluate",
        model_dir,
        "--data",
        f"folder:{faces}",
        "--data",
        f"fer2013:{fer}:privatetest",
        "--output",
        out,
        "--batch-size",
        "4",
    )
    assert result.exit_code == 0, result.output
    assert f"## {model_dir} on folder:{faces}" in result.stdout
    assert f"## {model_dir} on fer2013:{fer}:privatetest" in result.stdout
    assert "excluded dataset classes the model does not know" in result.stdout  # FER2013's angry, ..., neutral
    for stem in ("folder", "fer2013_privatetest"):
        for suffix in (".json", ".md", "_confusion.png"):
            path = out / f"{stem}{suffix}"
            assert path.is_file() and path.stat().st_size > 0
            assert f"wrote {path}" in result.stdout
    report = json.loads((out / "folder.json").read_text())
    assert report["classes"] == list(PATTERN_CLASSES) and report["n"] == 6
    assert json.loads((out / "fer2013_privatetest.json").read_text())["excluded"]["neutral"] == 1


def test_evaluate_bad_spec_and_missing_model_are_one_line_errors(faces: Path, model_dir: Path, tmp_path: Path) -> None:
    assert_one_line_error(run("evaluate", model_dir, "--data", "imagenet:/x"), r"unknown dataset format 'imagenet'")
    assert_one_line_error(run("evaluate", tmp_path / "nomodel", "--data", f"folder:{faces}"), r"no model folder")
    # faces/happy/broken.png is listed by the folder dataset but cannot be decoded
    assert_one_line_error(run("evaluate", model_dir, "--data", f"folder:{faces}"), r"cannot read image .*broken\.png")


# ---------------------------------------------------------------- predict


def test_classes_refuse_a_name_that_looks_like_a_class(editable: Path) -> None:
    result = run("classes", "compose", "h\u0430ppy", "happy", "sad", "--model", editable)
    assert_one_line_error(result, "would look like the existing class 'happy'")
    composed = run("classes", "compose", "cafe\u0301", "happy", "sad", "--model", editable)
    assert composed.exit_code == 0 and "caf\u00e9" in spherefer.load_model(editable).bank.names


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs (POSIX)")
def test_odd_paths_are_skipped_like_unreadable_files(photos: Path, tmp_path: Path) -> None:
    fifo, device = tmp_path / "fifo.jpg", tmp_path / "zero.jpg"
    os.mkfifo(fifo)  # opening it for reading would wait forever
    device.symlink_to("/dev/null" if not Path("/dev/zero").exists() else "/dev/zero")
    result = run("predict", fifo, device, photos / "astronaut.png", "--no-progress")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["source"] for r in records] == [str(photos / "astronaut.png")]
    assert (
        f"skipped {fifo}: " in result.stderr
        and f"skipped {device}: " in result.stderr
        and "not a regular file" in result.stderr
    )
    assert "2 of 3 files could not be read" in result.stderr


def test_predict_jsonl_one_line_per_readable_image(faces: Path, model_dir: Path) -> None:
    result = run("predict", faces, "--aligned", "--model", model_dir)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    expected_paths = good_images(faces)
    assert [r["source"] for r in records] == [str(p) for p in expected_paths]
    recognizer = spherefer.load_model(model_dir)
    for record, prediction in zip(records, recognizer.predict(expected_paths)):
        assert set(record) == {"source", "label", "nearest", "cosine", "score", "probabilities"}
        assert record["label"] == prediction.label
        assert record["cosine"] == pytest.approx(prediction.cosine, abs=1e-4)
        assert record["score"] == pytest.approx(prediction.score, abs=1e-4)
        assert list(record["probabilities"]) == list(PATTERN_CLASSES)
        assert sum(record["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
    broken = faces / "happy" / "broken.png"
    assert f"skipped {broken}: cannot read image" in result.stderr
    assert f"1 of {len(expected_paths) + 1} files could not be read" in result.stderr
    assert "notes.txt" not in result.output


def test_predict_csv_header_and_rows(faces: Path, model_dir: Path) -> None:
    images = good_images(faces)
    result = run("predict", *images, "--aligned", "--model", model_dir, "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["source", "label", "nearest", "cosine", "score", *PATTERN_CLASSES]
    assert [row[0] for row in rows[1:]] == [str(p) for p in images]
    for row in rows[1:]:
        assert row[1] in (*PATTERN_CLASSES, "unknown")
        assert (
            row[2] in PATTERN_CLASSES
            and -1.0 <= float(row[3]) <= 1.0
            and sum(map(float, row[5:])) == pytest.approx(1.0, abs=1e-3)
        )
    assert result.stderr == ""


def test_predict_threshold_option(faces: Path, model_dir: Path) -> None:
    images = good_images(faces)[:3]
    reject_all = [
        json.loads(line)["label"]
        for line in run("predict", *images, "--aligned", "--model", model_dir, "--threshold", "1.0").stdout.splitlines()
    ]
    accept_all = [
        json.loads(line)["label"]
        for line in run("predict", *images, "--aligned", "--model", model_dir, "--threshold", "-1").stdout.splitlines()
    ]
    assert reject_all == ["unknown"] * 3
    assert len(accept_all) == 3 and "unknown" not in accept_all
    refused = run("predict", *images, "--aligned", "--model", model_dir, "--threshold", "nan")
    assert refused.exit_code == 2 and "a threshold must be a finite number, got nan" in refused.stderr


def test_predict_missing_input_is_a_one_line_error(model_dir: Path, tmp_path: Path) -> None:
    assert_one_line_error(run("predict", tmp_path / "nothing.png", "--model", model_dir), r"nothing\.png")
    assert_one_line_error(run("predict", tmp_path / "nothing.png", "--aligned", "--model", model_dir), r"nothing\.png")


# ---------------------------------------------------------------- predict on whole photos

PHOTO_KEYS = {
    "source",
    "frame",
    "time",
    "face",
    "track",
    "box",
    "landmarks",
    "detector_score",
    "label",
    "raw_label",
    "nearest",
    "reason",
    "cosine",
    "score",
    "probabilities",
    "quality",
}


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """astronaut.png, a mirrored copy of the same name in more/, a noise image and a corrupt JPEG."""
    root = tmp_path_factory.mktemp("photos")
    astronaut = data.astronaut()
    Image.fromarray(astronaut).save(root / "astronaut.png")
    (root / "more").mkdir()
    Image.fromarray(np.ascontiguousarray(astronaut[:, ::-1])).save(root / "more" / "astronaut.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)).save(root / "noise.png")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    return root


def records_by_source(result: Result) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for line in result.stdout.splitlines():
        record = json.loads(line)
        out.setdefault(record["source"], []).append(record)
    return out


def test_predict_photos_one_record_per_face(photos: Path, model_dir: Path) -> None:
    result = run("predict", photos, "--model", model_dir)
    assert result.exit_code == 0, result.output
    records = records_by_source(result)
    assert sorted(records) == sorted(
        str(photos / name) for name in ("astronaut.png", "more/astronaut.png", "noise.png")
    )
    for name in ("astronaut.png", "more/astronaut.png"):
        [record] = records[str(photos / name)]
        assert set(record) == PHOTO_KEYS
        assert record["frame"] is None and record["time"] is None and record["track"] is None
        assert record["face"] == 0 and record["reason"] is None and record["raw_label"] == record["label"]
        assert record["label"] in (*PATTERN_CLASSES, "unknown")
        assert -1 <= record["cosine"] <= 1 and list(record["probabilities"]) == list(PATTERN_CLASSES)
        assert set(record["landmarks"]) == set(LANDMARK_NAMES) and record["detector_score"] > 0.5
        x0, y0, x1, y1 = record["box"]
        middle = (x0 + x1) / 2 if name == "astronaut.png" else 512 - (x0 + x1) / 2
        assert abs(middle - 226) < 10 and abs((y0 + y1) / 2 - 123) < 10
    [nothing] = records[str(photos / "noise.png")]
    assert set(nothing) == PHOTO_KEYS
    assert (
        nothing["label"] == "no_face"
        and nothing["reason"] == "no face found"
        and nothing["face"] is None
        and nothing["box"] is None
    )
    assert f"skipped {photos / 'broken.jpg'}: cannot read image" in result.stderr
    assert "1 of 4 files could not be read" in result.stderr


def test_predict_picks_the_detector(tmp_path: Path, model_dir: Path) -> None:
    """The astronaut with a 60 px face in a grey 640x480 photo: the default (yunet) finds it, blazeface does not."""
    photo = small_face_photo()
    Image.fromarray(photo).save(tmp_path / "small.png")
    [found] = [
        json.loads(line) for line in run("predict", tmp_path / "small.png", "--model", model_dir).stdout.splitlines()
    ]
    assert found["face"] == 0 and 200 < found["box"][0] < found["box"][2] < 500
    [missed] = [
        json.loads(line)
        for line in run(
            "predict", tmp_path / "small.png", "--model", model_dir, "--detector", "blazeface"
        ).stdout.splitlines()
    ]
    assert missed["label"] == "no_face"
    assert (
        "'dlib' is not one of"
        in run("predict", tmp_path / "small.png", "--model", model_dir, "--detector", "dlib").output
    )


def test_predict_photos_csv(photos: Path, model_dir: Path) -> None:
    result = run(
        "predict",
        photos / "astronaut.png",
        photos / "noise.png",
        "--model",
        model_dir,
        "--format",
        "csv",
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0]) == [*PHOTO_COLUMNS, *PATTERN_CLASSES]
    face, nothing = rows
    assert (
        face["face"] == "0"
        and face["frame"] == face["track"] == ""
        and float(face["right_eye_x"]) < float(face["left_eye_x"])
    )
    assert face["raw_label"] == face["label"]
    assert sum(float(face[name]) for name in PATTERN_CLASSES) == pytest.approx(1.0, abs=1e-3)
    assert nothing["label"] == "no_face" and nothing["x0"] == "" and nothing["reason"] == "no face found"
    assert result.stderr == ""


def test_predict_photos_quality_rejection_and_detector_choice(photos: Path, model_dir: Path) -> None:
    [rejected] = [
        json.loads(line)
        for line in run(
            "predict", photos / "astronaut.png", "--model", model_dir, "--min-face", "500"
        ).stdout.splitlines()
    ]
    assert rejected["label"] == "rejected" and rejected["reason"].startswith("too small")
    assert rejected["cosine"] is None and rejected["probabilities"] is None and rejected["box"] is not None
    result = run("predict", photos / "astronaut.png", "--model", model_dir, "--detector", "haar")
    assert result.exit_code == 0, result.output
    [haar] = [json.loads(line) for line in result.stdout.splitlines()]
    assert haar["detector_score"] is None and set(haar["landmarks"]) == {"right_eye", "left_eye"}
    assert run("predict", photos, "--model", model_dir, "--detector", "dlib").exit_code == 2


def test_predict_annotate_writes_base_names_into_the_folder_only(photos: Path, model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "annotated"
    before = {path: path.read_bytes() for path in photos.rglob("*") if path.is_file()}
    result = run("predict", photos, "--model", model_dir, "--annotate", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["astronaut-1.png", "astronaut.png", "noise.png"]
    drawn = np.asarray(Image.open(out / "astronaut.png"))
    assert drawn.shape == (512, 512, 3) and (drawn != data.astronaut()).any()
    # annotating into the photos' own folder never overwrites a photo
    result = run("predict", photos / "more" / "astronaut.png", "--model", model_dir, "--annotate", photos / "more")
    assert result.exit_code == 0, result.output
    assert (photos / "more" / "astronaut-1.png").is_file()
    (photos / "more" / "astronaut-1.png").unlink()
    assert {path: path.read_bytes() for path in photos.rglob("*") if path.is_file()} == before


def test_predict_example_and_usage_errors(model_dir: Path, photos: Path) -> None:
    result = run("predict", "--example", "--model", model_dir)
    assert result.exit_code == 0, result.output
    [record] = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["source"].endswith("astronaut.jpg") and record["face"] == 0
    assert "give image or video files or folders" in run("predict", "--model", model_dir).output
    result = run("predict", photos, "--aligned", "--annotate", photos / "out", "--model", model_dir)
    assert result.exit_code == 2 and "cannot be combined with --aligned" in result.output


def test_predict_without_the_detector_model_files_is_a_one_line_error(
    photos: Path, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A damaged install (the shipped detector files missing) names the file and the way out."""
    monkeypatch.setattr(face_interface, "resources", SimpleNamespace(files=lambda package: tmp_path / "damaged"))
    monkeypatch.setattr(face_detect, "_instances", {})
    assert_one_line_error(
        run("predict", photos, "--model", model_dir),
        r"face_detection_.*\.(tflite|onnx) is missing from the installed spherefer: reinstall it, or pass --detector "
        r"haar",
    )


# ---------------------------------------------------------------- classes and calibrate


@pytest.fixture
def editable(tmp_path: Path, faces: Path) -> Path:
    """A fresh copy of the tiny model (classes happy, sad), each test editing its own bank."""
    folder = tmp_path / "model"
    make_tiny_model(folder, PATTERN_CLASSES[:2])
    return folder


def bank_names(folder: Path) -> list[str]:
    return spherefer.load_model(folder).bank.names


def test_classes_add_update_rename_remove_reset(editable: Path, faces: Path) -> None:
    surprise = faces / "surprise"
    result = run("classes", "add", "astonished", surprise, "--aligned", "--model", editable, "--min-images", "2")
    assert result.exit_code == 0, result.output
    assert "enrolled 'astonished' from 2 images" in result.output
    bank = spherefer.load_model(editable).bank
    assert bank.names == ["happy", "sad", "astonished"] and bank.info["astonished"].origin == "enrolled"

    result = run(
        "classes", "update", "happy", faces / "happy" / "000.png", "--aligned", "--model", editable, "--momentum", "0.5"
    )
    assert result.exit_code == 0, result.output
    assert spherefer.load_model(editable).bank.info["happy"].updates == 1

    assert run("classes", "rename", "astonished", "amazed", "--model", editable).exit_code == 0
    assert run("classes", "remove", "sad", "--model", editable).exit_code == 0
    assert bank_names(editable) == ["happy", "amazed"]
    listing = run("classes", "list", "--model", editable).output
    assert "amazed" in listing and "enrolled" in listing and "sad" not in listing

    assert run("classes", "reset", "sad", "happy", "--model", editable).exit_code == 0
    restored = spherefer.load_model(editable).bank
    assert restored.names == ["happy", "amazed", "sad"] and restored.info["happy"].updates == 0
    assert run("classes", "reset", "--all", "--model", editable).exit_code == 0
    assert bank_names(editable) == ["happy", "sad"]


def test_classes_add_with_shots_and_estimated_threshold(editable: Path, faces: Path, tmp_path: Path) -> None:
    many = make_pattern_folder(tmp_path / "many", classes=["surprise"], per_class=8)
    result = run("classes", "add", "wow", many, "--aligned", "--model", editable, "--shots", "5", "--seed", "3")
    assert result.exit_code == 0, result.output
    bank = spherefer.load_model(editable).bank
    assert bank.info["wow"].count == 5
    assert bank.info["wow"].threshold is not None and bank.info["wow"].threshold <= bank.threshold


def test_classes_errors_are_one_line(editable: Path, faces: Path) -> None:
    assert_one_line_error(
        run("classes", "add", "happy", faces / "surprise", "--model", editable, "--min-images", "1"), "already exists"
    )
    assert_one_line_error(
        run("classes", "add", "new", faces / "surprise", "--model", editable), "at least 3 images, got 2"
    )
    assert_one_line_error(run("classes", "add", "new", faces / "nope", "--model", editable), "no such file or folder")
    assert_one_line_error(
        run("classes", "add", "new", faces / "surprise", "--model", editable, "--shots", "9"), "only 2 images"
    )
    assert_one_line_error(
        run("classes", "update", "joy", faces / "surprise", "--model", editable), "no class named 'joy'"
    )
    assert_one_line_error(run("classes", "remove", "joy", "--model", editable), "no class named 'joy'")
    assert_one_line_error(run("classes", "reset", "--model", editable), "name the classes")
    assert_one_line_error(run("classes", "compose", "x", "happy", "--model", editable), "at least two")
    assert bank_names(editable) == ["happy", "sad"]  # nothing was saved by a failed command


def test_classes_compose_export_import(editable: Path, tmp_path: Path) -> None:
    assert (
        run("classes", "compose", "bittersweet", "happy", "sad", "--weights", "1,2", "--model", editable).exit_code == 0
    )
    exported = tmp_path / "bank.safetensors"
    assert run("classes", "export", exported, "--model", editable).exit_code == 0
    assert run("classes", "reset", "--all", "--model", editable).exit_code == 0
    assert bank_names(editable) == ["happy", "sad"]
    assert run("classes", "import", exported, "--model", editable).exit_code == 0
    assert bank_names(editable) == ["happy", "sad", "bittersweet"]


def test_classes_import_refuses_another_models_bank(editable: Path, tmp_path: Path) -> None:
    other = make_tiny_model(tmp_path / "other", PATTERN_CLASSES[:2], embedding_size=4)
    other.bank.save(tmp_path / "other.safetensors")
    assert_one_line_error(
        run("classes", "import", tmp_path / "other.safetensors", "--model", editable),
        "4-d centers but the model embeds in 8",
    )
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes((tmp_path / "other.safetensors").read_bytes()[:50])
    assert_one_line_error(run("classes", "import", truncated, "--model", editable), "truncated")


def test_shipped_models_are_edited_in_the_user_bank(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, faces: Path
) -> None:
    monkeypatch.setenv("SPHEREFER_HOME", str(tmp_path / "home"))
    package_bank = spherefer.shipped_models()["default"] / "bank.safetensors"
    before = package_bank.read_bytes()
    result = run("classes", "compose", "bittersweet", "happy", "sad")
    assert result.exit_code == 0, result.output
    user_bank = tmp_path / "home" / "banks" / "default.safetensors"
    assert user_bank.is_file() and package_bank.read_bytes() == before
    info = run("info").output
    assert (
        "bittersweet" in info
        and "face detectors: yunet (default), blazeface, blazeface_full, haar (--detector)" in info
    )
    # one bank everywhere: the library sees the CLI's edit too, and the shipped classes stay one argument away
    assert "bittersweet" in spherefer.load_model("default").bank.names
    assert "bittersweet" not in spherefer.load_model("default", bank=package_bank).bank.names


@pytest.mark.slow
@pytest.mark.realdata
def test_teaching_contempt_from_ten_ck_plus_crops_keeps_happy_faces_happy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's enrolment as a new user runs it: under the paper's rule only 69 of the 207 happy faces stayed
    happy."""
    monkeypatch.setenv("SPHEREFER_HOME", str(tmp_path / "home"))
    ck = realdata_path("ckplus48") / "CK+48"
    shots = sorted((ck / "contempt").glob("*.png"))[:10]
    added = run("classes", "add", "contempt", *shots, "--aligned")
    assert added.exit_code == 0, added.output
    assert re.search(r"it would take (\d+% of \w+(, )?)+", added.output) and "(accepted)" not in added.output
    happy = run("predict", ck / "happy", "--aligned")
    records = [json.loads(line) for line in happy.stdout.splitlines()]
    assert len(records) == 207 and sum(r["label"] == "happy" for r in records) >= 0.95 * 207
    contempt = [json.loads(line) for line in run("predict", ck / "contempt", "--aligned").stdout.splitlines()]
    assert np.mean([r["label"] == "contempt" for r in contempt[10:]]) >= 0.5 and all("nearest" in r for r in contempt)
    recognizer = spherefer.load_model("default")
    assert "contempt" in recognizer.bank.names  # the library sees the CLI's class
    recognizer.bank.use_rule("paper")  # the paper's rule on the same bank: the new class takes most happy faces
    paper = recognizer.predict(sorted((ck / "happy").glob("*.png")))
    assert sum(p.label == "happy" for p in paper) < 0.5 * 207  # measured: 69 of 207
    assert run("classes", "undo").exit_code == 0 and "contempt" not in spherefer.load_model("default").bank.names


def test_calibrate_command(editable: Path, tmp_path: Path) -> None:
    data = make_pattern_folder(tmp_path / "calib", per_class=30)
    refused = run("calibrate", "--model", editable, "--data", f"folder:{data}", "--accept", "0.9", "--min-faces", "5")
    assert_one_line_error(refused, r"only \d+ distinct faces? .* --force")  # an untrained net sees near-copies
    result = run(
        "calibrate", "--model", editable, "--data", f"folder:{data}", "--accept", "0.9", "--min-faces", "5", "--force"
    )
    assert result.exit_code == 0, result.output
    assert "global threshold" in result.output and "accept 90% of known faces" in result.output
    assert spherefer.load_model(editable).bank.threshold != 0.6
    assert_one_line_error(
        run("calibrate", "--model", editable, "--data", f"folder:{data}", "--accept", "2"), "share of known faces"
    )


def test_the_cli_is_a_package_that_runs_with_python_m() -> None:
    import subprocess
    import sys

    import spherefer.cli.predict as predict_module

    assert predict_module.PHOTO_COLUMNS is PHOTO_COLUMNS and predict_module.__name__ == "spherefer.cli.predict"
    result = subprocess.run(
        [sys.executable, "-m", "spherefer.cli", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == f"spherefer, version {spherefer.__version__}"


# ---------------------------------------------------------------- hardening (#13): locking, calibration floor, photos,
# bad files, exit codes


def bomb_png(path: Path, side: int = 30000) -> Path:
    """A tiny PNG whose header declares a ``side`` x ``side`` greyscale image (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + chunk(b"IEND", b"")
    )
    return path


CONCURRENT_ADD = """
import sys, time
from pathlib import Path
from spherefer.cli import main
ready, go = Path(sys.argv[1]), Path(sys.argv[2])
ready.touch()
while not go.exists():
    time.sleep(0.005)
main(sys.argv[3:], prog_name="spherefer")
"""


def test_concurrent_classes_add_keeps_every_class(editable: Path, tmp_path: Path) -> None:
    """Several processes enrolling different classes into one bank at the same moment: every class survives."""
    import subprocess
    import sys
    import time

    crops = make_pattern_folder(tmp_path / "crops", classes=["surprise"], per_class=12)
    names = [f"class{i}" for i in range(4)]
    go = tmp_path / "go"
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                CONCURRENT_ADD,
                str(tmp_path / f"ready{i}"),
                str(go),
                "classes",
                "add",
                name,
                str(crops),
                "--aligned",
                "--model",
                str(editable),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, name in enumerate(names)
    ]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready{i}").exists() for i in range(len(names))) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()  # every process has imported spherefer: they start their edits together
    outputs = [worker.communicate(timeout=300) for worker in workers]
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0, err
        assert "saved" in out
    bank = spherefer.load_model(editable).bank
    assert sorted(bank.names) == sorted(["happy", "sad", *names])
    assert all(bank.info[name].count == 12 for name in names)
    assert (editable / "bank.safetensors.lock").is_file()  # the lock sits beside the bank


def test_calibrate_refuses_too_few_known_faces(editable: Path, tmp_path: Path) -> None:
    data = make_pattern_folder(tmp_path / "calib", per_class=6)  # 12 faces of the bank's classes
    before = (editable / "bank.safetensors").read_bytes()
    result = run("calibrate", "--model", editable, "--data", f"folder:{data}")
    assert_one_line_error(result, r"at least 50 faces of the bank's classes .* got 12 .* nothing stored")
    assert (editable / "bank.safetensors").read_bytes() == before  # nothing stored
    dry = run(
        "calibrate",
        "--model",
        editable,
        "--data",
        f"folder:{make_pattern_folder(tmp_path / 'more', per_class=30)}",
        "--dry-run",
        "--force",
    )
    assert dry.exit_code == 0 and (editable / "bank.safetensors").read_bytes() == before


def test_reset_all_restores_the_trained_threshold(editable: Path, tmp_path: Path) -> None:
    data = make_pattern_folder(tmp_path / "calib", per_class=30)
    assert (
        run("calibrate", "--model", editable, "--data", f"folder:{data}", "--min-faces", "5", "--force").exit_code == 0
    )
    calibrated = spherefer.load_model(editable).bank
    assert calibrated.threshold != 0.6 and calibrated.info["sad"].threshold is not None
    assert "(changed from the model's 0.6, which the card describes)" in run("info", "--model", editable).output
    result = run("classes", "reset", "--all", "--model", editable)
    assert result.exit_code == 0, result.output
    assert "threshold 0.600" in result.output
    restored = spherefer.load_model(editable).bank
    assert restored.threshold == 0.6 and all(restored.info[n].threshold is None for n in restored.names)


def test_reset_all_restores_the_shipped_threshold_of_a_bank_saved_before_it_was_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An editable bank written by an older spherefer (no trained threshold stored) with a broken threshold."""
    import json as json_module

    from spherefer.core.storage import read_safetensors, write_safetensors

    monkeypatch.setenv("SPHEREFER_HOME", str(tmp_path / "home"))
    shipped = spherefer.load_model("default").bank
    tensors, metadata = read_safetensors(spherefer.shipped_models()["default"] / "bank.safetensors", "bank")
    meta = json_module.loads(metadata["spherefer"])
    meta["threshold"] = 0.737
    del meta["trained_threshold"]  # as an older spherefer wrote it
    user_bank = tmp_path / "home" / "banks" / "default.safetensors"
    write_safetensors(user_bank, tensors, {"spherefer": json_module.dumps(meta)})
    assert spherefer.load_model("default", bank=user_bank).bank.threshold == 0.737
    result = run("classes", "reset", "--all")
    assert result.exit_code == 0, result.output
    assert spherefer.load_model("default", bank=user_bank).bank.threshold == shipped.threshold


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three photos of one face (as is, mirrored, shifted on a grey canvas), a photo without a face and a corrupt
    one."""
    root = tmp_path_factory.mktemp("enrol_photos")
    astronaut = data.astronaut()
    Image.fromarray(astronaut).save(root / "a.png")
    Image.fromarray(np.ascontiguousarray(astronaut[:, ::-1])).save(root / "b.png")
    canvas = np.full((640, 640, 3), 90, np.uint8)
    canvas[100:612, 60:572] = astronaut
    Image.fromarray(canvas).save(root / "c.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)).save(root / "noise.png")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    return root


def normalized_mean(x: np.ndarray) -> np.ndarray:
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    return unit.mean(0) / np.linalg.norm(unit.mean(0))


def test_classes_add_detects_and_aligns_the_faces_of_photos(editable: Path, photo_folder: Path) -> None:
    recognizer = spherefer.load_model(editable)
    faces = [recognizer.analyze(photo_folder / name)[0] for name in ("a.png", "b.png", "c.png")]
    result = run("classes", "add", "smile", photo_folder, "--model", editable)
    assert result.exit_code == 0, result.output
    assert "enrolled 'smile' from 3 images" in result.stdout
    assert f"skipped {photo_folder / 'noise.png'}: no usable face" in result.stderr
    assert f"skipped {photo_folder / 'broken.jpg'}: cannot read image" in result.stderr
    bank = spherefer.load_model(editable).bank
    assert bank.info["smile"].count == 3
    np.testing.assert_allclose(bank.center("smile"), normalized_mean(np.stack([f.embedding for f in faces])), atol=1e-5)

    before = bank.center("happy")
    result = run(
        "classes",
        "update",
        "happy",
        photo_folder / "a.png",
        photo_folder / "noise.png",
        "--model",
        editable,
        "--momentum",
        "0.5",
    )
    assert result.exit_code == 0, result.output
    assert f"skipped {photo_folder / 'noise.png'}: no usable face" in result.stderr
    expected = 0.5 * before + 0.5 * faces[0].embedding / np.linalg.norm(faces[0].embedding)
    np.testing.assert_allclose(
        spherefer.load_model(editable).bank.center("happy"), expected / np.linalg.norm(expected), atol=1e-5
    )


def test_classes_add_aligned_uses_crops_as_given_and_skips_bad_files(
    editable: Path, faces: Path, tmp_path: Path
) -> None:
    crops = make_pattern_folder(tmp_path / "crops", classes=["surprise"], per_class=4)
    bomb_png(crops / "surprise" / "bomb.png")
    (crops / "surprise" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not an image")
    good = sorted(p for p in crops.rglob("*.png") if p.stem.isdigit())
    result = run("classes", "add", "checkers", crops, "--aligned", "--model", editable)
    assert result.exit_code == 0, result.output
    assert "enrolled 'checkers' from 4 images" in result.stdout
    assert (
        f"skipped {crops / 'surprise' / 'bomb.png'}" in result.stderr
        and f"skipped {crops / 'surprise' / 'broken.png'}" in result.stderr
    )
    assert "Traceback" not in result.output
    expected = normalized_mean(spherefer.load_model(editable).embed(good))
    np.testing.assert_allclose(spherefer.load_model(editable).bank.center("checkers"), expected, atol=1e-5)
    # too few usable images after skipping: an error, nothing saved
    few = run(
        "classes",
        "add",
        "few",
        crops / "surprise" / "000.png",
        crops / "surprise" / "bomb.png",
        crops / "surprise" / "001.png",
        "--aligned",
        "--model",
        editable,
    )
    assert few.exit_code == 2 and "Traceback" not in few.output
    assert few.stderr.splitlines()[0].startswith(f"skipped {crops / 'surprise' / 'bomb.png'}")
    assert re.fullmatch(r"error: .*at least 3 images, got 2 \(1 skipped.*", few.stderr.splitlines()[-1])
    assert "few" not in bank_names(editable)


def test_predict_skips_a_decompression_bomb_and_goes_on(faces: Path, model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "crops"
    folder.mkdir()
    images = good_images(faces)[:3]
    for image in images:
        (folder / image.name.replace(".png", f"-{image.parent.name}.png")).write_bytes(image.read_bytes())
    bomb = bomb_png(folder / "bomb.png")
    result = run("predict", folder, "--aligned", "--model", model_dir)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert len(result.stdout.splitlines()) == 3 and f"skipped {bomb}" in result.stderr
    assert "1 of 4 files could not be read" in result.stderr


def test_predict_exits_non_zero_when_nothing_could_be_read(
    faces: Path, photos: Path, model_dir: Path, tmp_path: Path
) -> None:
    broken = faces / "happy" / "broken.png"
    aligned = run("predict", broken, "--aligned", "--model", model_dir)
    assert aligned.exit_code == 1 and aligned.stdout == ""
    assert "1 of 1 file could not be read" in aligned.stderr
    whole = run("predict", photos / "broken.jpg", "--model", model_dir)
    assert whole.exit_code == 1 and whole.stdout == "" and "1 of 1 file could not be read" in whole.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = run("predict", empty, "--model", model_dir)
    assert nothing.exit_code == 1 and "no image or video files" in nothing.stderr
    # one readable file is enough for success
    assert run("predict", photos / "broken.jpg", photos / "noise.png", "--model", model_dir).exit_code == 0


def test_predict_exits_non_zero_when_the_camera_cannot_be_opened(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cv2

    real = cv2.VideoCapture
    monkeypatch.setattr(cv2, "VideoCapture", lambda target, *a: real(str(tmp_path / "no camera"), *a))
    result = run("predict", "--webcam", "3", "--model", model_dir)
    assert result.exit_code == 1, result.output
    assert "skipped camera 3" in result.stderr and "camera 3 could not be opened" in result.stderr
    assert "file" not in result.stderr


def test_classes_update_moves_the_center_once_per_call(editable: Path, tmp_path: Path) -> None:
    """--momentum weighs the old center against the mean of all the new images, once: 24 images do not replace the
    center."""
    crops = sorted(make_pattern_folder(tmp_path / "crops", classes=["surprise"], per_class=24).rglob("*.png"))
    recognizer = spherefer.load_model(editable)
    before = recognizer.bank.center("happy")
    expected = 0.9 * before + 0.1 * normalized_mean(recognizer.embed(crops))
    expected /= np.linalg.norm(expected)
    angle = np.degrees(np.arccos(np.clip(before @ expected, -1, 1)))
    result = run("classes", "update", "happy", *crops, "--aligned", "--momentum", "0.9", "--model", editable)
    assert result.exit_code == 0, result.output
    after = spherefer.load_model(editable).bank
    np.testing.assert_allclose(after.center("happy"), expected, atol=1e-5)
    assert after.info["happy"].count == 24 and after.info["happy"].updates == 1
    assert "old center weight 0.90, new images' mean 0.10" in result.stdout
    assert f"center moved {angle:.2f} degrees" in result.stdout


def test_info_names_the_decision_rule() -> None:
    assert "decision rule: mean_gate -- trained classes by the cosine to their head centers" in run("info").output
