"""ONNX export of the embedding network, and embedding with ONNX Runtime.

The exported graph takes the model's normalised input -- ``images``: (N, C, S, S)
float32, exactly what :meth:`~spherefer.recognizer.Recognizer.preprocess` produces --
and returns ``embeddings``: (N, D) float32 unit vectors, with a dynamic batch size. The
margin head is not part of it: classification is a dot product with the center bank,
which is saved next to the ``.onnx`` file (``OUT.bank.safetensors``, see
:func:`onnx_bank_path`). The model config (input size, channels, mean, std, embedding
size) and the model card are stored as JSON in the file's metadata under the key
``spherefer``, so the file describes its own preprocessing.

Export uses PyTorch's TorchScript-based exporter (``torch.onnx.export(...,
dynamo=False)``): the newer ``torch.export``-based one needs ``onnxscript``, which
spherefer does not depend on. Both ``onnx`` and ``onnxruntime`` are needed
(``pip install "spherefer[onnx]"``).
"""

from __future__ import annotations

import io
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .models import EmbeddingNet, ModelConfig
from .storage import atomic_write

if TYPE_CHECKING:
    from .recognizer import Recognizer

__all__ = ["ONNX_INPUT", "ONNX_OUTPUT", "METADATA_KEY", "DEFAULT_OPSET", "ExportResult", "onnx_bank_path", "onnx_bytes", "export_onnx", "OnnxEmbedder"]

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


def onnx_bank_path(path: str | os.PathLike[str]) -> Path:
    """Where the center bank of an exported ``model.onnx`` is saved: ``model.bank.safetensors``."""
    return Path(path).with_suffix(".bank.safetensors")


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


@dataclass
class ExportResult:
    path: Path
    bank_path: Path
    max_abs_diff: float  # between PyTorch and ONNX Runtime on a random batch


def export_onnx(recognizer: "Recognizer", path: str | os.PathLike[str], opset: int = DEFAULT_OPSET, check_batch: int = 8) -> ExportResult:
    """Write ``recognizer``'s embedding network to ``path`` (.onnx) and its bank next to it,
    then run both on a random batch of ``check_batch`` inputs and report the largest
    difference of the embeddings."""
    target = Path(path)
    if target.suffix.lower() != ".onnx":
        raise ValueError(f"the ONNX file name must end in .onnx, got {target}")
    data = onnx_bytes(recognizer.model, recognizer.card, opset)
    with atomic_write(target) as handle:
        handle.write(data)
    bank_path = onnx_bank_path(target)
    recognizer.bank.save(bank_path)
    cfg = recognizer.config
    sample = torch.randn(check_batch, cfg.in_channels, cfg.input_size, cfg.input_size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = F.normalize(recognizer.model.embed(sample).float(), dim=1).numpy()
    got = OnnxEmbedder(target, threads=1)(sample.numpy())
    return ExportResult(target, bank_path, float(np.abs(got - expected).max()))


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
