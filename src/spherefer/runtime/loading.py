"""Loading a model by name or folder, with the bank every front end shares.

A shipped model loaded by name takes the user's bank (``$SPHEREFER_HOME/banks/<name>.safetensors``,
where ``spherefer classes`` saves its edits) when there is one, so that the library, the command
line and the service see the same classes; :func:`editing_model` holds that bank's lock while
it is edited.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from spherefer.bank.centers import CenterBank
from spherefer.core.storage import file_lock
from spherefer.runtime.model_folder import read_model_folder
from spherefer.runtime.model_paths import editable_bank_path, resolve_model_path
from spherefer.runtime.recognizer import Recognizer

__all__ = ["editing_model", "load_editable_model", "load_model"]


def load_model(
    path_or_name: str | os.PathLike[str] = "default",
    bank: str | os.PathLike[str] | None = None,
    batch_size: int = 256,
    backend: str | None = None,
    threads: int | None = None,
    precision: str | None = None,
) -> Recognizer:
    """Load a shipped model by name (``"default"``) or a model folder; ``bank`` overrides its center bank file.

    Every front end sees the same classes: a shipped model loaded by name takes the user's
    bank, ``$SPHEREFER_HOME/banks/<name>.safetensors`` (:func:`~spherefer.runtime.model_paths.editable_bank_path`,
    where ``spherefer classes`` saves its edits), when there is one, else its own; a model folder
    takes its own ``bank.safetensors`` (where :meth:`Recognizer.save` and ``spherefer classes
    --model FOLDER`` write). ``bank=resolve_model_path(name) / "bank.safetensors"`` loads the
    shipped classes whatever the user's bank holds.

    ``backend``: ``"onnx"`` runs the folder's ONNX graph in ONNX Runtime with ``threads``
    threads (default :func:`~spherefer.core.onnx_sessions.default_threads`); ``"torch"`` builds
    the PyTorch network from ``model.safetensors`` (needs ``spherefer[train]``); None
    (default) takes ONNX when the folder has a ``model.onnx``. ``precision`` (ONNX only):
    ``"int8"`` runs ``model.int8.onnx``, ``"fp32"`` ``model.onnx``; None (default) takes
    int8 when the folder has it (the shipped models do where it costs at most 0.3
    points, see their cards).
    """
    model = read_model_folder(resolve_model_path(path_or_name), backend, threads, precision)
    if bank is None and editable_bank_path(path_or_name).is_file():
        bank = editable_bank_path(path_or_name)
    center_bank = CenterBank.load(bank) if bank is not None else model.bank()
    if center_bank.trained_threshold is None and center_bank.trained:
        # saved before the trained threshold was recorded: the model's own bank holds it
        own_bank = bank is None or Path(bank).resolve() == model.bank_path.resolve()
        own = center_bank if own_bank else model.bank()
        if own.score == center_bank.score:  # a threshold on another score would mean nothing to this bank
            center_bank.trained_threshold = own.threshold if own.trained_threshold is None else own.trained_threshold
    return Recognizer(model.embedder, center_bank, card=model.card, batch_size=batch_size, density=model.density)


def load_editable_model(
    path_or_name: str | os.PathLike[str] = "default",
    bank: str | os.PathLike[str] | None = None,
    threads: int | None = None,
) -> tuple[Recognizer, Path]:
    """A model with its editable bank, and that bank's path (where edits are saved).

    The bank file is ``bank`` or :func:`editable_bank_path`; while it does not exist
    (nothing edited yet) the model's own bank is used. ``threads`` as in :func:`load_model`.
    """
    bank_file = Path(bank) if bank is not None else editable_bank_path(path_or_name)
    return load_model(path_or_name, bank=bank_file if bank_file.is_file() else None, threads=threads), bank_file


@contextmanager
def editing_model(
    path_or_name: str | os.PathLike[str] = "default", bank: str | os.PathLike[str] | None = None
) -> Iterator[tuple[Recognizer, Path]]:
    """:func:`load_editable_model` under an exclusive lock of the bank file, held until the
    ``with`` block ends: read, edit and save the bank (``recognizer.bank.save(path)``)
    inside the block. Other processes editing the same bank this way wait for the lock,
    so concurrent edits are applied one after the other and none is lost
    (:func:`~spherefer.core.storage.file_lock`: a sibling ``<bank>.lock`` file)."""
    bank_file = Path(bank) if bank is not None else editable_bank_path(path_or_name)
    with file_lock(bank_file):
        yield load_editable_model(path_or_name, bank_file)
