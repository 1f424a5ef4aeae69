"""The ONNX Runtime embedding backend, and the ONNX bytes of a network.

:class:`OnnxEmbedder` runs an exported embedding network (a file or its bytes) in ONNX
Runtime; :func:`onnx_bytes` exports a network in memory. The graph takes the model's
normalised input -- ``images``: (N, C, S, S) float32, exactly what
:meth:`~spherefer.recognizer.Recognizer.preprocess` produces -- and returns
``embeddings``: (N, D) float32 unit vectors, with a dynamic batch size; the model config
and card are stored as JSON in the file's metadata under the key ``spherefer``.

:mod:`spherefer.recognizer` (``Recognizer.use_onnx``) and :mod:`spherefer.export`
(files on disk, with their center bank) both build on this module, which depends on
neither. ``onnx`` and ``onnxruntime`` are imported only when used
(``pip install "spherefer[onnx]"``).
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .models import EmbeddingNet, ModelConfig

__all__ = ["ONNX_INPUT", "ONNX_OUTPUT", "METADATA_KEY", "DEFAULT_OPSET", "INSTALL_HINT", "onnx_bytes", "OnnxEmbedder"]

ONNX_INPUT = "images"
ONNX_OUTPUT = "embeddings"
METADATA_KEY = "spherefer"
DEFAULT_OPSET = 17
INSTALL_HINT = 'pip install onnx onnxruntime (or pip install "spherefer[onnx]")'


class _UnitEmbedding(nn.Module):
    """The network up to its unit embedding: normalised input -> F.normalize(embed(x))."""

    def __init__(self, model: EmbeddingNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.model.embed(images), dim=1)


def _import(name: str) -> Any:
    try:
        return __import__(name)
    except ImportError as err:
        raise ValueError(f"ONNX support needs the {name} package: {INSTALL_HINT}") from err


def onnx_bytes(model: EmbeddingNet, card: dict[str, Any] | None = None, opset: int = DEFAULT_OPSET) -> bytes:
    """The serialised ONNX model of ``model``'s unit embedding, with its config in the metadata."""
    onnx = _import("onnx")
    cfg = model.config
    wrapper = _UnitEmbedding(model).eval()
    example = torch.zeros(2, cfg.in_channels, cfg.input_size, cfg.input_size)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        with torch.no_grad():
            torch.onnx.export(
                wrapper, (example,), buffer, input_names=[ONNX_INPUT], output_names=[ONNX_OUTPUT],
                dynamic_axes={ONNX_INPUT: {0: "batch"}, ONNX_OUTPUT: {0: "batch"}}, opset_version=opset, dynamo=False,
            )
    proto = onnx.load_from_string(buffer.getvalue())
    entry = proto.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps({"model": cfg.to_dict(), "card": dict(card or {})})
    proto.producer_name = "spherefer"
    return proto.SerializeToString()


class OnnxEmbedder:
    """An ONNX Runtime session on an exported file (path) or its bytes:
    normalised (N, C, S, S) float32 -> (N, D) unit embeddings.

    ``threads`` sets ONNX Runtime's intra-op threads (default: PyTorch's thread count,
    so both backends use the same share of the machine). :attr:`config` is the model
    config stored in the file, or None for a file exported elsewhere.
    """

    def __init__(self, source: str | os.PathLike[str] | bytes, threads: int | None = None) -> None:
        ort = _import("onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads or torch.get_num_threads())
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if not path.is_file():
                raise FileNotFoundError(f"no ONNX file {path}")
            source = path.read_bytes()
        try:
            self.session = ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types
            raise ValueError(f"cannot load the ONNX model: {err}") from err
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1 or len(inputs[0].shape) != 4 or len(outputs[0].shape) != 2:
            raise ValueError("the ONNX model must map one (N, C, S, S) input to one (N, D) output")
        self.input_name, self.output_name = inputs[0].name, outputs[0].name
        meta = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        self.config: ModelConfig | None = ModelConfig.from_dict(json.loads(meta)["model"]) if meta else None
        self.card: dict[str, Any] = json.loads(meta).get("card", {}) if meta else {}

    @property
    def input_shape(self) -> list[Any]:
        return list(self.session.get_inputs()[0].shape)

    @property
    def embedding_size(self) -> Any:
        return self.session.get_outputs()[0].shape[1]

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        return self.session.run([self.output_name], {self.input_name: batch})[0]
