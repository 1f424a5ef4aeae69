"""The center bank's file format: safetensors tensors plus one JSON metadata entry.

Tensors: ``centers`` (C, D), and when present ``trained_centers`` (T, D), ``means`` (C, D) and
``trained_means`` (T, D), all float32. Metadata (``"spherefer"``): the schema name and version,
class names in order, per-class records (count, origin, updates, threshold), the scale, the
global and trained thresholds, the unknown score and the decision rule. :func:`bank_bytes`
writes it and :func:`parse_bank` reads it back, refusing a foreign, truncated or inconsistent
file with a ``ValueError`` that names it; :class:`~spherefer.bank.centers.CenterBank`'s ``save``,
``load``, ``to_bytes`` and ``from_bytes`` are built on them.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from spherefer.core.errors import InvalidInput
from spherefer.core.labels import COSINE_SCORE
from spherefer.core.storage import safetensors_bytes

__all__ = ["SCHEMA", "SCHEMA_VERSION", "bank_bytes", "bank_metadata", "parse_bank"]

SCHEMA = "spherefer.centerbank"
SCHEMA_VERSION = 1
_CLASS_KEYS = ("count", "origin", "updates", "threshold")


def bank_metadata(bank: Any) -> dict[str, object]:
    """The JSON metadata of a :class:`~spherefer.bank.centers.CenterBank`."""
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "names": bank.names,
        "scale": bank.scale,
        "threshold": bank.threshold,
        "classes": {r.name: {key: getattr(r, key) for key in _CLASS_KEYS} for r in bank.records},
        "trained_names": list(bank.trained),
        "trained_threshold": bank.trained_threshold,
        "score": bank.score,
        "rule": bank.rule,
    }


def bank_bytes(bank: Any) -> bytes:
    """The file's bytes for a :class:`~spherefer.bank.centers.CenterBank`."""
    tensors = {"centers": bank.centers}
    trained = list(bank.trained.values())
    if trained:
        tensors["trained_centers"] = np.stack([t.center for t in trained])
    if bank.means is not None:
        tensors["means"] = bank.means
    if trained and bank.has_means:
        tensors["trained_means"] = np.stack([t.mean for t in trained])
    return safetensors_bytes(tensors, metadata={"spherefer": json.dumps(bank_metadata(bank))})


def _required(mapping: object, key: str, what: str) -> Any:
    """``mapping[key]``; a missing key raises ``ValueError``: "<what> is missing the key '<key>'"."""
    if not isinstance(mapping, dict) or key not in mapping:
        raise InvalidInput(f"{what} is missing the key {key!r}")
    return mapping[key]


def parse_bank(tensors: dict[str, np.ndarray], metadata: dict[str, str], source: str) -> dict[str, Any]:
    """The parts of a bank file (its tensors and metadata, from ``source``): the keyword arguments of
    :class:`~spherefer.bank.centers.CenterBank` (``classes`` holding each class's record as a dict) plus
    ``trained_centers`` and ``trained_means`` by name."""
    try:
        meta = json.loads(metadata["spherefer"])
    except (KeyError, json.JSONDecodeError) as err:
        raise InvalidInput(f"{source} is a safetensors file but not a spherefer center bank (no metadata)") from err
    if meta.get("schema") != SCHEMA:
        raise InvalidInput(f"{source} is not a spherefer center bank (schema {meta.get('schema')!r})")
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise InvalidInput(
            f"{source} has center-bank schema version {meta.get('schema_version')}, "
            f"this spherefer reads {SCHEMA_VERSION}"
        )
    what = f"{source}: the center-bank metadata"
    centers = tensors.get("centers")
    names = _required(meta, "names", what)
    if centers is None or centers.ndim != 2 or centers.shape[0] != len(names):
        raise InvalidInput(f"{source}: centers tensor does not match its {len(names)} class names")
    classes = _required(meta, "classes", what)
    records = {}
    for n in names:
        entry = _required(classes, n, f"{what} in 'classes'")
        for key in ("count", "origin"):
            _required(entry, key, f"{what} in 'classes'[{n!r}]")
        records[n] = {key: value for key, value in entry.items() if key in _CLASS_KEYS}
    trained_names = meta.get("trained_names", [])
    trained = tensors.get("trained_centers")
    if trained_names and (trained is None or trained.shape != (len(trained_names), centers.shape[1])):
        raise InvalidInput(f"{source}: trained_centers tensor does not match its {len(trained_names)} names")
    means, trained_means = tensors.get("means"), tensors.get("trained_means")
    if (means is None) != (trained_means is None) or (
        trained_means is not None and trained_means.shape != (len(trained_names), centers.shape[1])
    ):
        raise InvalidInput(f"{source}: the means and trained_means tensors do not match the centers and trained names")
    trained_threshold = meta.get("trained_threshold")
    return {
        "names": names,
        "centers": centers,
        "scale": float(_required(meta, "scale", what)),
        "threshold": float(_required(meta, "threshold", what)),
        "classes": records,
        "trained_threshold": None if trained_threshold is None else float(trained_threshold),
        "score": meta.get("score", COSINE_SCORE),
        "means": means,
        "rule": meta.get("rule"),
        "trained_centers": {n: c.copy() for n, c in zip(trained_names, trained)} if trained is not None else {},
        "trained_means": {n: m.copy() for n, m in zip(trained_names, trained_means)}
        if trained_means is not None
        else {},
    }
