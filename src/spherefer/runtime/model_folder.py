"""The model folder: what a trained network is on disk, read and written with checksums.

A model folder holds ``model.onnx`` (the network, run by ONNX Runtime), ``model.int8.onnx``
(its int8 graph, where one was made), ``model.safetensors`` (its PyTorch state_dict, for
training further), ``config.json`` (the :class:`~spherefer.runtime.model_config.ModelConfig`,
a short card and each network file's SHA-256), ``bank.safetensors`` (the
:class:`~spherefer.bank.centers.CenterBank`), ``unknown.safetensors`` (the
:class:`~spherefer.bank.unknown.FaceDensity` of the unknown score, for models fitted with one)
and, for shipped models, ``MODEL_CARD.md``.

The network runs in ONNX Runtime. Other backends are plug-ins, found by name among the
``spherefer.backends`` entry points: ``spherefer[train]`` adds ``"torch"``
(:class:`~spherefer.training.torch_backend.TorchEmbedder`), so nothing here imports PyTorch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from spherefer.bank.centers import CenterBank
from spherefer.bank.unknown import DENSITY_FILE, FaceDensity
from spherefer.core.errors import InvalidInput
from spherefer.core.extras import install_hint
from spherefer.core.storage import atomic_write, parse_safetensors, read_json, write_json
from spherefer.runtime.embedders import MODEL_FILES, WEIGHTS_FILE, Embedder, OnnxEmbedder
from spherefer.runtime.model_config import ModelConfig

__all__ = [
    "BACKEND_ENTRY_POINTS",
    "MODEL_FORMAT_VERSION",
    "ModelFolder",
    "backend_names",
    "read_model_folder",
    "write_model_folder",
]

MODEL_FORMAT_VERSION = 1
BACKEND_ENTRY_POINTS = "spherefer.backends"
BANK_FILE = "bank.safetensors"


def backend_names() -> tuple[str, ...]:
    """``"onnx"`` and the names of the installed backend plug-ins."""
    return ("onnx", *sorted(point.name for point in entry_points(group=BACKEND_ENTRY_POINTS)))


def _plugin_embedder(name: str, folder: Path, config: ModelConfig) -> Embedder:
    """The embedder of backend plug-in ``name`` for ``folder``'s network."""
    found = entry_points(group=BACKEND_ENTRY_POINTS, name=name)
    if not found:
        raise InvalidInput(f"backend must be one of {backend_names()}, got {name!r}")
    try:
        embedder_class: Any = next(iter(found)).load()
    except ImportError as err:
        raise InvalidInput(f"the {name} backend: {install_hint(err) or err}") from err
    embedder: Embedder = embedder_class.from_folder(folder, config)
    return embedder


@dataclass
class ModelFolder:
    """What a model folder holds, read and checked: the network's embedder, its card, its bank
    and the face density of its unknown score (None for models without one)."""

    path: Path
    config: ModelConfig
    card: dict[str, Any]
    embedder: Embedder
    density: FaceDensity | None

    @property
    def bank_path(self) -> Path:
        return self.path / BANK_FILE

    def bank(self) -> CenterBank:
        return CenterBank.load(self.bank_path)


def read_model_folder(
    folder: Path, backend: str | None = None, threads: int | None = None, precision: str | None = None
) -> ModelFolder:
    """Read ``folder``'s network with ``backend`` (None: ONNX where the folder has a
    ``model.onnx``, else ``"torch"``), ``threads`` and ``precision`` (ONNX only: ``"int8"`` or
    ``"fp32"``; None takes int8 when the folder has it). Every file is checked against its
    checksum in config.json, so a damaged file is refused here rather than run."""
    if precision not in (None, *MODEL_FILES):
        raise InvalidInput(f"precision must be one of {tuple(MODEL_FILES)}, got {precision!r}")
    meta = read_json(folder / "config.json", "model config")
    if meta.get("format_version") != MODEL_FORMAT_VERSION:
        raise InvalidInput(
            f"{folder / 'config.json'} has model format {meta.get('format_version')}, "
            f"this spherefer reads {MODEL_FORMAT_VERSION}"
        )
    config = ModelConfig.from_dict(meta["model"])
    files = _network_files(folder, meta.get("files", {}))
    if backend is None:
        backend = "onnx" if MODEL_FILES["fp32"] in files else "torch"
    embedder: Embedder
    if backend == "onnx":
        if precision is None:
            precision = "int8" if MODEL_FILES["int8"] in files else "fp32"
        if MODEL_FILES[precision] not in files:
            hint = " (saved by an older spherefer?): load it with backend='torch' and save it again"
            raise FileNotFoundError(f"{folder} has no {MODEL_FILES[precision]}" + (hint if precision == "fp32" else ""))
        network = {name: data for name, data in files.items() if name != DENSITY_FILE}
        embedder = OnnxEmbedder(
            files[MODEL_FILES[precision]], threads=threads, config=config, files=network, precision=precision
        )
    else:
        if precision is not None:
            raise InvalidInput("precision applies to the ONNX backend only")
        embedder = _plugin_embedder(backend, folder, config)
    density = FaceDensity.from_bytes(files[DENSITY_FILE], str(folder / DENSITY_FILE)) if DENSITY_FILE in files else None
    return ModelFolder(folder, config, dict(meta.get("card") or {}), embedder, density)


def _network_files(folder: Path, checksums: dict[str, str]) -> dict[str, bytes]:
    """The network files present in ``folder`` by name, each checked against its SHA-256 in
    config.json (``checksums``; files saved before checksums were recorded are not
    checked), and the PyTorch weights parsed, so that a damaged file is refused here
    rather than run, or copied on by :func:`write_model_folder`."""
    names = (*MODEL_FILES.values(), WEIGHTS_FILE, DENSITY_FILE)
    files = {name: (folder / name).read_bytes() for name in names if (folder / name).is_file()}
    if WEIGHTS_FILE in files:
        parse_safetensors(files[WEIGHTS_FILE], f"model weights {folder / WEIGHTS_FILE}")
    for name, data in files.items():
        expected = checksums.get(name)
        if expected is not None and hashlib.sha256(data).hexdigest() != expected:
            what = {WEIGHTS_FILE: "model weights", DENSITY_FILE: "face density"}.get(name, "model graph")
            raise InvalidInput(
                f"{what} {folder / name} is corrupted: its checksum does not match config.json's "
                "(damaged on disk or in transfer)"
            )
    return files


def write_model_folder(
    folder: Path, embedder: Embedder, bank: CenterBank, card: dict[str, Any], density: FaceDensity | None
) -> Path:
    """Write the network (``model.onnx``, and the int8 graph and ``model.safetensors`` when
    known), config/card (with the network files' SHA-256) and bank into ``folder``, each file
    atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    files = embedder.network_files()
    if density is not None:
        files[DENSITY_FILE] = density.to_bytes()
    for name, data in files.items():
        with atomic_write(folder / name) as handle:
            handle.write(data)
    for stale in {*MODEL_FILES.values(), WEIGHTS_FILE, DENSITY_FILE} - set(
        files
    ):  # another network's files must not stay
        (folder / stale).unlink(missing_ok=True)
    checksums = {name: hashlib.sha256(files[name]).hexdigest() for name in sorted(files)}
    write_json(
        folder / "config.json",
        {"format_version": MODEL_FORMAT_VERSION, "model": embedder.config.to_dict(), "files": checksums, "card": card},
    )
    bank.save(folder / BANK_FILE)
    return folder
