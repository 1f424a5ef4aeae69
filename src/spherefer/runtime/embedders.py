"""Face crops to unit embeddings, without PyTorch: preprocessing and the ONNX Runtime network.

:func:`preprocess` turns aligned face crops into the network's normalised input,
``(N, C, S, S)`` float32, with numpy alone (uint8 arrays of the right size, as
:func:`~spherefer.face.align_face` makes them, skip PIL entirely). :class:`OnnxEmbedder`
runs an exported network in ONNX Runtime: normalised input ``images`` -> unit
``embeddings`` ``(N, D)``. It is the inference side's only network: every shipped
model and every folder written by :meth:`~spherefer.runtime.recognizer.Recognizer.save` has a
``model.onnx``. The PyTorch network (:class:`~spherefer.training.models.TorchEmbedder`, the
training side) answers the same calls.

An ONNX file written by spherefer stores its :class:`~spherefer.runtime.model_config.ModelConfig`
(and the model card at export time) as JSON in its metadata under :data:`METADATA_KEY`,
so the file describes its own preprocessing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from spherefer.core.errors import InvalidInput
from spherefer.core.images import ImageInput, flatten_to_mode, to_pil
from spherefer.core.onnx_sessions import cpu_session
from spherefer.runtime.model_config import ModelConfig

__all__ = [
    "ONNX_INPUT",
    "ONNX_OUTPUT",
    "METADATA_KEY",
    "MODEL_FILES",
    "WEIGHTS_FILE",
    "Embedder",
    "OnnxEmbedder",
    "preprocess",
    "normalize_pixels",
]

MODEL_FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
"""The network file of each precision in a model folder (``int8``: weights and activations
quantised by ONNX Runtime, calibrated on training faces; optional)."""
WEIGHTS_FILE = "model.safetensors"
"""The PyTorch state_dict in a model folder (for training further)."""

ONNX_INPUT = "images"
ONNX_OUTPUT = "embeddings"
METADATA_KEY = "spherefer"

# PIL's own integer weights for RGB -> L (ITU-R 601-2), so arrays and PIL images give the same grey.
_GREY_WEIGHTS = np.array([19595, 38470, 7471], dtype=np.uint32)


class Embedder(Protocol):
    """What a :class:`~spherefer.runtime.recognizer.Recognizer` embeds with."""

    config: ModelConfig
    backend: str  # "onnx", or the name of a backend plug-in (spherefer[train] adds "torch")
    precision: str  # "fp32" or "int8"

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Normalised input (N, C, S, S) float32 -> unit embeddings (N, D) float32."""

    def network_files(self) -> dict[str, bytes]:
        """The network's files of a model folder, by name: ``model.onnx`` and, when known, the
        other precisions and ``model.safetensors`` (:meth:`Recognizer.save` writes them)."""

    def onnx_model(self, card: dict[str, Any] | None = None, opset: int | None = None) -> bytes:
        """The network as a serialised ONNX model (``card`` goes into the metadata of a new
        export; ``opset`` chooses the opset of one, where the backend exports)."""


def _crop_array(image: ImageInput, config: ModelConfig) -> np.ndarray:
    """One crop as (S, S) or (S, S, 3) uint8 in the model's channel count."""
    size = config.input_size
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.shape[:2] == (size, size):
        if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
            grey = image.reshape(size, size)
            return grey if config.in_channels == 1 else np.repeat(grey[:, :, None], 3, axis=2)
        if image.ndim == 3 and image.shape[2] == 3:
            if config.in_channels == 3:
                return image
            weighted = image.astype(np.uint32) @ _GREY_WEIGHTS
            return ((weighted + 0x8000) >> 16).astype(np.uint8)
    pil = flatten_to_mode(to_pil(image), "L" if config.in_channels == 1 else "RGB")
    if pil.size != (size, size):
        pil = pil.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(pil, dtype=np.uint8)


def normalize_pixels(pixels: np.ndarray, config: ModelConfig) -> np.ndarray:
    """uint8 crops (N, S, S) or (N, S, S, C) -> the network's input (N, C, S, S) float32:
    scaled to [0, 1], grey repeated to RGB if the model wants three channels, then
    ``(x - mean) / std`` per channel."""
    x = pixels.astype(np.float32) * np.float32(1.0 / 255.0)
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    if config.in_channels == 3 and x.shape[1] == 1:
        x = np.repeat(x, 3, axis=1)
    mean = np.asarray(config.mean, dtype=np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(config.std, dtype=np.float32).reshape(1, -1, 1, 1)
    return np.ascontiguousarray((x - mean) / std, dtype=np.float32)


def preprocess(images: Sequence[ImageInput], config: ModelConfig) -> np.ndarray:
    """Aligned face crops (arrays, PIL images, paths, bytes; any size) -> (N, C, S, S) float32 input."""
    if not images:
        return np.empty((0, config.in_channels, config.input_size, config.input_size), dtype=np.float32)
    return normalize_pixels(np.stack([_crop_array(image, config) for image in images]), config)


class OnnxEmbedder:
    """An ONNX Runtime session on an exported network (a file or its bytes).

    ``threads`` sets ONNX Runtime's intra-op threads (default :func:`default_threads`).
    ``files`` are the network files of the model folder it was loaded from, by name
    (``model.onnx``, ``model.int8.onnx``, ``model.safetensors``), kept to be written back
    (:meth:`network_files`), so that a saved folder has every precision and can still be
    fine-tuned in PyTorch; by default the graph alone, as ``model.onnx``.
    :attr:`config` is the model config stored in the file, or ``config`` for a file
    exported elsewhere; one of the two is needed. ``precision`` says which graph it is.
    """

    backend = "onnx"

    def __init__(
        self,
        source: str | os.PathLike[str] | bytes,
        threads: int | None = None,
        config: ModelConfig | None = None,
        files: dict[str, bytes] | None = None,
        precision: str = "fp32",
    ) -> None:
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if not path.is_file():
                raise FileNotFoundError(f"no ONNX file {path}")
            source = path.read_bytes()
        self.data, self.precision = bytes(source), precision
        self.files = dict(files) if files else {MODEL_FILES["fp32"]: self.data}
        try:
            self.session = cpu_session(self.data, threads)
        except Exception as err:  # onnxruntime raises its own exception types
            raise InvalidInput(f"cannot load the ONNX model: {err}") from err
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1 or len(inputs[0].shape) != 4 or len(outputs[0].shape) != 2:
            raise InvalidInput("the ONNX model must map one (N, C, S, S) input to one (N, D) output")
        self.input_name, self.output_name = inputs[0].name, outputs[0].name
        meta = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        stored = json.loads(meta) if meta else {}
        self.card: dict[str, Any] = stored.get("card", {})
        if "model" in stored:
            self.config = ModelConfig.from_dict(stored["model"])
            if config is not None:
                self._check_matches(config)
        elif config is not None:
            self.config = config
        else:
            raise InvalidInput("the ONNX model has no spherefer metadata: give its ModelConfig (config=...)")
        size = self.session.get_outputs()[0].shape[1]
        if isinstance(size, int) and size != self.config.embedding_size:
            raise InvalidInput(
                f"the ONNX model embeds in {size} dimensions, its config says {self.config.embedding_size}"
            )

    def _check_matches(self, config: ModelConfig) -> None:
        keys = ("input_size", "in_channels", "mean", "std", "embedding_size")
        mine, theirs = {k: getattr(config, k) for k in keys}, {k: getattr(self.config, k) for k in keys}
        if mine != theirs:
            raise InvalidInput(f"the ONNX model's input/embedding spec {theirs} differs from the expected {mine}")

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        return self.session.run([self.output_name], {self.input_name: batch})[0]

    def network_files(self) -> dict[str, bytes]:
        return dict(self.files)

    def onnx_model(self, card: dict[str, Any] | None = None, opset: int | None = None) -> bytes:
        """The graph this embedder runs, as it was loaded (its metadata already holds its card)."""
        if opset is not None:
            raise InvalidInput(
                'an opset can only be chosen when exporting a PyTorch network (load_model(..., backend="torch"))'
            )
        return self.data
