"""ONNX export and the ONNX Runtime backend: parity with PyTorch, file layout, `spherefer export --onnx`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from skimage import data

pytest.importorskip("onnx", reason="ONNX export needs the onnx package")
ort = pytest.importorskip("onnxruntime", reason="the ONNX backend needs onnxruntime")

import spherefer  # noqa: E402
from fixtures import PATTERN_CLASSES, make_tiny_model  # noqa: E402
from spherefer import CenterBank, Recognizer, create_model  # noqa: E402
from spherefer.cli import main  # noqa: E402
from spherefer.export import METADATA_KEY, OnnxEmbedder, export_onnx, onnx_bank_path  # noqa: E402
from spherefer.face import align_face, detect_faces  # noqa: E402

NAMES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
TOLERANCE = 1e-4


def default_sized_recognizer() -> Recognizer:
    """The shipped default architecture (fercnn 48 px, 512-d) with random weights and
    batch-norm statistics that are not the identity, as after training."""
    torch.manual_seed(0)
    model = create_model(num_classes=7)
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.2)
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
    model.eval()
    return Recognizer(model, CenterBank.from_head(model.head, NAMES), card={"trained": False})


@pytest.fixture(scope="module")
def big() -> Recognizer:
    return default_sized_recognizer()


@pytest.fixture(scope="module")
def big_onnx(big: Recognizer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(big, tmp_path_factory.mktemp("onnx") / "fer.onnx").path


def real_looking_crops() -> list[np.ndarray]:
    """The astronaut's face aligned at 48 px, then shifted, rotated, rescaled and re-lit."""
    import cv2

    photo = data.astronaut()
    [face] = detect_faces(photo)
    crops = []
    rng = np.random.default_rng(0)
    for _ in range(16):
        matrix = cv2.getRotationMatrix2D((256.0, 256.0), rng.uniform(-10, 10), rng.uniform(0.9, 1.1))
        matrix[:, 2] += rng.uniform(-6, 6, 2)
        moved = cv2.warpAffine(photo, matrix, (512, 512), borderMode=cv2.BORDER_REFLECT)
        lit = np.clip(moved.astype(np.float32) * rng.uniform(0.7, 1.3) + rng.uniform(-20, 20), 0, 255).astype(np.uint8)
        crops.append(align_face(lit, face, 48))
    return crops


def test_onnx_matches_pytorch_on_random_inputs(big: Recognizer, big_onnx: Path) -> None:
    embedder = OnnxEmbedder(big_onnx, threads=1)
    for batch in (1, 5, 64):  # the batch size is dynamic
        x = torch.randn(batch, 1, 48, 48, generator=torch.Generator().manual_seed(batch)) * 1.5
        with torch.inference_mode():
            expected = torch.nn.functional.normalize(big.model.embed(x), dim=1).numpy()
        got = embedder(x.numpy())
        assert got.shape == (batch, 512) and got.dtype == np.float32
        assert np.abs(got - expected).max() < TOLERANCE
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_onnx_matches_pytorch_on_real_looking_crops(big: Recognizer, big_onnx: Path) -> None:
    crops = real_looking_crops()
    expected = big.embed(crops)
    predictions = big.predict(crops)
    onnx = default_sized_recognizer().use_onnx(big_onnx, threads=1)
    assert onnx.backend == "onnx"
    got = onnx.embed(crops)
    assert np.abs(got - expected).max() < TOLERANCE
    assert [p.label for p in onnx.predict(crops)] == [p.label for p in predictions]
    assert onnx.use_torch().backend == "torch"


def test_exported_file_layout_and_metadata(big: Recognizer, big_onnx: Path) -> None:
    import onnx

    proto = onnx.load(str(big_onnx))
    assert [i.name for i in proto.graph.input] == ["images"] and [o.name for o in proto.graph.output] == ["embeddings"]
    shape = proto.graph.input[0].type.tensor_type.shape.dim
    assert shape[0].dim_param == "batch" and [d.dim_value for d in shape[1:]] == [1, 48, 48]
    meta = json.loads({p.key: p.value for p in proto.metadata_props}[METADATA_KEY])
    assert spherefer.ModelConfig.from_dict(meta["model"]) == big.config and meta["card"] == {"trained": False}
    bank = CenterBank.load(onnx_bank_path(big_onnx))
    assert onnx_bank_path(big_onnx).name == "fer.bank.safetensors" and bank.names == NAMES
    torch.testing.assert_close(bank.centers, big.bank.centers)


def test_use_onnx_in_memory_and_load_model_backend(tmp_path: Path) -> None:
    recognizer = make_tiny_model(tmp_path / "tiny", PATTERN_CLASSES)
    crops = [np.random.default_rng(i).integers(0, 256, (16, 16), dtype=np.uint8) for i in range(10)]
    expected = recognizer.embed(crops)
    assert np.abs(recognizer.use_onnx().embed(crops) - expected).max() < TOLERANCE  # exported in memory
    loaded = spherefer.load_model(tmp_path / "tiny", backend="onnx")
    assert loaded.backend == "onnx" and np.abs(loaded.embed(crops) - expected).max() < TOLERANCE
    with pytest.raises(ValueError, match="backend must be"):
        spherefer.load_model(tmp_path / "tiny", backend="tensorrt")
    other = make_tiny_model(tmp_path / "other", PATTERN_CLASSES, seed=1)  # same spec, other weights
    export_onnx(other, tmp_path / "tiny" / "model.onnx")
    from_file = spherefer.load_model(tmp_path / "tiny", backend="onnx")  # the folder's model.onnx wins
    assert np.abs(from_file.embed(crops) - other.embed(crops)).max() < TOLERANCE


def test_with_bank_keeps_the_onnx_session_and_the_backend_module_serves_both(tmp_path: Path) -> None:
    import spherefer.export as export
    import spherefer.onnx_backend as backend

    recognizer = make_tiny_model(tmp_path / "tiny", PATTERN_CLASSES).use_onnx()
    crops = [np.random.default_rng(i).integers(0, 256, (16, 16), dtype=np.uint8) for i in range(4)]
    bank = CenterBank(["x", "y"], torch.eye(recognizer.config.embedding_size)[:2])
    other = recognizer.with_bank(bank)
    assert other.backend == "onnx" and other.onnx is recognizer.onnx and other.model is recognizer.model
    np.testing.assert_array_equal(other.embed(crops), recognizer.embed(crops))
    assert {p.label for p in other.predict(crops, threshold=-1.0)} <= {"x", "y"} and recognizer.bank.names == list(PATTERN_CLASSES)
    assert isinstance(recognizer.onnx, backend.OnnxEmbedder)
    for name in ("OnnxEmbedder", "onnx_bytes", "METADATA_KEY", "ONNX_INPUT", "ONNX_OUTPUT", "DEFAULT_OPSET"):
        assert getattr(export, name) is getattr(backend, name), name  # spherefer.export keeps its public names


def test_use_onnx_refuses_another_models_file(big_onnx: Path, tmp_path: Path) -> None:
    tiny = make_tiny_model(tmp_path / "tiny", PATTERN_CLASSES)
    with pytest.raises(ValueError, match="differs from this model's"):
        tiny.use_onnx(big_onnx)
    assert tiny.backend == "torch"
    with pytest.raises(FileNotFoundError):
        tiny.use_onnx(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf")
    with pytest.raises(ValueError, match="cannot load the ONNX model"):
        tiny.use_onnx(tmp_path / "junk.onnx")


def test_analyze_with_onnx_gives_the_same_faces(tmp_path: Path) -> None:
    recognizer = make_tiny_model(tmp_path / "tiny", PATTERN_CLASSES)
    photo = data.astronaut()
    [torch_face] = recognizer.analyze(photo)
    [onnx_face] = recognizer.use_onnx().analyze(photo)
    assert onnx_face.label == torch_face.label
    assert onnx_face.prediction.score == pytest.approx(torch_face.prediction.score, abs=TOLERANCE)


def test_export_command(tmp_path: Path) -> None:
    make_tiny_model(tmp_path / "tiny", PATTERN_CLASSES)
    target = tmp_path / "out" / "tiny.onnx"
    result = CliRunner().invoke(main, ["export", "--onnx", str(target), "--model", str(tmp_path / "tiny")])
    assert result.exit_code == 0, result.output
    assert f"wrote {target} (input N x 1 x 16 x 16, output N x 8)" in result.output
    assert f"wrote {tmp_path / 'out' / 'tiny.bank.safetensors'} (3 classes)" in result.output
    diff = float(result.output.rsplit(":", 1)[1])
    assert diff < TOLERANCE
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    out = session.run(None, {"images": np.zeros((3, 1, 16, 16), np.float32)})[0]
    assert out.shape == (3, 8)
    assert CenterBank.load(tmp_path / "out" / "tiny.bank.safetensors").names == list(PATTERN_CLASSES)
    bad = CliRunner().invoke(main, ["export", "--onnx", str(tmp_path / "tiny.pt"), "--model", str(tmp_path / "tiny")])
    assert bad.exit_code == 2 and bad.stderr.strip() == f"error: the ONNX file name must end in .onnx, got {tmp_path / 'tiny.pt'}"
