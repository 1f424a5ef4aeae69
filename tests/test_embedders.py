"""Preprocessing without PIL round trips, and the ONNX Runtime embedder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fixtures import PATTERN_CLASSES, make_tiny_model
from PIL import Image

import spherefer
from spherefer.core.onnx_sessions import default_threads
from spherefer.runtime.embedders import OnnxEmbedder, normalize_pixels, preprocess
from spherefer.runtime.model_config import ModelConfig

GREY = ModelConfig(input_size=48, in_channels=1, mean=(0.5,), std=(0.25,))
RGB = ModelConfig(input_size=48, in_channels=3, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3))


def pil_reference(image: np.ndarray | Image.Image, config: ModelConfig) -> np.ndarray:
    """What preprocessing did before the fast path: PIL conversion and bilinear resize, then (x/255 - mean)/std."""
    pil = image if isinstance(image, Image.Image) else Image.fromarray(image)
    pil = pil.convert("L" if config.in_channels == 1 else "RGB").resize((config.input_size,) * 2, Image.BILINEAR)
    x = np.asarray(pil, dtype=np.float64).reshape(config.input_size, config.input_size, config.in_channels) / 255.0
    x = (x - np.array(config.mean)) / np.array(config.std)
    return x.transpose(2, 0, 1).astype(np.float32)


@pytest.mark.parametrize("config", [GREY, RGB], ids=["grey model", "rgb model"])
def test_fast_path_equals_the_pil_conversion(config: ModelConfig) -> None:
    rng = np.random.default_rng(0)
    crops = [
        rng.integers(0, 256, (48, 48, 3), dtype=np.uint8),  # RGB at the input size: no PIL
        rng.integers(0, 256, (48, 48), dtype=np.uint8),  # grey at the input size
        rng.integers(0, 256, (48, 48, 1), dtype=np.uint8),
        rng.integers(0, 256, (70, 50, 3), dtype=np.uint8),  # another size: resized by PIL
    ]
    batch = preprocess(crops, config)
    assert batch.shape == (4, config.in_channels, 48, 48) and batch.dtype == np.float32 and batch.flags.c_contiguous
    for crop, row in zip(crops, batch):
        np.testing.assert_allclose(row, pil_reference(crop.squeeze(), config), atol=1e-6)


def test_pil_images_paths_and_rgba_arrays_take_the_general_path(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    rgba = rng.integers(0, 256, (48, 48, 4), dtype=np.uint8)
    rgb = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "face.png")
    batch = preprocess([rgba, Image.fromarray(rgb), tmp_path / "face.png", rgb], GREY)
    composited = (rgba[:, :, :3].astype(np.float64) * rgba[:, :, 3:] / 255.0).round().astype(np.uint8)  # alpha on black
    np.testing.assert_allclose(batch[0], pil_reference(composited, GREY), atol=2 / 255 / 0.25)
    np.testing.assert_array_equal(batch[1], batch[3])
    np.testing.assert_array_equal(batch[2], batch[3])
    assert preprocess([], GREY).shape == (0, 1, 48, 48)


def test_normalize_pixels_is_the_closed_form() -> None:
    pixels = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)  # one 2x2 grey crop
    config = ModelConfig(input_size=16, in_channels=3, mean=(0.5, 0.0, 1.0), std=(0.5, 1.0, 2.0))
    out = normalize_pixels(pixels, config)
    x = pixels[0] / 255.0
    assert out.shape == (1, 3, 2, 2) and out.dtype == np.float32
    for channel, (mean, std) in enumerate(zip(config.mean, config.std)):  # grey repeated to the three channels
        np.testing.assert_allclose(out[0, channel], (x - mean) / std, rtol=1e-6)


def test_onnx_embedder_reads_its_config_and_refuses_what_it_cannot_run(tmp_path: Path) -> None:
    make_tiny_model(tmp_path / "tiny", PATTERN_CLASSES)
    data = (tmp_path / "tiny" / "model.onnx").read_bytes()
    embedder = OnnxEmbedder(data, threads=1)
    stored = json.loads((tmp_path / "tiny" / "config.json").read_text())["model"]
    assert embedder.config == ModelConfig.from_dict(stored) and embedder.backend == "onnx"
    out = embedder(np.random.default_rng(0).standard_normal((5, 1, 16, 16)).astype(np.float32))
    assert out.shape == (5, 8) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    with pytest.raises(FileNotFoundError, match="no ONNX file"):
        OnnxEmbedder(tmp_path / "missing.onnx")
    with pytest.raises(ValueError, match="cannot load the ONNX model"):
        OnnxEmbedder(b"not a protobuf")
    other = ModelConfig.from_dict({**stored, "input_size": 32})
    with pytest.raises(ValueError, match="differs from the expected"):
        OnnxEmbedder(data, config=other)


def test_threads_default_to_the_usable_cpus_at_most_four(monkeypatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert 1 <= default_threads() <= 4
    recognizer = spherefer.load_model("default", threads=1)
    assert recognizer.embedder.session.get_session_options().intra_op_num_threads == 1


def test_threads_follow_omp_num_threads(monkeypatch):
    """Ray sets $OMP_NUM_THREADS to an actor's CPUs; the detector's and the network's sessions follow it."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert default_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "not a number")
    assert 1 <= default_threads() <= 4
