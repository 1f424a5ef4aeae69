"""How :class:`~.store.BankStore` keeps a profile's versions small: a change stores only what changed.

A version is stored either as a *full* bank (:meth:`CenterBank.to_bytes`) or as a
*delta* from the version before it (:func:`bank_delta`): the new order of the class
names as runs of the old order plus new names, the centers and per-class records
(count, origin, updates, threshold) of the classes that are new or changed, the
bank-wide settings, and the trained centers only when those changed. Enrolling,
updating, renaming or removing one class stores about one center (2 kB for 512-d
embeddings), whatever the bank's size. :func:`replay` reads a stored version, a delta
applied to the :class:`BankState` of the version before.

A delta is safetensors bytes with a checksum (:func:`~spherefer.core.storage.safetensors_bytes`),
like a full bank, so a damaged row is an error naming it, never a silently different bank.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spherefer.bank.centers import CenterBank
from spherefer.bank.codec import bank_metadata
from spherefer.core.errors import InvalidInput
from spherefer.core.storage import parse_safetensors, safetensors_bytes

__all__ = ["DELTA_KEY", "BankState", "bank_delta", "replay"]

DELTA_KEY = "spherefer_delta"
"""Metadata key of a delta's description (a full bank has ``spherefer`` instead)."""

_LISTED = ("names", "classes", "trained_names")
"""Keys of :func:`~spherefer.bank.codec.bank_metadata` that a state keeps as lists; every other key is a
bank-wide setting."""


@dataclass
class BankState:
    """A bank as plain lists (what replaying deltas works on; :meth:`bank` makes the :class:`CenterBank`).

    ``rows`` and ``trained_rows`` are 1-D float32 arrays, never changed in place: a class's
    center, followed by its mean when the bank has class means (``settings["means"]``);
    ``settings`` holds the bank-wide entries of :func:`~spherefer.bank.codec.bank_metadata`
    (schema, scale, threshold, score, ...).
    """

    settings: dict[str, Any]
    names: list[str]
    rows: list[np.ndarray]
    info: list[dict[str, Any]]
    trained_names: list[str] = field(default_factory=list)
    trained_rows: list[np.ndarray] = field(default_factory=list)

    @classmethod
    def of(cls, bank: CenterBank) -> BankState:
        meta = bank_metadata(bank)
        settings = {key: value for key, value in meta.items() if key not in _LISTED} | {"means": bank.means is not None}
        rows = bank.centers if bank.means is None else np.concatenate([bank.centers, bank.means], axis=1)
        trained = [t.center if t.mean is None else np.concatenate([t.center, t.mean]) for t in bank.trained.values()]
        return cls(
            settings,
            list(bank.names),
            list(rows),
            [dict(meta["classes"][n]) for n in bank.names],  # type: ignore[index]
            list(bank.trained),
            trained,
        )

    def matrix(self) -> np.ndarray:
        """The rows as one (C, D or 2D) array."""
        return np.stack(self.rows) if self.rows else np.zeros((0, 0), np.float32)

    def bank(self, what: str) -> CenterBank:
        """The :class:`CenterBank` of this state, built and checked as :meth:`CenterBank.from_bytes` reads a stored
        bank."""
        settings = dict(self.settings)
        parts = 2 if settings.pop("means", False) else 1
        size = self.rows[0].shape[0] if self.rows else (self.trained_rows[0].shape[0] if self.trained_rows else 0)
        rows = np.stack(self.rows) if self.rows else np.zeros((0, size), np.float32)
        tensors = dict(zip(("centers", "means"), np.split(rows, parts, axis=1)))
        if self.trained_rows:
            tensors.update(
                zip(("trained_centers", "trained_means"), np.split(np.stack(self.trained_rows), parts, axis=1))
            )
        meta = {
            **settings,
            "names": self.names,
            "classes": dict(zip(self.names, self.info)),
            "trained_names": self.trained_names,
        }
        return CenterBank.from_bytes(safetensors_bytes(tensors, {"spherefer": json.dumps(meta)}), what)


def _runs(old: list[str], new: list[str]) -> list[tuple[str, int, int, int, int]]:  # opcode tag, i1, i2, j1, j2
    return list(difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes())


def bank_delta(before: CenterBank, after: CenterBank) -> bytes:
    """What turns ``before`` into ``after``, as bytes for :func:`replay` (the whole of ``after`` when one
    of the two has class means and the other not)."""
    old, new = BankState.of(before), BankState.of(after)
    if (
        old.settings["means"] != new.settings["means"]
    ):  # class means added or dropped (a bank saved before they were): no common rows
        return after.to_bytes()
    before_rows, after_rows = old.matrix(), new.matrix()
    order: list[Any] = []
    changed: list[int] = []  # positions in ``after`` whose center is stored
    info: dict[str, dict[str, Any]] = {}  # position -> record, where it is not the old one
    for tag, i1, i2, j1, j2 in _runs(old.names, new.names):
        if tag == "equal":
            order.append([i1, i2])
            differs = (before_rows[i1:i2] != after_rows[j1:j2]).any(axis=1).tolist()
            changed += [j1 + k for k, flag in enumerate(differs) if flag]
            info.update({str(j1 + k): new.info[j1 + k] for k in range(i2 - i1) if new.info[j1 + k] != old.info[i1 + k]})
        elif tag in ("replace", "insert"):
            # a class renamed in place keeps its center and record: refer to the old row
            same = tag == "replace" and i2 - i1 == j2 - j1
            sources = [
                i1 + k if same and np.array_equal(before_rows[i1 + k], after_rows[j1 + k]) else -1
                for k in range(j2 - j1)
            ]
            order.append({"names": new.names[j1:j2], "from": sources})
            changed += [j1 + k for k, source in enumerate(sources) if source < 0]
            info.update(
                {
                    str(j1 + k): new.info[j1 + k]
                    for k, source in enumerate(sources)
                    if source < 0 or new.info[j1 + k] != old.info[source]
                }
            )
    tensors = {"centers": after_rows[changed]} if changed else {}
    description: dict[str, Any] = {"settings": new.settings, "order": order, "changed": changed, "info": info}
    if (
        new.trained_names != old.trained_names
        or len(new.trained_rows) != len(old.trained_rows)
        or any(not np.array_equal(a, b) for a, b in zip(new.trained_rows, old.trained_rows))
    ):
        position = {name: i for i, name in enumerate(old.trained_names)}
        sources = []
        for name, row in zip(new.trained_names, new.trained_rows):
            i = position.get(name, -1)
            sources.append(i if i >= 0 and np.array_equal(old.trained_rows[i], row) else -1)
        if -1 in sources:  # renamed trained classes keep their rows; only really new rows are stored
            unmatched = [k for k, s in enumerate(sources) if s < 0]
            for k in unmatched:
                sources[k] = next(
                    (i for i, row in enumerate(old.trained_rows) if np.array_equal(row, new.trained_rows[k])), -1
                )
        description["trained"] = {"names": new.trained_names, "from": sources}
        fresh = [new.trained_rows[k] for k, s in enumerate(sources) if s < 0]
        if fresh:
            tensors["trained"] = np.stack(fresh)
    return safetensors_bytes(tensors, {DELTA_KEY: json.dumps(description)})


def replay(state: BankState | None, data: bytes, what: str) -> BankState:
    """The state a stored version holds: a full bank as it is, a delta (:func:`bank_delta`) applied to
    ``state``, the version before. Damaged or foreign bytes raise ``ValueError`` naming ``what``."""
    tensors, metadata = parse_safetensors(data, what)
    if DELTA_KEY not in metadata:
        return BankState.of(CenterBank.from_bytes(data, what))
    if state is None:
        raise InvalidInput(f"{what} is a change, but there is no version before it")
    try:
        return _apply(state, tensors, json.loads(metadata[DELTA_KEY]))
    except (KeyError, TypeError, ValueError, IndexError, StopIteration, AttributeError) as err:
        raise InvalidInput(f"{what} is not a readable bank delta: {type(err).__name__}: {err}") from err


def _index(value: Any, size: int, allow_new: bool = False) -> int:
    """A stored row index, checked: 0 <= value < size (or -1, a new row, where ``allow_new``)."""
    if not isinstance(value, int) or not (-1 if allow_new else 0) <= value < size:
        raise InvalidInput(f"row index {value!r} outside 0..{size - 1}")
    return value


def _apply(state: BankState, tensors: dict[str, np.ndarray], description: dict[str, Any]) -> BankState:
    names: list[str] = []
    rows: list[np.ndarray | None] = []
    info: list[dict[str, Any] | None] = []
    for run in description["order"]:
        if isinstance(run, list):
            i1, i2 = run
            if not (isinstance(i1, int) and isinstance(i2, int) and 0 <= i1 <= i2 <= len(state.names)):
                raise InvalidInput(f"run {run} outside the {len(state.names)} classes of the version before")
            names += state.names[i1:i2]
            rows += state.rows[i1:i2]
            info += state.info[i1:i2]
            continue
        for name, source in zip(run["names"], run["from"], strict=True):
            source = _index(source, len(state.names), allow_new=True)
            names.append(name)
            rows.append(state.rows[source] if source >= 0 else None)
            info.append(state.info[source] if source >= 0 else None)
    centers = tensors.get("centers", np.zeros((0, 0), np.float32))
    if len(description["changed"]) != centers.shape[0]:
        raise InvalidInput(f"{len(description['changed'])} changed classes but {centers.shape[0]} stored centers")
    for position, row in zip(description["changed"], centers):
        rows[_index(position, len(names))] = row
    for position, record in description["info"].items():
        info[_index(int(position), len(names))] = dict(record)
    trained_names, trained_rows = state.trained_names, state.trained_rows
    if "trained" in description:
        fresh = iter(tensors.get("trained", np.zeros((0, 0), np.float32)))
        trained_names = [str(name) for name in description["trained"]["names"]]
        trained_rows = [
            state.trained_rows[_index(s, len(state.trained_rows), True)] if s >= 0 else next(fresh)
            for s in description["trained"]["from"]
        ]
        if len(trained_rows) != len(trained_names):
            raise InvalidInput(f"{len(trained_names)} trained names but {len(trained_rows)} trained centers")
    complete_rows = [row for row in rows if row is not None]
    complete_info = [record for record in info if record is not None]
    if len(complete_rows) != len(rows) or len(complete_info) != len(info):
        raise InvalidInput("a new class has no stored center or record")
    return BankState(dict(description["settings"]), names, complete_rows, complete_info, trained_names, trained_rows)
