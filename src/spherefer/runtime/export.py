"""The embedding network as a stand-alone ONNX file, with its center bank beside it.

The graph takes the model's normalised input -- ``images``: (N, C, S, S) float32,
exactly what :func:`~spherefer.runtime.embedders.preprocess` produces -- and returns
``embeddings``: (N, D) float32 unit vectors, with a dynamic batch size. The margin head
is not part of it: classification is a dot product with the center bank, which is saved
next to the ``.onnx`` file (``OUT.bank.safetensors``, see :func:`onnx_bank_path`). The
model config (input size, channels, mean, std, embedding size) is stored as JSON in the
file's metadata under the key ``spherefer``, so the file describes its own preprocessing.

A recognizer running ONNX Runtime (every loaded model) writes its own graph; one
holding a PyTorch network exports it (:func:`~spherefer.training.torch_backend.onnx_bytes`,
``spherefer[train]``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from spherefer.core.errors import InvalidInput
from spherefer.core.storage import atomic_write
from spherefer.runtime.embedders import OnnxEmbedder

if TYPE_CHECKING:
    from spherefer.runtime.recognizer import Recognizer

__all__ = ["ExportResult", "onnx_bank_path", "export_onnx"]


def onnx_bank_path(path: str | os.PathLike[str]) -> Path:
    """Where the center bank of an exported ``model.onnx`` is saved: ``model.bank.safetensors``."""
    return Path(path).with_suffix(".bank.safetensors")


@dataclass
class ExportResult:
    path: Path
    bank_path: Path
    max_abs_diff: float  # between the recognizer's network and the written file, on a random batch


def export_onnx(
    recognizer: Recognizer, path: str | os.PathLike[str], opset: int | None = None, check_batch: int = 8
) -> ExportResult:
    """Write ``recognizer``'s embedding network to ``path`` (.onnx) and its bank next to it,
    then run both on a random batch of ``check_batch`` inputs and report the largest
    difference of the embeddings. ``opset`` applies to a PyTorch network's export only."""
    target = Path(path)
    if target.suffix.lower() != ".onnx":
        raise InvalidInput(f"the ONNX file name must end in .onnx, got {target}")
    data = recognizer.embedder.onnx_model(recognizer.card, opset)
    with atomic_write(target) as handle:
        handle.write(data)
    bank_path = onnx_bank_path(target)
    recognizer.bank.save(bank_path)
    cfg = recognizer.config
    sample = (
        np.random.default_rng(0)
        .standard_normal((check_batch, cfg.in_channels, cfg.input_size, cfg.input_size))
        .astype(np.float32)
    )
    got = OnnxEmbedder(target, threads=1)(sample)
    return ExportResult(target, bank_path, float(np.abs(got - recognizer.embedder(sample)).max()))
