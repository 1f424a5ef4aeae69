"""Closed-set evaluation: metrics against scikit-learn, evaluate() on a fixture folder, saved reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fixtures import make_fer2013_folder, make_pattern_folder, make_tiny_model, write_image
from PIL import Image

import spherefer
from spherefer.evaluation.evaluate import classification_metrics, evaluate


@pytest.mark.parametrize(
    ("row_names", "col_names", "seed"),
    [
        (["angry", "happy", "sad"], ["angry", "happy", "sad", "surprise"], 0),  # the model also knows "surprise"
        (["sad", "angry"], ["angry", "happy", "sad", "surprise"], 1),  # evaluated order differs from the model's
        (["happy", "sad", "fear"], ["fear", "happy", "sad", "neutral", "pain"], 2),
    ],
)
def test_classification_metrics_match_sklearn(row_names: list[str], col_names: list[str], seed: int) -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    n = 200
    y_true = rng.integers(0, len(row_names), n)
    y_pred = rng.integers(0, len(col_names), n)
    y_pred[:40] = [col_names.index(row_names[t]) for t in y_true[:40]]  # some correct answers
    true_names = [row_names[i] for i in y_true]
    pred_names = [col_names[i] for i in y_pred]
    assert set(pred_names) - set(row_names)  # predictions fall on classes outside the evaluated set

    result = classification_metrics(y_true, y_pred, row_names, col_names)

    assert result["accuracy"] == pytest.approx(metrics.accuracy_score(true_names, pred_names))
    recall = metrics.recall_score(true_names, pred_names, labels=row_names, average=None, zero_division=0)
    precision = metrics.precision_score(true_names, pred_names, labels=row_names, average=None, zero_division=0)
    f1 = metrics.f1_score(true_names, pred_names, labels=row_names, average=None, zero_division=0)
    for i, name in enumerate(row_names):
        per_class = result["per_class"][name]
        assert per_class["recall"] == pytest.approx(recall[i])
        assert per_class["precision"] == pytest.approx(precision[i])
        assert per_class["f1"] == pytest.approx(f1[i])
        assert per_class["support"] == true_names.count(name)
    assert list(result["per_class"]) == row_names
    assert result["macro_f1"] == pytest.approx(
        metrics.f1_score(true_names, pred_names, labels=row_names, average="macro", zero_division=0)
    )
    full = metrics.confusion_matrix(true_names, pred_names, labels=col_names)
    expected = full[
        [col_names.index(name) for name in row_names]
    ]  # rows: evaluated classes, columns: all model classes
    np.testing.assert_array_equal(np.array(result["confusion"]), expected)


def test_classification_metrics_edge_cases() -> None:
    perfect = classification_metrics(np.array([0, 1, 1]), np.array([1, 0, 0]), ["b", "a"], ["a", "b"])
    assert perfect["accuracy"] == 1.0 and perfect["macro_f1"] == 1.0
    assert perfect["confusion"] == [[0, 1], [2, 0]]
    never = classification_metrics(np.array([0, 0]), np.array([1, 1]), ["a"], ["a", "b"])
    assert never["accuracy"] == 0.0 and never["per_class"]["a"] == {
        "recall": 0.0,
        "precision": 0.0,
        "f1": 0.0,
        "support": 2,
    }
    empty = classification_metrics(np.array([], dtype=int), np.array([], dtype=int), ["a"], ["a"])
    assert empty["accuracy"] == 0.0 and empty["confusion"] == [[0]]


# ---------------------------------------------------------------- evaluate() on a dataset


MODEL_CLASSES = ["sad", "happy", "angry"]  # "angry" has no images; "surprise" and "pain" are unknown to the model


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_pattern_folder(tmp_path_factory.mktemp("faces"), per_class=6)
    for i in range(3):
        write_image(root / "pain" / f"{i}.png", size=(16, 16), value=90)
    return root


@pytest.fixture(scope="module")
def recognizer_dir(tmp_path_factory: pytest.TempPathFactory, dataset_root: Path) -> Path:
    """A tiny untrained model whose threshold rejects about half of the evaluated faces as unknown."""
    folder = tmp_path_factory.mktemp("model")
    recognizer = make_tiny_model(folder, MODEL_CLASSES)
    scores = recognizer.bank.classify(recognizer.embed(sorted(dataset_root.glob("[hs]*/*.png")))).scores
    recognizer.bank.set_threshold(
        None, float(np.sort(scores)[(len(scores) - 1) // 2])
    )  # the lower median, a score itself
    recognizer.save(folder)
    return folder


def test_evaluate_reports_excluded_classes_and_matches_predict(dataset_root: Path, recognizer_dir: Path) -> None:
    recognizer = spherefer.load_model(recognizer_dir)
    report = evaluate(recognizer, f"folder:{dataset_root}", model_name="tiny", progress=False)

    assert report.data == f"folder:{dataset_root}" and report.model == "tiny"
    assert report.classes == ["happy", "sad"]  # dataset order, restricted to what the model knows
    assert report.predicted_classes == MODEL_CLASSES
    assert report.excluded == {"pain": 3, "surprise": 6}
    assert report.n == 12 and np.array(report.confusion).shape == (2, 3) and np.array(report.confusion).sum() == 12
    assert [m["support"] for m in report.per_class.values()] == [6, 6]

    # the same faces through the public predict path give the same confusion and unknown rate
    paths = [path for name in report.classes for path in sorted((dataset_root / name).glob("*.png"))]
    predictions = recognizer.predict(paths)
    expected = np.zeros((2, 3), dtype=int)
    for path, prediction in zip(paths, predictions):
        expected[report.classes.index(path.parent.name), MODEL_CLASSES.index(prediction.nearest)] += 1
    np.testing.assert_array_equal(np.array(report.confusion), expected)
    assert report.accuracy == pytest.approx((expected[0, 1] + expected[1, 0]) / 12)
    assert report.unknown_rate == pytest.approx(np.mean([p.is_unknown for p in predictions]))
    assert 0.0 < report.unknown_rate < 1.0
    assert report.threshold == pytest.approx(recognizer.bank.threshold)


def test_evaluate_normalises_the_spec_and_excludes_fer2013_classes(tmp_path: Path, recognizer_dir: Path) -> None:
    root = make_fer2013_folder(tmp_path / "fer")
    report = evaluate(spherefer.load_model(recognizer_dir), f"fer2013:{root}", progress=False)
    assert report.data == f"fer2013:{root}:train"  # the default split is spelled out
    assert report.classes == ["angry", "happy", "sad"] and report.n == 3  # train has no sad face
    assert [m["support"] for m in report.per_class.values()] == [2, 1, 0]
    assert not set(report.excluded) & set(MODEL_CLASSES) and not any(report.excluded.values())  # no image left out
    private = evaluate(spherefer.load_model(recognizer_dir), f"fer2013:{root}:privatetest", progress=False)
    assert private.n == 1 and private.per_class["sad"]["support"] == 1
    assert {name: count for name, count in private.excluded.items() if count} == {"neutral": 1}


def test_evaluate_refuses_a_dataset_without_known_classes(tmp_path: Path, recognizer_dir: Path) -> None:
    write_image(tmp_path / "pain" / "a.png", size=(16, 16))
    with pytest.raises(ValueError, match=r"has classes \['pain'\], none of which the model knows"):
        evaluate(spherefer.load_model(recognizer_dir), f"folder:{tmp_path}", progress=False)


def test_report_save_writes_json_markdown_and_png(dataset_root: Path, recognizer_dir: Path, tmp_path: Path) -> None:
    report = evaluate(spherefer.load_model(recognizer_dir), f"folder:{dataset_root}", model_name="tiny", progress=False)
    paths = report.save(tmp_path / "out", stem="patterns")
    assert [p.name for p in paths] == ["patterns.json", "patterns.md", "patterns_confusion.png"]

    saved = json.loads(paths[0].read_text())
    assert saved["accuracy"] == pytest.approx(report.accuracy) and saved["excluded"] == {"pain": 3, "surprise": 6}
    assert saved["confusion"] == report.confusion and saved["classes"] == ["happy", "sad"]

    markdown = paths[1].read_text()
    assert markdown == report.to_markdown()
    assert f"## tiny on folder:{dataset_root}" in markdown
    assert "excluded dataset classes the model does not know: pain (3), surprise (6)" in markdown
    for name in report.classes:
        m = report.per_class[name]
        assert f"| {name} | {m['recall']:.3f} | {m['precision']:.3f} | {m['f1']:.3f} | {m['support']} |" in markdown
        assert (
            f"| {name} | " + " | ".join(str(v) for v in report.confusion[report.classes.index(name)]) + " |" in markdown
        )
    assert "| | sad | happy | angry |" in markdown

    assert paths[2].stat().st_size > 0
    with Image.open(paths[2]) as image:
        assert image.format == "PNG" and image.width > 50 and image.height > 50
        image.verify()
