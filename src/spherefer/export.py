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
(``pip install "spherefer[onnx]"``). The in-memory export and the ONNX Runtime session
live in :mod:`spherefer.onnx_backend` (re-exported here), which the recognizer uses too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from .onnx_backend import DEFAULT_OPSET, INSTALL_HINT, METADATA_KEY, ONNX_INPUT, ONNX_OUTPUT, OnnxEmbedder, onnx_bytes
from .storage import atomic_write

if TYPE_CHECKING:
    from .recognizer import Recognizer

__all__ = [
    "ONNX_INPUT", "ONNX_OUTPUT", "METADATA_KEY", "DEFAULT_OPSET", "INSTALL_HINT", "ExportResult", "onnx_bank_path", "onnx_bytes",
    "export_onnx", "OnnxEmbedder",
]


def onnx_bank_path(path: str | os.PathLike[str]) -> Path:
    """Where the center bank of an exported ``model.onnx`` is saved: ``model.bank.safetensors``."""
    return Path(path).with_suffix(".bank.safetensors")


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
