"""The class-center bank: the paper's open vocabulary, separate from any network.

A :class:`CenterBank` holds ordered class names and a (C, D) float32 matrix of unit
class centers. Trained centers come from a head's normalised weight rows; new
expressions are enrolled from a few embeddings (paper eq. 4: normalise each sample,
average, renormalise) and existing centers move with new instances by a moving
average on the sphere. Classification is the cosine to every center, rejected as
``unknown`` below a threshold. The accept rule, the class-name rule and the result
records are :mod:`spherefer.labels`'; the enrolment policy (shots, a new class's
threshold) is :mod:`spherefer.enrol`'.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

from .labels import NO_FACE, REJECTED, RESERVED_LABELS, UNKNOWN, Prediction, check_class_name, decide, label_of, shown
from .storage import parse_safetensors, read_safetensors, safetensors_bytes, write_safetensors

__all__ = ["UNKNOWN", "REJECTED", "NO_FACE", "RESERVED_LABELS", "CenterBank", "ClassExists", "Classification", "Prediction",
           "angle_degrees", "as_embeddings"]
# UNKNOWN, REJECTED, NO_FACE, RESERVED_LABELS and Prediction live in spherefer.labels and are importable from here too.

SCHEMA = "spherefer.centerbank"
SCHEMA_VERSION = 1
ORIGINS = ("trained", "enrolled", "composed")


class ClassExists(ValueError):
    """A new class name that the bank already has."""


@dataclass
class Classification:
    """Batch result of :meth:`CenterBank.classify`; iterate it for per-row :class:`Prediction`."""

    names: list[str]
    labels: list[str]
    indices: np.ndarray  # (N,) index of the winning class, -1 where unknown
    scores: np.ndarray  # (N,) best cosine
    cosines: np.ndarray  # (N, C) float32
    probabilities: np.ndarray  # (N, C) softmax of scale * cosine

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, row: int) -> Prediction:
        cos, prob = self.cosines[row].tolist(), self.probabilities[row].tolist()
        return Prediction(
            label=self.labels[row],
            score=float(self.scores[row]),
            nearest=self.names[int(self.cosines[row].argmax())],
            cosines=dict(zip(self.names, cos)),
            probabilities=dict(zip(self.names, prob)),
        )

    def __iter__(self) -> Iterator[Prediction]:
        return (self[i] for i in range(len(self)))


@dataclass
class _ClassInfo:
    count: int
    origin: str
    updates: int = 0
    threshold: float | None = None


def _array(values: object) -> np.ndarray:
    """A float32 numpy array of an array-like or a PyTorch tensor (detached, on CPU)."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().float().numpy()  # type: ignore[attr-defined]
    return np.array(values, dtype=np.float32)


def _normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``x`` scaled to unit length along ``axis`` (computed in float64, returned float32)."""
    x64 = np.asarray(x, dtype=np.float64)
    return (x64 / np.maximum(np.linalg.norm(x64, axis=axis, keepdims=True), 1e-12)).astype(np.float32)


def as_embeddings(embeddings: object, dim: int | None, what: str) -> np.ndarray:
    """Validate and convert embeddings (an array-like or a PyTorch tensor) to an (N, D) float32 array."""
    x = _array(embeddings)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{what}: expected a non-empty (N, D) array of embeddings, got shape {tuple(x.shape)}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{what}: embeddings have dimension {x.shape[1]}, but this bank's centers have dimension {dim}")
    if not np.isfinite(x).all():
        raise ValueError(f"{what}: embeddings contain NaN or infinite values")
    if (np.linalg.norm(x, axis=1) == 0).any():
        raise ValueError(f"{what}: an embedding is all zeros and has no direction")
    return x


def angle_degrees(a: object, b: object) -> float:
    """Angle in degrees between two vectors."""
    u, v = _normalize(_array(a).ravel()), _normalize(_array(b).ravel())
    return math.degrees(math.acos(float(np.clip(np.dot(u.astype(np.float64), v), -1.0, 1.0))))


def _normalized_mean(x: np.ndarray) -> np.ndarray:
    """Paper eq. 4: normalise each row, average, renormalise."""
    mean = _normalize(x, axis=1).astype(np.float64).mean(axis=0)
    if np.linalg.norm(mean) < 1e-6:
        raise ValueError("the samples point in opposite directions: their normalised mean has no direction")
    return _normalize(mean)


def _required(mapping: object, key: str, what: str, where: str = "") -> object:
    """``mapping[key]``; a missing key raises ``ValueError``: "<what> is missing the key '<key>'<where>"."""
    if not isinstance(mapping, dict) or key not in mapping:
        raise ValueError(f"{what} is missing the key {key!r}{where}")
    return mapping[key]


@dataclass
class CenterBank:
    """Ordered class names with unit centers, sample counts, origins and thresholds.

    ``trained_centers`` keeps the head's original centers so that any trained class
    can be reset after updates, renames or removals; ``trained_threshold`` keeps the
    global threshold the bank was trained or shipped with (None: not recorded, as in
    banks saved before it was), which :meth:`restore_trained` brings back.
    """

    names: list[str]
    centers: np.ndarray
    scale: float = 30.0
    threshold: float = 0.6
    info: dict[str, _ClassInfo] = field(default_factory=dict)
    trained_centers: dict[str, np.ndarray] = field(default_factory=dict)
    trained_threshold: float | None = None

    def __post_init__(self) -> None:
        self.names = list(self.names)
        centers = _array(self.centers)
        self.centers = _normalize(centers, axis=1) if centers.ndim == 2 else centers
        if self.centers.ndim != 2 or self.centers.shape[0] != len(self.names):
            raise ValueError(f"centers must be ({len(self.names)}, D), got {tuple(self.centers.shape)}")
        for name in self.names:
            check_class_name(name)
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"class names must be unique, got {self.names}")
        for name in self.names:
            self.info.setdefault(name, _ClassInfo(count=0, origin="trained"))
        self._check_threshold(self.threshold)
        if self.trained_threshold is not None:
            self._check_threshold(self.trained_threshold)
            self.trained_threshold = float(self.trained_threshold)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_head(cls, head: object, names: Sequence[str], threshold: float = 0.6) -> "CenterBank":
        """Bank of a trained head (a :class:`~spherefer.heads.ClassificationHead`): its
        normalised weight rows, named ``names`` in order."""
        centers = _array(head.centers())  # type: ignore[attr-defined]
        if len(names) != centers.shape[0]:
            raise ValueError(f"the head has {centers.shape[0]} classes but {len(names)} names were given")
        bank = cls(list(names), centers, scale=float(getattr(head, "scale", 30.0)), threshold=threshold, trained_threshold=threshold)
        bank.trained_centers = {n: c.copy() for n, c in zip(bank.names, bank.centers)}
        return bank

    # ------------------------------------------------------------------ properties
    @property
    def embedding_size(self) -> int:
        return int(self.centers.shape[1])

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def index(self, name: str) -> int:
        """Position of ``name``; unknown names raise ``KeyError`` listing the classes."""
        if name not in self.names:
            raise KeyError(f"no class named {name!r}; classes are {self.names}")
        return self.names.index(name)

    def center(self, name: str) -> np.ndarray:
        """A copy of ``name``'s unit center, (D,) float32."""
        return self.centers[self.index(name)].copy()

    def summary(self) -> list[dict[str, object]]:
        """One dict per class: name, origin, sample count, updates, threshold."""
        return [
            {"name": n, "origin": i.origin, "count": i.count, "updates": i.updates, "threshold": i.threshold}
            for n, i in ((n, self.info[n]) for n in self.names)
        ]

    # ------------------------------------------------------------------ edits
    def check_new_name(self, name: str) -> str:
        """``name`` if it may name a new class of this bank: it follows the class-name rule
        (:func:`~spherefer.labels.check_class_name`, ``ValueError``) and is not taken
        (:class:`ClassExists`). :meth:`add`, :meth:`compose` and :meth:`rename` check it."""
        check_class_name(name)
        if name in self.names:
            raise ClassExists(f"class {shown(name)} already exists")
        return name

    @staticmethod
    def _check_threshold(value: float) -> None:
        if not -1.0 <= float(value) <= 1.0:
            raise ValueError(f"a cosine threshold must lie in [-1, 1], got {value}")

    def add(self, name: str, embeddings: object, origin: str = "enrolled", threshold: float | None = None) -> np.ndarray:
        """Enrol a new class from sample embeddings (normalise, average, renormalise); returns its center."""
        self.check_new_name(name)
        if origin not in ORIGINS:
            raise ValueError(f"origin must be one of {ORIGINS}, got {origin!r}")
        if threshold is not None:
            self._check_threshold(threshold)
        x = as_embeddings(embeddings, self.embedding_size, f"adding class {name!r}")
        center = _normalized_mean(x)
        self.names.append(name)
        self.centers = np.concatenate([self.centers, center[None]])
        self.info[name] = _ClassInfo(count=x.shape[0], origin=origin, threshold=threshold)
        return center.copy()

    def compose(self, name: str, components: Sequence[str], weights: Sequence[float] | None = None, threshold: float | None = None) -> np.ndarray:
        """Enrol a class from no samples: the normalised weighted sum of existing centers."""
        if len(components) < 2:
            raise ValueError(f"composing {name!r} needs at least two existing classes, got {list(components)}")
        weights = [1.0] * len(components) if weights is None else [float(w) for w in weights]
        if len(weights) != len(components):
            raise ValueError(f"{len(components)} classes but {len(weights)} weights")
        if any(w <= 0 for w in weights):
            raise ValueError(f"composition weights must be positive, got {weights}")
        mix = sum(w * self.centers[self.index(c)].astype(np.float64) for w, c in zip(weights, components))
        center = self.add(name, np.asarray(mix)[None], origin="composed", threshold=threshold)
        self.info[name].count = 0
        return center

    def update(self, name: str, embeddings: object, momentum: float = 0.9, per: str = "call") -> np.ndarray:
        """Move a center towards new instances by a moving average on the sphere; returns the new center.

        ``per="call"`` (default): the instances' normalised mean ``m`` (normalise each,
        average, renormalise, as :meth:`add`) moves the center once,
        ``c <- normalize(momentum * c + (1 - momentum) * m)``, however many instances
        there are: the old center keeps weight ``momentum``. ``per="instance"``: each
        normalised instance ``e`` in order, ``c <- normalize(momentum * c + (1 - momentum) * e)``,
        so the old center keeps ``momentum ** N`` (200 instances at 0.9 replace it).
        """
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if per not in ("call", "instance"):
            raise ValueError(f"per must be 'call' or 'instance', got {per!r}")
        i = self.index(name)
        x = _normalize(as_embeddings(embeddings, self.embedding_size, f"updating class {name!r}"), axis=1)
        steps = [_normalized_mean(x)] if per == "call" else list(x)
        center = self.centers[i]
        for e in steps:
            moved = momentum * center.astype(np.float64) + (1.0 - momentum) * e.astype(np.float64)
            if np.linalg.norm(moved) < 1e-6:
                raise ValueError(f"updating class {name!r}: the new instances point exactly away from the center")
            center = _normalize(moved)
        self.centers = self.centers.copy()
        self.centers[i] = center
        self.info[name].count += x.shape[0]
        self.info[name].updates += 1
        return center.copy()

    def remove(self, name: str) -> None:
        """Delete a class (trained ones can be brought back with :meth:`reset`)."""
        i = self.index(name)
        keep = [j for j in range(len(self.names)) if j != i]
        self.centers = self.centers[keep]
        del self.names[i]
        del self.info[name]

    def rename(self, old: str, new: str) -> None:
        """Rename a class, keeping its center, counts and threshold."""
        i = self.index(old)
        self.check_new_name(new)
        self.names[i] = new
        self.info[new] = self.info.pop(old)
        if old in self.trained_centers:
            self.trained_centers[new] = self.trained_centers.pop(old)

    def reset(self, name: str) -> None:
        """Restore a trained class's original center (re-adding it if it was removed)."""
        if name not in self.trained_centers:
            raise KeyError(f"{name!r} is not a trained class; trained classes are {list(self.trained_centers)}")
        center = self.trained_centers[name].copy()
        if name in self.names:
            self.centers = self.centers.copy()
            self.centers[self.index(name)] = center
        else:
            self.names.append(name)
            self.centers = np.concatenate([self.centers, center[None]])
        self.info[name] = _ClassInfo(count=0, origin="trained")

    def restore_trained(self) -> None:
        """Back to the trained classes and centers only, in trained order, and to the trained
        global threshold (kept as it is when not recorded); per-class thresholds cleared."""
        if not self.trained_centers:
            raise ValueError("this bank has no trained centers to restore")
        self.names = list(self.trained_centers)
        self.centers = np.stack([c.copy() for c in self.trained_centers.values()])
        self.info = {n: _ClassInfo(count=0, origin="trained") for n in self.names}
        if self.trained_threshold is not None:
            self.threshold = self.trained_threshold

    def set_threshold(self, name: str | None, value: float | None) -> None:
        """Set the global threshold (``name=None``) or one class's (``value=None`` clears it)."""
        if name is None:
            if value is None:
                raise ValueError("the global threshold cannot be cleared")
            self._check_threshold(value)
            self.threshold = float(value)
            return
        self.index(name)
        if value is not None:
            self._check_threshold(value)
        self.info[name].threshold = None if value is None else float(value)

    # ------------------------------------------------------------------ inference
    def cosine(self, embeddings: object) -> np.ndarray:
        """(N, C) float32 cosine between normalised embeddings and every center."""
        x = _normalize(as_embeddings(embeddings, self.embedding_size, "classifying"), axis=1)
        # einsum, not BLAS: OpenBLAS's threads keep spinning after a product and took a core from
        # ONNX Runtime's next call (benchmarks/bench_peer.py: 256-crop predict 88 ms with it, 52 ms without)
        return np.clip(np.einsum("nd,cd->nc", x, self.centers), -1.0, 1.0)

    def thresholds(self, threshold: float | None = None) -> np.ndarray:
        """(C,) effective threshold per class: its own if set, else the global one."""
        default = self.threshold if threshold is None else float(threshold)
        self._check_threshold(default)
        return np.array([default if self.info[n].threshold is None else self.info[n].threshold for n in self.names], dtype=np.float32)

    def classify(self, embeddings: object, threshold: float | None = None) -> Classification:
        """Best class per row, or ``unknown`` when its cosine is below that class's threshold
        (the accept rule, :func:`~spherefer.labels.decide`)."""
        if not self.names:
            raise ValueError("the center bank has no classes")
        cos = self.cosine(embeddings)
        decision = decide(cos, self.thresholds(threshold))
        labels = [label_of(i, self.names) for i in decision.index.tolist()]
        logits = self.scale * cos.astype(np.float64)
        odds = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities = (odds / odds.sum(axis=1, keepdims=True)).astype(np.float32)
        return Classification(list(self.names), labels, decision.index, decision.score, cos, probabilities)

    # ------------------------------------------------------------------ persistence
    def to_metadata(self) -> dict[str, object]:
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "names": self.names,
            "scale": self.scale,
            "threshold": self.threshold,
            "classes": {n: vars(self.info[n]) for n in self.names},
            "trained_names": list(self.trained_centers),
            "trained_threshold": self.trained_threshold,
        }

    def _tensors(self) -> dict[str, np.ndarray]:
        tensors = {"centers": self.centers}
        if self.trained_centers:
            tensors["trained_centers"] = np.stack(list(self.trained_centers.values()))
        return tensors

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the bank atomically as safetensors (centers) + JSON metadata."""
        write_safetensors(path, self._tensors(), metadata={"spherefer": json.dumps(self.to_metadata())})

    def to_bytes(self) -> bytes:
        """The bytes :meth:`save` writes (for databases and network transfer)."""
        return safetensors_bytes(self._tensors(), metadata={"spherefer": json.dumps(self.to_metadata())})

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "CenterBank":
        """Read a bank written by :meth:`save`; a corrupt or foreign file raises ``ValueError``."""
        tensors, metadata = read_safetensors(path, "center bank")
        return cls._from_parts(tensors, metadata, str(path))

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "center bank bytes") -> "CenterBank":
        """Read the bytes of :meth:`to_bytes`; ``source`` names them in errors."""
        tensors, metadata = parse_safetensors(data, source)
        return cls._from_parts(tensors, metadata, source)

    @classmethod
    def _from_parts(cls, tensors: dict[str, np.ndarray], metadata: dict[str, str], path: str) -> "CenterBank":
        try:
            meta = json.loads(metadata["spherefer"])
        except (KeyError, json.JSONDecodeError) as err:
            raise ValueError(f"{path} is a safetensors file but not a spherefer center bank (no metadata)") from err
        if meta.get("schema") != SCHEMA:
            raise ValueError(f"{path} is not a spherefer center bank (schema {meta.get('schema')!r})")
        if meta.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"{path} has center-bank schema version {meta.get('schema_version')}, this spherefer reads {SCHEMA_VERSION}")

        def required(mapping: object, key: str, where: str = "") -> object:
            return _required(mapping, key, f"{path}: the center-bank metadata", where)

        centers = tensors.get("centers")
        names = required(meta, "names")
        if centers is None or centers.ndim != 2 or centers.shape[0] != len(names):
            raise ValueError(f"{path}: centers tensor does not match its {len(names)} class names")
        classes = required(meta, "classes")
        info = {}
        for n in names:
            entry = required(classes, n, " in 'classes'")
            for key in ("count", "origin"):
                required(entry, key, f" in 'classes'[{n!r}]")
            info[n] = _ClassInfo(**{key: value for key, value in entry.items() if key in ("count", "origin", "updates", "threshold")})
        trained_names = meta.get("trained_names", [])
        trained = tensors.get("trained_centers")
        if trained_names and (trained is None or trained.shape != (len(trained_names), centers.shape[1])):
            raise ValueError(f"{path}: trained_centers tensor does not match its {len(trained_names)} names")
        trained_threshold = meta.get("trained_threshold")
        bank = cls(names, centers, scale=float(required(meta, "scale")), threshold=float(required(meta, "threshold")), info=info,
                   trained_threshold=None if trained_threshold is None else float(trained_threshold))
        bank.trained_centers = {n: c.copy() for n, c in zip(trained_names, trained)} if trained_names else {}
        return bank
