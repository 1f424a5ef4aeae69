"""The shipped models: they are trained, `spherefer info` shows the default's card, and each
still reaches the accuracy its model card reports on the real data."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from realdata import realdata_path

import spherefer
from spherefer.cli import main
from spherefer.evaluation.evaluate import evaluate

FER_CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


@pytest.fixture(scope="module")
def default() -> spherefer.Recognizer:
    return spherefer.load_model("default")


def test_default_model_is_trained_on_the_seven_fer_classes(default):
    assert default.trained
    assert default.bank.names == FER_CLASSES
    assert "contempt" not in default.bank.names  # held out: the open-vocabulary protocols enrol it
    assert default.config.head == "cosface" and default.config.scale == 16.0 and default.config.margin == 0.25
    assert not default.config.neck_bias


def test_shipped_models_are_the_default_the_softmax_control_and_the_3d_model():
    models = {name: spherefer.load_model(name) for name in spherefer.shipped_models()}
    assert set(models) == {"default", "softmax", "sphere3d"}
    assert models["softmax"].config.head == "softmax" and models["sphere3d"].config.embedding_size == 3
    for name, model in models.items():
        assert model.trained and model.bank.names == FER_CLASSES, name
        assert model.card["name"] == name and set(model.card["results"]) == {
            "ferplus_test",
            "ckplus48",
            "fer2013_privatetest",
        }


def test_info_prints_version_card_and_classes(tmp_path, monkeypatch):
    monkeypatch.setenv("SPHEREFER_HOME", str(tmp_path))
    result = CliRunner().invoke(main, ["info"])
    assert result.exit_code == 0, result.output
    assert f"spherefer {spherefer.__version__}" in result.output
    assert "status: trained" in result.output
    assert "runs in: ONNX Runtime, int8 (available: fp32, int8)" in result.output
    softmax = CliRunner().invoke(main, ["info", "--model", "softmax"])
    assert "runs in: ONNX Runtime, fp32 (available: fp32)" in softmax.output
    assert "# Model card" in result.output and "Measured results" in result.output
    for name in FER_CLASSES:
        assert name in result.output


@pytest.mark.realdata
@pytest.mark.parametrize("precision", ["fp32", None], ids=["fp32", "as-loaded"])
@pytest.mark.parametrize("model", ["default", "softmax", "sphere3d"])
@pytest.mark.parametrize(
    "stem, dataset, split",
    [
        ("ferplus_test", "ferplus", "test"),
        ("ckplus48", "ckplus48", None),
        ("fer2013_privatetest", "fer2013", "privatetest"),
    ],
)
def test_shipped_model_reaches_its_reported_accuracy(model, stem, dataset, split, precision):
    """``model.onnx`` reaches the card's results; as loaded by default (``model.int8.onnx``
    where the card says int8 is shipped) it reaches the card's int8 row."""
    recognizer = spherefer.load_model(model, precision=precision)
    reported = recognizer.card["results"][stem]
    int8 = recognizer.card.get("int8", {})
    shipped_int8 = bool(int8.get("shipped", False))
    assert (spherefer.shipped_models()[model] / "model.int8.onnx").is_file() == shipped_int8
    expected = reported["accuracy"]
    if precision is None and shipped_int8:
        [row] = [row for row in int8["rows"] if row["data"] == stem]
        assert row["fp32"] == pytest.approx(reported["accuracy"], abs=1e-9)
        expected = row["int8"]
    spec = f"{dataset}:{realdata_path(dataset)}" + (f":{split}" if split else "")
    report = evaluate(recognizer, spec, progress=False)
    assert report.n == reported["n"]
    assert report.accuracy == pytest.approx(expected, abs=0.002)
