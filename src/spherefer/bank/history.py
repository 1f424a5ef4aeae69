"""The change history of a bank file: what ``spherefer classes history`` lists and ``classes undo`` takes back.

Every edit saved through :func:`save_with_history` keeps the bank as it was before, in a folder
beside the bank file (``<bank>.history/``, like the bank readable by its owner only):
``<version>.safetensors`` (absent when there was no bank file yet: the model's own classes were
in use) and one JSON line per version in ``log.jsonl`` (version, time, what the edit did, whether
it was undone). :func:`undo` puts the bank back as it was before the last edit in effect and marks
that version undone; numbers are never reused. Callers
hold the bank file's lock (:func:`~spherefer.runtime.loading.editing_model`) around both, so edits and
undos from several processes run one after the other.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

from spherefer.core.errors import Conflict
from spherefer.core.storage import atomic_write

__all__ = ["BankVersion", "NothingToUndo", "history", "history_folder", "save_with_history", "undo"]

_LOG = "log.jsonl"


class NothingToUndo(Conflict):
    """Nothing to take back: no edit is in effect (a bank file with no recorded edit, a service profile at its
    trained bank)."""


@dataclass(frozen=True)
class BankVersion:
    """One recorded edit: its ``version`` (1, 2, ...; never reused), ``time`` (Unix seconds), ``action``,
    and whether it was ``undone``."""

    version: int
    time: float
    action: str
    undone: bool = False

    @property
    def when(self) -> str:
        """The time in ISO 8601, local time zone, to the second."""
        return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.time))


def history_folder(bank_file: Path) -> Path:
    return bank_file.with_name(bank_file.name + ".history")


def history(bank_file: Path) -> list[BankVersion]:
    """The recorded edits of ``bank_file``, oldest first, the undone ones marked."""
    log = history_folder(bank_file) / _LOG
    if not log.is_file():
        return []
    return [BankVersion(**json.loads(line)) for line in log.read_text().splitlines() if line.strip()]


def _write_log(bank_file: Path, versions: list[BankVersion]) -> None:
    with atomic_write(history_folder(bank_file) / _LOG, "w", private=True) as handle:
        handle.writelines(json.dumps(vars(v)) + "\n" for v in versions)


def save_with_history(bank_file: Path, data: bytes, action: str) -> BankVersion:
    """Write the bank ``data`` to ``bank_file`` atomically, keeping what it held before as a new version."""
    folder = history_folder(bank_file)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    versions = history(bank_file)
    version = BankVersion(max((v.version for v in versions), default=0) + 1, time.time(), action)
    if bank_file.is_file():
        with atomic_write(folder / f"{version.version}.safetensors", private=True) as handle:
            handle.write(bank_file.read_bytes())
    with atomic_write(bank_file, private=True) as handle:
        handle.write(data)
    _write_log(bank_file, [*versions, version])
    return version


def undo(bank_file: Path) -> BankVersion:
    """Put ``bank_file`` back as it was before its last edit still in effect (removing the file when there
    was none: the model's own classes), and mark that version undone; the version undone.
    :class:`NothingToUndo` when no edit is in effect."""
    versions = history(bank_file)
    in_effect = [v for v in versions if not v.undone]
    if not in_effect:
        raise NothingToUndo(f"{bank_file} has no recorded edit to undo")
    last = in_effect[-1]
    before = history_folder(bank_file) / f"{last.version}.safetensors"
    if before.is_file():
        with atomic_write(bank_file, private=True) as handle:
            handle.write(before.read_bytes())
    else:
        bank_file.unlink(missing_ok=True)
    _write_log(bank_file, [dataclasses.replace(v, undone=True) if v == last else v for v in versions])
    before.unlink(missing_ok=True)
    return last
