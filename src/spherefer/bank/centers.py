"""The class-center bank: the paper's open vocabulary, separate from any network.

A :class:`CenterBank` holds one :class:`ClassRecord` per class, in order: its unit center, its
mean embedding (for banks scored by the relative Mahalanobis score), its origin, sample count,
updates and own threshold. Trained centers come from a head's normalised weight rows; new
expressions are enrolled from a few embeddings (paper eq. 4: normalise each sample, average,
renormalise) and existing centers move with new instances by a moving average on the sphere.
Each trained class's original (:class:`TrainedClass`) is kept, so that it can be reset.

How faces are scored against the bank is :mod:`spherefer.bank.scoring`; its file format is
:mod:`spherefer.bank.codec`; the accept rule, the class-name rule and the result records are
:mod:`spherefer.core.labels`'; the enrolment policy (shots, a new class's threshold) is
:mod:`spherefer.bank.enrol`'.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from spherefer.bank import scoring
from spherefer.bank.codec import bank_bytes, parse_bank
from spherefer.bank.decision import check_rule
from spherefer.bank.records import ORIGINS, ClassExists, ClassRecord, TrainedClass, new_class_name, records_of
from spherefer.bank.unknown import class_mean
from spherefer.core.errors import InvalidInput, NotFound
from spherefer.core.labels import COSINE_SCORE, SCORES, Classification, normalized_class_name
from spherefer.core.sphere import as_array, as_embeddings, normalize, normalized_mean
from spherefer.core.storage import atomic_write, parse_safetensors, read_safetensors

__all__ = ["CenterBank", "ClassExists", "ClassRecord", "TrainedClass"]


class CenterBank:
    """Ordered classes (:class:`ClassRecord`) with the bank's settings.

    ``names`` and the (C, D) ``centers`` build one record per class; ``means`` (C, D), when given,
    are the classes' mean embeddings for the relative Mahalanobis score (:meth:`set_means`);
    enrolment, updates and resets keep them with the centers. ``score`` names what the thresholds
    are compared with (:data:`~spherefer.core.labels.SCORES`). ``trained_threshold`` keeps the global
    threshold the bank was trained or shipped with (None: not recorded, as in banks saved before it
    was), which :meth:`restore_trained` brings back. ``rule`` names the decision rule
    (:mod:`spherefer.bank.decision`) when one was chosen (:meth:`use_rule`); None follows the default,
    :attr:`decision_rule_name`: the mean gate once the bank has class means, else the paper's cosine
    to every center.
    """

    def __init__(
        self,
        names: Sequence[str],
        centers: object,
        scale: float = 30.0,
        threshold: float = 0.6,
        trained_threshold: float | None = None,
        score: str = COSINE_SCORE,
        means: object | None = None,
        rule: str | None = None,
    ) -> None:
        if score not in SCORES:
            raise InvalidInput(f"unknown score {score!r}; scores are {sorted(SCORES)}")
        self.records = records_of(names, centers, means)
        if score != COSINE_SCORE and means is None:
            raise InvalidInput(f"a bank scored by {score} needs its class means")
        self.embedding_size = int(as_array(centers).shape[1])
        self.has_means = means is not None
        self.trained: dict[str, TrainedClass] = {}
        self.scale = float(scale)
        self.score = score
        self.rule = None if rule is None else check_rule(rule, self.has_means)
        self.check_threshold(threshold)
        self.threshold = float(threshold)
        if trained_threshold is not None:
            self.check_threshold(trained_threshold)
        self.trained_threshold = None if trained_threshold is None else float(trained_threshold)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_head(cls, head: object, names: Sequence[str], threshold: float = 0.6) -> CenterBank:
        """Bank of a trained head (a :class:`~spherefer.training.heads.ClassificationHead`): its
        normalised weight rows, named ``names`` in order."""
        centers = as_array(head.centers())  # type: ignore[attr-defined]
        if len(names) != centers.shape[0]:
            raise InvalidInput(f"the head has {centers.shape[0]} classes but {len(names)} names were given")
        scale = float(getattr(head, "scale", 30.0))
        bank = cls(list(names), centers, scale=scale, threshold=threshold, trained_threshold=threshold)
        bank.trained = {record.name: TrainedClass(record.center.copy()) for record in bank.records}
        return bank

    # ------------------------------------------------------------------ the classes as arrays
    @property
    def names(self) -> list[str]:
        return [record.name for record in self.records]

    @property
    def centers(self) -> np.ndarray:
        """(C, D) float32 unit centers, in the bank's order (a new array)."""
        if not self.records:
            return np.empty((0, self.embedding_size), dtype=np.float32)
        return np.stack([record.center for record in self.records])

    @property
    def means(self) -> np.ndarray | None:
        """(C, D) float32 class means, or None for a bank without them (a new array)."""
        if not self.has_means:
            return None
        if not self.records:
            return np.empty((0, self.embedding_size), dtype=np.float32)
        return np.stack([record.mean for record in self.records])  # type: ignore[misc]

    @property
    def info(self) -> dict[str, ClassRecord]:
        """Each class's record by name."""
        return {record.name: record for record in self.records}

    def __len__(self) -> int:
        return len(self.records)

    def __contains__(self, name: object) -> bool:
        return normalized_class_name(name) in self.names

    def index(self, name: str) -> int:
        """Position of ``name`` (in any Unicode normal form); unknown names raise ``KeyError`` listing the
        classes."""
        stored = normalized_class_name(name)
        names = self.names
        if stored not in names:
            raise NotFound(f"no class named {name!r}; classes are {names}")
        return names.index(stored)

    def record(self, name: str) -> ClassRecord:
        """The record of class ``name`` (``KeyError`` listing the classes for an unknown name)."""
        return self.records[self.index(name)]

    def center(self, name: str) -> np.ndarray:
        """A copy of ``name``'s unit center, (D,) float32."""
        return self.record(name).center.copy()

    def summary(self) -> list[dict[str, object]]:
        """One dict per class: name, origin, sample count, updates, threshold."""
        return [
            {"name": r.name, "origin": r.origin, "count": r.count, "updates": r.updates, "threshold": r.threshold}
            for r in self.records
        ]

    # ------------------------------------------------------------------ edits
    def check_new_name(self, name: str) -> str:
        """``name`` in NFKC form if it may name a new class of this bank
        (:func:`~spherefer.bank.records.new_class_name`); :meth:`add`, :meth:`compose` and :meth:`rename` store it."""
        return new_class_name(name, self.names)

    def check_threshold(self, value: float) -> None:
        """A ``ValueError`` when ``value`` cannot be a threshold on the bank's score."""
        if self.score == COSINE_SCORE and not -1.0 <= float(value) <= 1.0:
            raise InvalidInput(f"a cosine threshold must lie in [-1, 1], got {value}")
        if not math.isfinite(float(value)):
            raise InvalidInput(f"a threshold must be a finite number, got {value}")

    def set_means(self, means: object) -> None:
        """Give every class its mean embedding (C, D) (:func:`~spherefer.bank.unknown.class_mean` of its
        faces); trained classes remember theirs for :meth:`reset`."""
        values = as_array(means)
        if values.shape != (len(self), self.embedding_size):
            shape = (len(self), self.embedding_size)
            raise InvalidInput(f"class means must have the centers' shape {shape}, got {tuple(values.shape)}")
        missing = [n for n in self.trained if n not in self]
        if missing:
            raise InvalidInput(f"set the class means while every trained class is in the bank (reset {missing} first)")
        for record, mean in zip(self.records, values):
            record.mean = mean
            if record.name in self.trained:
                self.trained[record.name] = TrainedClass(self.trained[record.name].center, mean.copy())
        self.has_means = True

    def replace_centers(self, centers: object, means: object | None = None) -> None:
        """Move every class's center (and mean) at once, in the bank's order (:mod:`spherefer.bank.adapt`);
        the trained originals stay for :meth:`reset`."""
        values = normalize(as_array(centers), axis=1)
        mean_values = None if means is None else as_array(means)
        shape = (len(self), self.embedding_size)
        if (
            values.shape != shape
            or (mean_values is None) == self.has_means
            or (mean_values is not None and mean_values.shape != shape)
        ):
            raise InvalidInput(f"need {shape} centers" + (" and means" if self.has_means else ""))
        for i, record in enumerate(self.records):
            record.center = values[i]
            if mean_values is not None:
                record.mean = mean_values[i]

    def use_score(self, score: str, threshold: float) -> None:
        """Compare faces' ``score`` (:data:`~spherefer.core.labels.SCORES`) with ``threshold`` from now
        on, also as the trained threshold; per-class thresholds, set on the old score, are cleared."""
        if score not in SCORES:
            raise InvalidInput(f"unknown score {score!r}; scores are {sorted(SCORES)}")
        if score != COSINE_SCORE and not self.has_means:
            raise InvalidInput(f"scoring by {score} needs the class means (set_means)")
        previous, self.score = self.score, score
        try:
            self.check_threshold(threshold)
        except ValueError:
            self.score = previous
            raise
        self.threshold = self.trained_threshold = float(threshold)
        for record in self.records:
            record.threshold = None

    def use_rule(self, name: str) -> None:
        """Decide classes by the rule ``name`` (:data:`~spherefer.bank.decision.RULES`) from now on."""
        self.rule = check_rule(name, self.has_means)

    def add(
        self, name: str, embeddings: object, origin: str = "enrolled", threshold: float | None = None
    ) -> np.ndarray:
        """Enrol a new class from sample embeddings (normalise, average, renormalise); returns its center."""
        name = self.check_new_name(name)
        if origin not in ORIGINS:
            raise InvalidInput(f"origin must be one of {ORIGINS}, got {origin!r}")
        if threshold is not None:
            self.check_threshold(threshold)
        x = as_embeddings(embeddings, self.embedding_size, f"adding class {name!r}")
        center = normalized_mean(x)
        mean = class_mean(x) if self.has_means else None
        self.records.append(ClassRecord(name, center, origin, count=x.shape[0], threshold=threshold, mean=mean))
        return center.copy()

    def compose(
        self,
        name: str,
        components: Sequence[str],
        weights: Sequence[float] | None = None,
        threshold: float | None = None,
    ) -> np.ndarray:
        """Enrol a class from no samples: the normalised weighted sum of existing centers."""
        name = self.check_new_name(name)
        if len(components) < 2:
            raise InvalidInput(f"composing {name!r} needs at least two existing classes, got {list(components)}")
        weights = [1.0] * len(components) if weights is None else [float(w) for w in weights]
        if len(weights) != len(components):
            raise InvalidInput(f"{len(components)} classes but {len(weights)} weights")
        if any(w <= 0 for w in weights):
            raise InvalidInput(f"composition weights must be positive, got {weights}")
        parts = [self.record(c) for c in components]
        mix = sum(w * part.center.astype(np.float64) for w, part in zip(weights, parts))
        center = self.add(name, np.asarray(mix)[None], origin="composed", threshold=threshold)
        record = self.records[-1]
        record.count = 0
        if self.has_means:  # the weighted mean of the components' means
            weighted = sum(w * np.asarray(part.mean, np.float64) for w, part in zip(weights, parts))
            record.mean = np.asarray(weighted / sum(weights), np.float32)
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
            raise InvalidInput(f"momentum must be in [0, 1), got {momentum}")
        if per not in ("call", "instance"):
            raise InvalidInput(f"per must be 'call' or 'instance', got {per!r}")
        record = self.record(name)
        x = normalize(as_embeddings(embeddings, self.embedding_size, f"updating class {name!r}"), axis=1)
        steps = [normalized_mean(x)] if per == "call" else list(x)
        center = record.center
        for e in steps:
            moved = momentum * center.astype(np.float64) + (1.0 - momentum) * e.astype(np.float64)
            if np.linalg.norm(moved) < 1e-6:
                raise InvalidInput(f"updating class {name!r}: the new instances point exactly away from the center")
            center = normalize(moved)
        if record.mean is not None:  # the mean takes the same moving-average steps
            mean = record.mean
            for m in [class_mean(x)] if per == "call" else list(x):
                mean = momentum * mean + (1.0 - momentum) * m
            record.mean = mean.astype(np.float32)
        record.center = center
        record.count += x.shape[0]
        record.updates += 1
        return center.copy()

    def remove(self, name: str) -> None:
        """Delete a class (trained ones can be brought back with :meth:`reset`)."""
        del self.records[self.index(name)]

    def rename(self, old: str, new: str) -> None:
        """Rename a class, keeping its center, counts and threshold."""
        record = self.record(old)
        new = self.check_new_name(new)
        if record.name in self.trained:  # a renamed trained class comes last in trained order
            self.trained[new] = self.trained.pop(record.name)
        record.name = new

    def reset(self, name: str) -> None:
        """Restore a trained class's original center (re-adding it if it was removed)."""
        if name not in self.trained:
            raise NotFound(f"{name!r} is not a trained class; trained classes are {list(self.trained)}")
        original = self.trained[name]
        record = ClassRecord(name, original.center.copy(), mean=None if original.mean is None else original.mean.copy())
        if name in self:
            self.records[self.index(name)] = record
        else:
            self.records.append(record)

    def restore_trained(self) -> None:
        """Back to the trained classes and centers only, in trained order, and to the trained
        global threshold (kept as it is when not recorded); per-class thresholds cleared."""
        if not self.trained:
            raise InvalidInput("this bank has no trained centers to restore")
        self.records = [
            ClassRecord(n, t.center.copy(), mean=None if t.mean is None else t.mean.copy())
            for n, t in self.trained.items()
        ]
        if self.trained_threshold is not None:
            self.threshold = self.trained_threshold

    def set_threshold(self, name: str | None, value: float | None) -> None:
        """Set the global threshold (``name=None``) or one class's (``value=None`` clears it)."""
        if name is None:
            if value is None:
                raise InvalidInput("the global threshold cannot be cleared")
            self.check_threshold(value)
            self.threshold = float(value)
            return
        record = self.record(name)
        if value is not None:
            self.check_threshold(value)
        record.threshold = None if value is None else float(value)

    # ------------------------------------------------------------------ scoring (spherefer.bank.scoring)
    def cosine(self, embeddings: object) -> np.ndarray:
        """(N, C) float32 cosine between normalised embeddings and every center."""
        return scoring.cosine(self, embeddings)

    @property
    def decision_rule_name(self) -> str:
        """The rule in force (:func:`~spherefer.bank.scoring.decision_rule_name`)."""
        return scoring.decision_rule_name(self)

    def ranking(self, embeddings: object, cosines: np.ndarray | None = None) -> np.ndarray:
        """(N, C) values whose row-wise argmax is each face's class (:func:`~spherefer.bank.scoring.ranking`)."""
        return scoring.ranking(self, embeddings, cosines)

    def nearest(self, embeddings: object) -> np.ndarray:
        """(N,) index of each face's class under the bank's rule, no threshold."""
        return self.ranking(embeddings).argmax(axis=1)

    def thresholds(self, threshold: float | None = None) -> np.ndarray:
        """(C,) effective threshold per class: its own if set, else the global one."""
        return scoring.thresholds(self, threshold)

    def classify(
        self, embeddings: object, threshold: float | None = None, scores: np.ndarray | None = None
    ) -> Classification:
        """Best class per row, or ``unknown`` (:func:`~spherefer.bank.scoring.classify`)."""
        return scoring.classify(self, embeddings, threshold, scores)

    # ------------------------------------------------------------------ persistence (spherefer.bank.codec)
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the bank atomically as safetensors (centers, means) + JSON metadata, readable by its owner only."""
        with atomic_write(path, private=True) as handle:
            handle.write(bank_bytes(self))

    def to_bytes(self) -> bytes:
        """The bytes :meth:`save` writes (for databases and network transfer)."""
        return bank_bytes(self)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CenterBank:
        """Read a bank written by :meth:`save`; a corrupt or foreign file raises ``ValueError``."""
        return cls.from_parts(*read_safetensors(path, "center bank"), str(path))

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "center bank bytes") -> CenterBank:
        """Read the bytes of :meth:`to_bytes`; ``source`` names them in errors."""
        return cls.from_parts(*parse_safetensors(data, source), source)

    @classmethod
    def from_parts(cls, tensors: dict[str, np.ndarray], metadata: dict[str, str], source: str) -> CenterBank:
        """The bank of a file's tensors and metadata (:func:`~spherefer.bank.codec.parse_bank`)."""
        parts = parse_bank(tensors, metadata, source)
        trained_centers, trained_means = parts.pop("trained_centers"), parts.pop("trained_means")
        classes = parts.pop("classes")
        bank = cls(**parts)
        for record in bank.records:
            for key, value in classes[record.name].items():
                setattr(record, key, value)
        bank.trained = {n: TrainedClass(c, trained_means.get(n)) for n, c in trained_centers.items()}
        return bank
