"""Atomic file writes and checked safetensors reads.

Every file spherefer writes goes through :func:`atomic_write`: the bytes land in a
temporary file in the same folder, are flushed to disk, and only then replace the
target with ``os.replace``. A crash at any point leaves either the old file or the
new one, never half of one.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load, load_file, save

_UMASK = os.umask(0)
os.umask(_UMASK)

__all__ = ["atomic_write", "write_json", "read_json", "write_safetensors", "read_safetensors"]


@contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; rename it over ``path`` on success."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.chmod(tmp_name, 0o666 & ~_UMASK)
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Atomically write ``data`` as indented JSON."""
    with atomic_write(path, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=False)
        handle.write("\n")


def read_json(path: str | os.PathLike[str], what: str) -> Any:
    """Read a JSON file, naming ``what`` it should have been in any error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{what} {path} is not valid JSON: {err}") from err


def safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    """Tensors (made contiguous, on CPU) and string metadata as safetensors bytes."""
    return save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata=metadata)


def write_safetensors(path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Atomically write tensors (made contiguous, on CPU) to a safetensors file."""
    payload = safetensors_bytes(tensors, metadata)
    with atomic_write(path) as handle:
        handle.write(payload)


def parse_safetensors(data: bytes, what: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of safetensors bytes; truncated or foreign bytes raise ``ValueError`` naming ``what``."""
    try:
        (header_size,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + header_size])
        tensors = load(data)
    except (SafetensorError, struct.error, ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{what} is truncated or not safetensors data: {err}") from err
    return tensors, dict(header.get("__metadata__") or {})


def read_safetensors(path: str | os.PathLike[str], what: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read tensors and metadata; a missing, truncated or corrupt file raises an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{what} {path} is truncated or not a safetensors file: {err}") from err
    return tensors, metadata
