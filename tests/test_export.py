"""``spherefer export --onnx``: a model's ONNX graph with its center bank beside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from fixtures import PATTERN_CLASSES, make_tiny_model

import spherefer
from spherefer import CenterBank
from spherefer.cli import main
from spherefer.runtime.export import export_onnx, onnx_bank_path

TOLERANCE = 1e-4


def test_export_command_writes_the_graph_and_bank(tmp_path: Path) -> None:
    make_tiny_model(tmp_path / "tiny", PATTERN_CLASSES)
    target = tmp_path / "out" / "tiny.onnx"
    result = CliRunner().invoke(main, ["export", "--onnx", str(target), "--model", str(tmp_path / "tiny")])
    assert result.exit_code == 0, result.output
    assert f"wrote {target} (input N x 1 x 16 x 16, output N x 8)" in result.output
    assert f"wrote {tmp_path / 'out' / 'tiny.bank.safetensors'} (3 classes)" in result.output
    assert float(result.output.rsplit(":", 1)[1]) == 0.0  # the model's own graph, copied
    assert target.read_bytes() == (tmp_path / "tiny" / "model.onnx").read_bytes()
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    assert session.run(None, {"images": np.zeros((3, 1, 16, 16), np.float32)})[0].shape == (3, 8)
    assert CenterBank.load(tmp_path / "out" / "tiny.bank.safetensors").names == list(PATTERN_CLASSES)
    bad = CliRunner().invoke(main, ["export", "--onnx", str(tmp_path / "tiny.pt"), "--model", str(tmp_path / "tiny")])
    assert (
        bad.exit_code == 2
        and bad.stderr.strip() == f"error: the ONNX file name must end in .onnx, got {tmp_path / 'tiny.pt'}"
    )


def test_exporting_a_pytorch_network_checks_it_against_the_file(tmp_path: Path) -> None:
    recognizer = make_tiny_model(tmp_path / "tiny", PATTERN_CLASSES)  # a PyTorch recognizer
    result = export_onnx(recognizer, tmp_path / "fer.onnx", opset=17)
    assert result.max_abs_diff < TOLERANCE and result.bank_path == onnx_bank_path(tmp_path / "fer.onnx")
    assert onnx_bank_path(tmp_path / "fer.onnx").name == "fer.bank.safetensors"
    np.testing.assert_array_equal(CenterBank.load(result.bank_path).centers, recognizer.bank.centers)
    with pytest.raises(ValueError, match="an opset can only be chosen"):
        export_onnx(spherefer.load_model(tmp_path / "tiny"), tmp_path / "again.onnx", opset=13)


def test_use_onnx_takes_an_exported_file_and_refuses_another_models(tmp_path: Path) -> None:
    tiny = make_tiny_model(tmp_path / "tiny", PATTERN_CLASSES)
    other = make_tiny_model(tmp_path / "other", PATTERN_CLASSES, seed=1)  # same spec, other weights
    export_onnx(other, tmp_path / "other.onnx")
    crops = [np.random.default_rng(i).integers(0, 256, (16, 16), dtype=np.uint8) for i in range(6)]
    loaded = spherefer.load_model(tmp_path / "tiny").use_onnx(tmp_path / "other.onnx")
    assert np.abs(loaded.embed(crops) - other.embed(crops)).max() < TOLERANCE
    assert loaded.bank.names == tiny.bank.names  # the bank stays the recognizer's
    wider = make_tiny_model(tmp_path / "wider", PATTERN_CLASSES, embedding_size=12)
    export_onnx(wider, tmp_path / "wider.onnx")
    with pytest.raises(ValueError, match="differs from the expected"):
        tiny.use_onnx(tmp_path / "wider.onnx")
    assert tiny.backend == "torch"
    with pytest.raises(FileNotFoundError):
        tiny.use_onnx(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf")
    with pytest.raises(ValueError, match="cannot load the ONNX model"):
        tiny.use_onnx(tmp_path / "junk.onnx")
