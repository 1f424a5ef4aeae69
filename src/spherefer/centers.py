"""The class-center bank: the paper's open vocabulary, separate from any network.

A :class:`CenterBank` holds ordered class names and a (C, D) float32 matrix of unit
class centers. Trained centers come from a head's normalised weight rows; new
expressions are enrolled from a few embeddings (paper eq. 4: normalise each sample,
average, renormalise) and existing centers move with new instances by a moving
average on the sphere. Classification is the cosine to every center, rejected as
``unknown`` when the face's unknown score is below a threshold: the paper's best cosine,
or (``score="relative_mahalanobis"``) the score of :mod:`spherefer.unknown`, for which the
bank keeps each class's mean beside its center (``means``). The accept rule, the class-name rule and the result
records are :mod:`spherefer.labels`'; the enrolment policy (shots, a new class's
threshold) is :mod:`spherefer.enrol`'.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .bank_file import bank_bytes, bank_metadata, parse_bank
from .confusables import confusable_key
from .decision import DEFAULT_RULE, PAPER, DecisionRule, check_rule
from .labels import (COSINE_SCORE, NO_FACE, REJECTED, RESERVED_LABELS, SCORES, UNKNOWN, Classification, Prediction, check_class_name,
                     decide, label_of, normalized_class_name, shown)
from .sphere import as_array, as_embeddings, normalize, normalized_mean
from .storage import atomic_write, parse_safetensors, read_safetensors
from .unknown import class_mean

__all__ = ["NO_FACE", "REJECTED", "RESERVED_LABELS", "UNKNOWN", "CenterBank", "ClassExists", "Classification", "Prediction"]
# The labels, Classification and Prediction live in spherefer.labels and are importable from here too.

ORIGINS = ("trained", "enrolled", "composed")


class ClassExists(ValueError):
    """A new class name that the bank already has."""


@dataclass
class _ClassInfo:
    count: int
    origin: str
    updates: int = 0
    threshold: float | None = None


@dataclass
class CenterBank:
    """Ordered class names with unit centers, sample counts, origins and thresholds.

    ``trained_centers`` keeps the head's original centers so that any trained class
    can be reset after updates, renames or removals; ``trained_threshold`` keeps the
    global threshold the bank was trained or shipped with (None: not recorded, as in
    banks saved before it was), which :meth:`restore_trained` brings back.

    ``score`` names what the thresholds are compared with (:data:`~spherefer.labels.SCORES`).
    ``means`` (C, D), when present, are the classes' mean embeddings for the relative
    Mahalanobis score (:meth:`set_means`); enrolment, updates and resets keep them in step
    with the centers.

    ``rule`` names the decision rule (:mod:`spherefer.decision`) when one was chosen (:meth:`use_rule`);
    None follows the default, :attr:`decision_rule_name`: the mean gate once the bank has class
    means, else the paper's cosine to every center.
    """

    names: list[str]
    centers: np.ndarray
    scale: float = 30.0
    threshold: float = 0.6
    info: dict[str, _ClassInfo] = field(default_factory=dict)
    trained_centers: dict[str, np.ndarray] = field(default_factory=dict)
    trained_threshold: float | None = None
    score: str = COSINE_SCORE
    means: np.ndarray | None = None
    trained_means: dict[str, np.ndarray] = field(default_factory=dict)
    rule: str | None = None

    def __post_init__(self) -> None:
        if self.score not in SCORES:
            raise ValueError(f"unknown score {self.score!r}; scores are {sorted(SCORES)}")
        self.names = list(self.names)
        centers = as_array(self.centers)
        self.centers = normalize(centers, axis=1) if centers.ndim == 2 else centers
        if self.centers.ndim != 2 or self.centers.shape[0] != len(self.names):
            raise ValueError(f"centers must be ({len(self.names)}, D), got {tuple(self.centers.shape)}")
        for name in self.names:
            check_class_name(name)
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"class names must be unique, got {self.names}")
        for name in self.names:
            self.info.setdefault(name, _ClassInfo(count=0, origin="trained"))
        if self.means is not None:
            self.means = as_array(self.means)
            if self.means.shape != self.centers.shape:
                raise ValueError(f"class means must have the centers' shape {tuple(self.centers.shape)}, got {tuple(self.means.shape)}")
        if self.score != COSINE_SCORE and self.means is None:
            raise ValueError(f"a bank scored by {self.score} needs its class means")
        if self.rule is not None:
            self.rule = check_rule(self.rule, self.means is not None)
        self._check_threshold(self.threshold)
        if self.trained_threshold is not None:
            self._check_threshold(self.trained_threshold)
            self.trained_threshold = float(self.trained_threshold)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_head(cls, head: object, names: Sequence[str], threshold: float = 0.6) -> CenterBank:
        """Bank of a trained head (a :class:`~spherefer.heads.ClassificationHead`): its
        normalised weight rows, named ``names`` in order."""
        centers = as_array(head.centers())  # type: ignore[attr-defined]
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
        return normalized_class_name(name) in self.names

    def index(self, name: str) -> int:
        """Position of ``name`` (in any Unicode normal form); unknown names raise ``KeyError`` listing the classes."""
        stored = normalized_class_name(name)
        if stored not in self.names:
            raise KeyError(f"no class named {name!r}; classes are {self.names}")
        return self.names.index(stored)

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
        """``name`` in NFKC form if it may name a new class of this bank: it follows the class-name rule
        (:func:`~spherefer.labels.check_class_name`, ``ValueError``), is not taken and does not look like
        a class's name (:func:`~spherefer.confusables.confusable_key`; both :class:`ClassExists`).
        :meth:`add`, :meth:`compose` and :meth:`rename` check it and store the NFKC form."""
        name = check_class_name(name)
        if name in self.names:
            raise ClassExists(f"class {shown(name)} already exists")
        key = confusable_key(name)
        alike = [n for n in self.names if confusable_key(n) == key]
        if alike:
            raise ClassExists(f"class {shown(name)} would look like the existing class {shown(alike[0])} "
                              "(same letters to a reader)")
        return name

    def _check_threshold(self, value: float) -> None:
        if self.score == COSINE_SCORE and not -1.0 <= float(value) <= 1.0:
            raise ValueError(f"a cosine threshold must lie in [-1, 1], got {value}")
        if not math.isfinite(float(value)):
            raise ValueError(f"a threshold must be a finite number, got {value}")

    def set_means(self, means: object) -> None:
        """Give every class its mean embedding (C, D) (:func:`~spherefer.unknown.class_mean` of its
        faces); trained classes remember theirs for :meth:`reset`."""
        values = as_array(means)
        if values.shape != self.centers.shape:
            raise ValueError(f"class means must have the centers' shape {tuple(self.centers.shape)}, got {tuple(values.shape)}")
        missing = [n for n in self.trained_centers if n not in self.names]
        if missing:
            raise ValueError(f"set the class means while every trained class is in the bank (reset {missing} first)")
        self.means = values
        self.trained_means = {n: m.copy() for n, m in zip(self.names, values) if n in self.trained_centers}

    def replace_centers(self, centers: object, means: object | None = None) -> None:
        """Move every class's center (and mean) at once, in the bank's order (:mod:`spherefer.adapt`);
        the trained originals stay for :meth:`reset`."""
        values = normalize(as_array(centers), axis=1)
        mean_values = None if means is None else as_array(means)
        if values.shape != self.centers.shape or (mean_values is None) != (self.means is None) or (
                mean_values is not None and mean_values.shape != values.shape):
            raise ValueError(f"need {tuple(self.centers.shape)} centers" + (" and means" if self.means is not None else ""))
        self.centers = values
        if mean_values is not None:
            self.means = mean_values

    def use_score(self, score: str, threshold: float) -> None:
        """Compare faces' ``score`` (:data:`~spherefer.labels.SCORES`) with ``threshold`` from now
        on, also as the trained threshold; per-class thresholds, set on the old score, are cleared."""
        if score not in SCORES:
            raise ValueError(f"unknown score {score!r}; scores are {sorted(SCORES)}")
        if score != COSINE_SCORE and self.means is None:
            raise ValueError(f"scoring by {score} needs the class means (set_means)")
        previous, self.score = self.score, score
        try:
            self._check_threshold(threshold)
        except ValueError:
            self.score = previous
            raise
        self.threshold = self.trained_threshold = float(threshold)
        for info in self.info.values():
            info.threshold = None

    def use_rule(self, name: str) -> None:
        """Decide classes by the rule ``name`` (:data:`~spherefer.decision.RULES`) from now on."""
        self.rule = check_rule(name, self.means is not None)

    def add(self, name: str, embeddings: object, origin: str = "enrolled", threshold: float | None = None) -> np.ndarray:
        """Enrol a new class from sample embeddings (normalise, average, renormalise); returns its center."""
        name = self.check_new_name(name)
        if origin not in ORIGINS:
            raise ValueError(f"origin must be one of {ORIGINS}, got {origin!r}")
        if threshold is not None:
            self._check_threshold(threshold)
        x = as_embeddings(embeddings, self.embedding_size, f"adding class {name!r}")
        center = normalized_mean(x)
        self.names.append(name)
        self.centers = np.concatenate([self.centers, center[None]])
        if self.means is not None:
            self.means = np.concatenate([self.means, class_mean(x)[None]])
        self.info[name] = _ClassInfo(count=x.shape[0], origin=origin, threshold=threshold)
        return center.copy()

    def compose(self, name: str, components: Sequence[str], weights: Sequence[float] | None = None, threshold: float | None = None) -> np.ndarray:
        """Enrol a class from no samples: the normalised weighted sum of existing centers."""
        name = self.check_new_name(name)
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
        if self.means is not None:  # the weighted mean of the components' means
            self.means[-1] = sum(w * self.means[self.index(c)] for w, c in zip(weights, components)) / sum(weights)
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
        x = normalize(as_embeddings(embeddings, self.embedding_size, f"updating class {name!r}"), axis=1)
        steps = [normalized_mean(x)] if per == "call" else list(x)
        center = self.centers[i]
        for e in steps:
            moved = momentum * center.astype(np.float64) + (1.0 - momentum) * e.astype(np.float64)
            if np.linalg.norm(moved) < 1e-6:
                raise ValueError(f"updating class {name!r}: the new instances point exactly away from the center")
            center = normalize(moved)
        if self.means is not None:  # the mean takes the same moving-average steps
            self.means = self.means.copy()
            for m in [class_mean(x)] if per == "call" else list(x):
                self.means[i] = momentum * self.means[i] + (1.0 - momentum) * m
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
        if self.means is not None:
            self.means = self.means[keep]
        del self.names[i]
        del self.info[name]

    def rename(self, old: str, new: str) -> None:
        """Rename a class, keeping its center, counts and threshold."""
        i = self.index(old)
        old = self.names[i]
        new = self.check_new_name(new)
        self.names[i] = new
        self.info[new] = self.info.pop(old)
        if old in self.trained_centers:
            self.trained_centers[new] = self.trained_centers.pop(old)
        if old in self.trained_means:
            self.trained_means[new] = self.trained_means.pop(old)

    def reset(self, name: str) -> None:
        """Restore a trained class's original center (re-adding it if it was removed)."""
        if name not in self.trained_centers:
            raise KeyError(f"{name!r} is not a trained class; trained classes are {list(self.trained_centers)}")
        center = self.trained_centers[name].copy()
        if name in self.names:
            self.centers = self.centers.copy()
            self.centers[self.index(name)] = center
            if self.means is not None:
                self.means = self.means.copy()
                self.means[self.index(name)] = self.trained_means[name]
        else:
            self.names.append(name)
            self.centers = np.concatenate([self.centers, center[None]])
            if self.means is not None:
                self.means = np.concatenate([self.means, self.trained_means[name][None]])
        self.info[name] = _ClassInfo(count=0, origin="trained")

    def restore_trained(self) -> None:
        """Back to the trained classes and centers only, in trained order, and to the trained
        global threshold (kept as it is when not recorded); per-class thresholds cleared."""
        if not self.trained_centers:
            raise ValueError("this bank has no trained centers to restore")
        self.names = list(self.trained_centers)
        self.centers = np.stack([c.copy() for c in self.trained_centers.values()])
        if self.means is not None:
            self.means = np.stack([self.trained_means[n] for n in self.names])
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
        x = normalize(as_embeddings(embeddings, self.embedding_size, "classifying"), axis=1)
        # einsum, not BLAS: OpenBLAS's threads keep spinning after a product and took a core from
        # ONNX Runtime's next call (benchmarks/bench_peer.py: 256-crop predict 88 ms with it, 52 ms without)
        return np.clip(np.einsum("nd,cd->nc", x, self.centers), -1.0, 1.0)

    @property
    def decision_rule_name(self) -> str:
        """The rule in force: the chosen one, else :data:`~spherefer.decision.DEFAULT_RULE` with class means,
        else the paper's."""
        return self.rule if self.rule is not None else (DEFAULT_RULE if self.means is not None else PAPER)

    def decision_rule(self) -> DecisionRule:
        """The bank's rule with the bank's classes as they are now (:class:`~spherefer.decision.DecisionRule`)."""
        name = self.decision_rule_name
        trained = np.array([self.info[n].origin == "trained" for n in self.names], dtype=bool)
        directions = None if self.means is None or name == PAPER else normalize(self.means.astype(np.float64), axis=1)
        return DecisionRule(name, trained, directions)

    def ranking(self, embeddings: object, cosines: np.ndarray | None = None) -> np.ndarray:
        """(N, C) values whose row-wise argmax is each face's class under the bank's rule
        (:meth:`DecisionRule.ranking <spherefer.decision.DecisionRule.ranking>`); ``cosines`` when already computed."""
        rule = self.decision_rule()
        cos = self.cosine(embeddings) if cosines is None else cosines
        if not rule.mixed:  # the paper's rule, or one kind of class only: the cosines decide
            return cos
        return rule.ranking(normalize(as_embeddings(embeddings, self.embedding_size, "classifying"), axis=1), cos)

    def nearest(self, embeddings: object) -> np.ndarray:
        """(N,) index of each face's class under the bank's rule, no threshold."""
        return self.ranking(embeddings).argmax(axis=1)

    def thresholds(self, threshold: float | None = None) -> np.ndarray:
        """(C,) effective threshold per class: its own if set, else the global one."""
        default = self.threshold if threshold is None else float(threshold)
        self._check_threshold(default)
        return np.array([default if self.info[n].threshold is None else self.info[n].threshold for n in self.names], dtype=np.float32)

    def classify(self, embeddings: object, threshold: float | None = None, scores: np.ndarray | None = None) -> Classification:
        """Best class per row, or ``unknown`` when its unknown score is below that class's threshold
        (the accept rule, :func:`~spherefer.labels.decide`). A bank scored by the best cosine
        computes it; any other score comes in ``scores`` (N,), as
        :meth:`~spherefer.recognizer.Recognizer.classify` gives it."""
        if not self.names:
            raise ValueError("the center bank has no classes")
        if (scores is None) != (self.score == COSINE_SCORE):
            raise ValueError(f"this bank's thresholds are on the {self.score} score: "
                             + ("classify through a Recognizer, whose model gives the scores" if scores is None else "it takes no scores"))
        cos = self.cosine(embeddings)
        ranking = self.ranking(embeddings, cos)
        decision = decide(cos, self.thresholds(threshold), scores, ranking)
        labels = [label_of(i, self.names) for i in decision.index.tolist()]
        logits = self.scale * ranking.astype(np.float64)
        odds = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities = (odds / odds.sum(axis=1, keepdims=True)).astype(np.float32)
        return Classification(list(self.names), labels, decision.index, decision.score, cos, probabilities,
                              decision.nearest)

    # ------------------------------------------------------------------ persistence (the format: spherefer.bank_file)
    def to_metadata(self) -> dict[str, object]:
        """The bank's JSON metadata (:func:`~spherefer.bank_file.bank_metadata`)."""
        return bank_metadata(self)

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
        return cls._from_parts(*read_safetensors(path, "center bank"), str(path))

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "center bank bytes") -> CenterBank:
        """Read the bytes of :meth:`to_bytes`; ``source`` names them in errors."""
        return cls._from_parts(*parse_safetensors(data, source), source)

    @classmethod
    def _from_parts(cls, tensors: dict[str, np.ndarray], metadata: dict[str, str], source: str) -> CenterBank:
        parts = parse_bank(tensors, metadata, source)
        trained_centers, trained_means = parts.pop("trained_centers"), parts.pop("trained_means")
        info = {n: _ClassInfo(**record) for n, record in parts.pop("classes").items()}
        bank = cls(**parts, info=info)
        bank.trained_centers, bank.trained_means = trained_centers, trained_means
        return bank
