"""Atomic file writes and checked safetensors reads.

Every file spherefer writes goes through :func:`atomic_write`: the bytes land in a
temporary file in the same folder, are flushed to disk, and only then replace the
target with ``os.replace``. A crash at any point leaves either the old file or the
new one, never half of one.

Read-modify-write edits of one file by several processes (``spherefer classes add``
run twice at once) hold :func:`file_lock` from reading the file to replacing it, so that
no edit is lost.

Every safetensors file or byte string spherefer writes carries a SHA-256 checksum of
its header (tensor names, shapes, dtypes, offsets, metadata) and tensor bytes in its
metadata (key ``sha256``); reading verifies it, so a flipped bit is an error naming the
file instead of a silently different model or bank. Files without the key (written
before checksums existed) are read unverified.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load, save

from spherefer.core.errors import InvalidInput

_UMASK = os.umask(0)
os.umask(_UMASK)

__all__ = [
    "atomic_write",
    "file_lock",
    "lock_path",
    "write_json",
    "read_json",
    "safetensors_bytes",
    "write_safetensors",
    "parse_safetensors",
    "read_safetensors",
    "CHECKSUM_KEY",
]


@contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb", private: bool = False) -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; rename it over ``path`` on success.

    The file gets the usual permissions (0666 less the umask), or 0600 when ``private``
    (a center bank: whose expressions a person taught is theirs)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.chmod(tmp_name, 0o600 if private else 0o666 & ~_UMASK)
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def lock_path(path: str | os.PathLike[str]) -> Path:
    """The lock file of ``path``: its sibling ``<name>.lock`` (never deleted: removing a lock
    file another process is waiting on would let two processes hold "the" lock)."""
    target = Path(path)
    return target.with_name(f"{target.name}.lock")


@contextmanager
def file_lock(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold an exclusive lock on ``path`` for the ``with`` block, waiting for other holders.

    The lock is ``fcntl.flock`` (``msvcrt.locking`` on Windows) on :func:`lock_path`, created
    with the folder if missing; the lock is not on ``path`` itself, which
    :func:`atomic_write` replaces by another inode. It is advisory: it orders processes
    that take it (every spherefer command that edits a bank), not other programs. The
    operating system releases it when the process dies, so a crash never leaves it held.
    """
    lock = lock_path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+b") as handle:
        _lock(handle)
        try:
            yield lock
        finally:
            _unlock(handle)


try:
    import fcntl

    def _lock(handle: IO[Any]) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)

    def _unlock(handle: IO[Any]) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

except ImportError:  # Windows
    import msvcrt
    import time

    def _lock(handle: IO[Any]) -> None:
        handle.seek(0)
        while True:
            try:
                msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
                return
            except OSError:
                time.sleep(0.05)

    def _unlock(handle: IO[Any]) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]


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
        raise InvalidInput(f"{what} {path} is not valid JSON: {err}") from err


CHECKSUM_KEY = "sha256"
"""Metadata key of the checksum in every safetensors file spherefer writes."""


def _split(data: bytes) -> tuple[dict[str, Any], bytes]:
    """The JSON header and the tensor bytes of safetensors ``data``."""
    (header_size,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + header_size]), data[8 + header_size :]


def _checksum(header: dict[str, Any], body: bytes) -> str:
    """SHA-256 of the header (without the checksum itself, canonical JSON) and the tensor bytes."""
    header = dict(header)
    header["__metadata__"] = {k: v for k, v in (header.get("__metadata__") or {}).items() if k != CHECKSUM_KEY}
    digest = hashlib.sha256(json.dumps(header, sort_keys=True, separators=(",", ":")).encode())
    digest.update(body)
    return digest.hexdigest()


def _array(value: Any) -> np.ndarray:
    """A numpy array or a PyTorch tensor (detached, on CPU) as a contiguous numpy array."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().contiguous().numpy()
    return np.ascontiguousarray(value)


def safetensors_bytes(tensors: dict[str, Any], metadata: dict[str, str] | None = None) -> bytes:
    """Arrays (numpy, or PyTorch tensors on any device) and string metadata as safetensors bytes, with their
    checksum."""
    tensors = {k: _array(v) for k, v in tensors.items()}
    metadata = {k: v for k, v in (metadata or {}).items() if k != CHECKSUM_KEY}
    header, body = _split(save(tensors, metadata=metadata))
    return save(tensors, metadata={**metadata, CHECKSUM_KEY: _checksum(header, body)})


def write_safetensors(
    path: str | os.PathLike[str], tensors: dict[str, Any], metadata: dict[str, str] | None = None
) -> None:
    """Atomically write arrays (numpy, or PyTorch tensors) to a safetensors file."""
    payload = safetensors_bytes(tensors, metadata)
    with atomic_write(path) as handle:
        handle.write(payload)


def parse_safetensors(data: bytes, what: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Numpy arrays and metadata of safetensors bytes; truncated, foreign or corrupted bytes raise ``ValueError`` naming
    ``what``."""
    try:
        header, body = _split(data)
        tensors = load(data)
    except (SafetensorError, struct.error, ValueError, UnicodeDecodeError) as err:
        raise InvalidInput(f"{what} is truncated or not a safetensors file: {err}") from err
    metadata = dict(header.get("__metadata__") or {})
    expected = metadata.pop(CHECKSUM_KEY, None)
    if expected is not None and _checksum(header, body) != expected:
        raise InvalidInput(
            f"{what} is corrupted: its checksum does not match its contents (damaged on disk or in transfer)"
        )
    return tensors, metadata


def read_safetensors(path: str | os.PathLike[str], what: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read numpy arrays and metadata; a missing, truncated or corrupted file raises an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    return parse_safetensors(path.read_bytes(), f"{what} {path}")
