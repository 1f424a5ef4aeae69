"""The PyTorch network behind the embedder calls, and its ONNX graph: the two agree.

The shipped models run their ``model.onnx`` in ONNX Runtime; these tests keep that graph
equal to the PyTorch network of the ``model.safetensors`` shipped beside it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures import PATTERN_CLASSES, make_tiny_model
from skimage import data

import spherefer
from spherefer import CenterBank, Recognizer, create_model
from spherefer.face import align_face, detect_faces
from spherefer.runtime.embedders import METADATA_KEY, OnnxEmbedder
from spherefer.runtime.model_paths import shipped_models
from spherefer.training.torch_backend import TorchEmbedder, onnx_bytes, read_state_dict

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
    return Recognizer(TorchEmbedder(model.eval()), CenterBank.from_head(model.head, NAMES), card={"trained": False})


@pytest.fixture(scope="module")
def big() -> Recognizer:
    return default_sized_recognizer()


def real_looking_crops(count: int = 16) -> list[np.ndarray]:
    """The astronaut's face aligned at 48 px, then shifted, rotated, rescaled and re-lit."""
    import cv2

    photo = data.astronaut()
    [face] = detect_faces(photo)
    crops = []
    rng = np.random.default_rng(0)
    for _ in range(count):
        matrix = cv2.getRotationMatrix2D((256.0, 256.0), rng.uniform(-10, 10), rng.uniform(0.9, 1.1))
        matrix[:, 2] += rng.uniform(-6, 6, 2)
        moved = cv2.warpAffine(photo, matrix, (512, 512), borderMode=cv2.BORDER_REFLECT)
        lit = np.clip(moved.astype(np.float32) * rng.uniform(0.7, 1.3) + rng.uniform(-20, 20), 0, 255).astype(np.uint8)
        crops.append(align_face(lit, face, 48))
    return crops


def test_onnx_graph_matches_pytorch_on_random_inputs(big: Recognizer) -> None:
    embedder = OnnxEmbedder(onnx_bytes(big.model), threads=1)
    for batch in (1, 5, 64):  # the batch size is dynamic
        x = torch.randn(batch, 1, 48, 48, generator=torch.Generator().manual_seed(batch)) * 1.5
        with torch.inference_mode():
            expected = torch.nn.functional.normalize(big.model.embed(x), dim=1).numpy()
        got = embedder(x.numpy())
        assert got.shape == (batch, 512) and got.dtype == np.float32
        assert np.abs(got - expected).max() < TOLERANCE
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_onnx_graph_metadata_holds_the_config_and_card(big: Recognizer) -> None:
    import onnx

    proto = onnx.load_from_string(onnx_bytes(big.model, {"trained": False}))
    assert [i.name for i in proto.graph.input] == ["images"] and [o.name for o in proto.graph.output] == ["embeddings"]
    shape = proto.graph.input[0].type.tensor_type.shape.dim
    assert shape[0].dim_param == "batch" and [d.dim_value for d in shape[1:]] == [1, 48, 48]
    meta = json.loads({p.key: p.value for p in proto.metadata_props}[METADATA_KEY])
    assert spherefer.ModelConfig.from_dict(meta["model"]) == big.config and meta["card"] == {"trained": False}


def test_use_onnx_gives_the_same_embeddings_and_labels_on_real_looking_crops(big: Recognizer) -> None:
    crops = real_looking_crops()
    expected, labels = big.embed(crops), [p.label for p in big.predict(crops)]
    onnx = default_sized_recognizer().use_onnx(threads=1)
    assert onnx.backend == "onnx" and big.backend == "torch"
    assert np.abs(onnx.embed(crops) - expected).max() < TOLERANCE
    assert [p.label for p in onnx.predict(crops)] == labels


def test_saved_folders_load_with_either_backend(tmp_path: Path) -> None:
    recognizer = make_tiny_model(tmp_path / "tiny", PATTERN_CLASSES)
    assert {p.name for p in (tmp_path / "tiny").iterdir()} >= {
        "model.onnx",
        "model.safetensors",
        "config.json",
        "bank.safetensors",
    }
    crops = [np.random.default_rng(i).integers(0, 256, (16, 16), dtype=np.uint8) for i in range(10)]
    expected = recognizer.embed(crops)
    as_onnx = spherefer.load_model(tmp_path / "tiny")  # the folder's model.onnx
    as_torch = spherefer.load_model(tmp_path / "tiny", backend="torch")
    assert (as_onnx.backend, as_torch.backend) == ("onnx", "torch")
    assert np.abs(as_onnx.embed(crops) - expected).max() < TOLERANCE
    np.testing.assert_array_equal(as_torch.embed(crops), expected)
    as_onnx.save(tmp_path / "copy")  # an ONNX recognizer keeps the PyTorch weights it was loaded with
    assert (tmp_path / "copy" / "model.safetensors").read_bytes() == (
        tmp_path / "tiny" / "model.safetensors"
    ).read_bytes()
    np.testing.assert_array_equal(spherefer.load_model(tmp_path / "copy", backend="torch").embed(crops), expected)
    with pytest.raises(ValueError, match="backend must be one of"):
        spherefer.load_model(tmp_path / "tiny", backend="tensorrt")


def test_a_folder_without_model_onnx_loads_in_pytorch_and_says_how_to_get_one(tmp_path: Path) -> None:
    make_tiny_model(tmp_path / "tiny", PATTERN_CLASSES)
    (tmp_path / "tiny" / "model.onnx").unlink()
    assert spherefer.load_model(tmp_path / "tiny").backend == "torch"
    with pytest.raises(FileNotFoundError, match="has no model.onnx"):
        spherefer.load_model(tmp_path / "tiny", backend="onnx")


def test_analyze_gives_the_same_faces_with_either_backend(tmp_path: Path) -> None:
    recognizer = make_tiny_model(tmp_path / "tiny", PATTERN_CLASSES)
    photo = data.astronaut()
    [torch_face] = recognizer.analyze(photo)
    [onnx_face] = spherefer.load_model(tmp_path / "tiny").analyze(photo)
    assert onnx_face.label == torch_face.label
    assert onnx_face.prediction.score == pytest.approx(torch_face.prediction.score, abs=TOLERANCE)


def test_the_torch_embedder_owns_a_copy_of_the_network(big: Recognizer) -> None:
    model = create_model(num_classes=7).eval()
    embedder = TorchEmbedder(model)
    x = np.random.default_rng(0).standard_normal((2, 1, 48, 48)).astype(np.float32)
    before = embedder(x)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    np.testing.assert_array_equal(embedder(x), before)


@pytest.mark.parametrize("name", sorted(shipped_models()))
def test_each_shipped_onnx_graph_equals_its_safetensors_weights(name: str) -> None:
    folder = shipped_models()[name]
    config = spherefer.ModelConfig.from_dict(json.loads((folder / "config.json").read_text())["model"])
    network = spherefer.EmbeddingNet(config).eval()
    network.load_state_dict(read_state_dict(folder / "model.safetensors"))
    crops = real_looking_crops(32)
    shipped = spherefer.load_model(name, precision="fp32")
    assert shipped.backend == "onnx"
    batch = shipped.preprocess(crops)
    with torch.inference_mode():
        expected = torch.nn.functional.normalize(network.embed(torch.from_numpy(batch)), dim=1).numpy()
    assert np.abs(shipped.embed(crops) - expected).max() < TOLERANCE


@pytest.mark.parametrize(
    "name", sorted(name for name, folder in shipped_models().items() if (folder / "model.int8.onnx").is_file())
)
def test_each_shipped_int8_graph_stays_close_to_the_fp32_one(name: str) -> None:
    fp32, int8 = spherefer.load_model(name, precision="fp32"), spherefer.load_model(name)
    crops = real_looking_crops(32)
    cosines = np.sum(fp32.embed(crops) * int8.embed(crops), axis=1)
    assert cosines.min() > 0.99  # the same direction on the sphere, within about 8 degrees
    agree = np.mean([a.nearest == b.nearest for a, b in zip(fp32.predict(crops), int8.predict(crops))])
    assert agree >= 0.95
