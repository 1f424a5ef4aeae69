"""The unknown score: how much a face looks like the faces of the bank's classes.

The paper calls a face unknown when its best cosine is below a threshold. On the
shipped models that rule is no better than chance (docs/RESULTS.md, section 3): the
margin loss pulls every face, known or not, close to some center. What separates them
is where the faces of each class actually lie and how they spread, which the cosine to
a center ignores. The score is the relative Mahalanobis distance (Ren et al. 2021)::

    score(x) = d_all(x) - min_c d_c(x)
    d_c(x)   = (x - mu_c)^T W (x - mu_c)      (class c, mean mu_c)
    d_all(x) = (x - m)^T B (x - m)            (all faces)

where ``x`` is the unit embedding, ``mu_c`` the mean of class c's unit embeddings,
``W`` the precision of the faces around their class means (one matrix shared by every
class) and ``m``, ``B`` the mean and precision of all training faces. Higher is more
known: a face near some class's faces and typical of faces in general scores high; a
face between classes, or off the face manifold (a texture, a wall), scores low.

The shared parts (``m``, ``W``, ``B``) describe the embedding network and live in the
model folder (``unknown.safetensors``, :class:`FaceDensity`); the class means belong to
the classes and live in the :class:`~spherefer.bank.centers.CenterBank` beside the centers.
A class enrolled from ten shots gets its mean from its shots (:func:`class_mean`) and is
scored like a trained one. Nothing is trained.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from spherefer.core.errors import InvalidInput
from spherefer.core.labels import COSINE_SCORE
from spherefer.core.storage import parse_safetensors, safetensors_bytes

__all__ = ["DENSITY_FILE", "SHRINKAGE", "FaceDensity", "bank_scores", "class_mean"]

DENSITY_FILE = "unknown.safetensors"
SHRINKAGE = 0.1
"""Share of each covariance replaced by its mean variance (keeps the 512 x 512 inverse stable)."""

_SCHEMA = "spherefer.facedensity"


def class_mean(embeddings: np.ndarray) -> np.ndarray:
    """A class's mean (D,) float32 from its faces' embeddings: the direction of the mean of their
    unit vectors (the paper's enrolled center) times its length corrected for the few-sample
    bias (``sqrt((n R^2 - 1) / (n - 1))``), so ten shots give the length many faces would."""
    x = np.asarray(embeddings, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    mean = x.mean(0)
    n, length = len(x), float(np.linalg.norm(mean))
    corrected = length if n < 2 else float(np.sqrt(np.clip((n * length**2 - 1.0) / (n - 1.0), 0.0, 1.0)))
    return (mean / max(length, 1e-12) * corrected).astype(np.float32)


def bank_scores(bank: Any, density: FaceDensity | None, embeddings: np.ndarray) -> np.ndarray | None:
    """The unknown scores a :class:`~spherefer.bank.centers.CenterBank`'s ``classify`` takes for unit
    ``embeddings`` (N, D): None under the paper's cosine rule (the bank computes it itself),
    else the relative Mahalanobis scores against the bank's class means (needs ``density``)."""
    if not bank.names:
        raise InvalidInput("the center bank has no classes")
    if bank.score == COSINE_SCORE:
        return None
    if density is None:
        raise InvalidInput(
            f"the bank's thresholds are on the {bank.score} score, but there is no face density ({DENSITY_FILE}) to "
            "compute it"
        )
    return density.scores(embeddings, bank.means)


def _precision(residuals: np.ndarray) -> np.ndarray:
    cov = residuals.T @ residuals / len(residuals)
    cov = (1.0 - SHRINKAGE) * cov + SHRINKAGE * np.trace(cov) / len(cov) * np.eye(len(cov))
    return np.linalg.inv(cov)


@dataclass
class FaceDensity:
    """The embedding network's part of the unknown score: the mean ``mean`` (D,) of all training
    faces, their precision ``background`` (D, D) and the shared within-class precision ``within`` (D, D)."""

    mean: np.ndarray
    within: np.ndarray
    background: np.ndarray
    faces: int

    def __post_init__(self) -> None:
        d = len(self.mean)
        for name in ("mean", "within", "background"):
            value = np.asarray(getattr(self, name), dtype=np.float32)
            if not np.isfinite(value).all():
                raise InvalidInput(f"face density: {name} has NaN or infinite values")
            setattr(self, name, value)
        if self.mean.shape != (d,) or self.within.shape != (d, d) or self.background.shape != (d, d):
            raise InvalidInput(
                f"face density: need a (D,) mean and (D, D) precisions, got {self.mean.shape}, {self.within.shape}, "
                f"{self.background.shape}"
            )
        self._within = self.within.astype(
            np.float64
        )  # the scores' fp64 copies, made once (per call they cost more than the scores)
        self._background = self.background.astype(np.float64)
        self._means_cache: tuple[bytes, np.ndarray, np.ndarray] | None = None

    @property
    def embedding_size(self) -> int:
        return len(self.mean)

    @classmethod
    def fit(cls, embeddings: np.ndarray, labels: np.ndarray, means: np.ndarray) -> FaceDensity:
        """Fit on unit training embeddings (N, D) whose class ``labels`` (N,) index the class ``means`` (C, D)."""
        x = np.asarray(embeddings, dtype=np.float64)
        labels = np.asarray(labels)
        if x.ndim != 2 or len(x) != len(labels) or len(x) <= x.shape[1]:
            raise InvalidInput(
                f"fitting the face density needs more faces than dimensions and one label per face, got {x.shape} "
                f"and {labels.shape}"
            )
        mean = x.mean(0)
        return cls(
            mean, _precision(x - np.asarray(means, dtype=np.float64)[labels]), _precision(x - mean), faces=len(x)
        )

    def within_norm2(self, d: np.ndarray) -> float:
        """d'Wd for a (D,) difference ``d``, W the shared within-class precision."""
        d = np.asarray(d, dtype=np.float64)
        return float(d @ self._within @ d)

    def _class_terms(self, means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The class means in fp64 and their m'Wm, kept while the same means come back
        (every face of every frame is scored against the bank's unchanged means)."""
        key = np.ascontiguousarray(means).tobytes()
        cached = self._means_cache
        if cached is None or cached[0] != key:
            m = np.asarray(means, dtype=np.float64)
            cached = self._means_cache = (key, m, ((m @ self._within) * m).sum(1))
        return cached[1], cached[2]

    def scores(self, embeddings: np.ndarray, means: np.ndarray) -> np.ndarray:
        """(N,) relative Mahalanobis scores of unit ``embeddings`` (N, D) against the class ``means`` (C, D); higher is
        more known."""
        x = np.asarray(embeddings, dtype=np.float64)
        means, class_terms = self._class_terms(means)
        xw = x @ self._within
        nearest = ((xw * x).sum(1)[:, None] - 2.0 * xw @ means.T + class_terms[None]).min(1)
        centred = x - self.mean
        return (((centred @ self._background) * centred).sum(1) - nearest).astype(np.float32)

    def to_bytes(self) -> bytes:
        """The safetensors bytes of ``unknown.safetensors`` (:meth:`Recognizer.save
        <spherefer.runtime.recognizer.Recognizer.save>` writes them)."""
        return safetensors_bytes(
            {"mean": self.mean, "within": self.within, "background": self.background},
            metadata={"spherefer": json.dumps({"schema": _SCHEMA, "faces": self.faces, "shrinkage": SHRINKAGE})},
        )

    @classmethod
    def from_bytes(cls, data: bytes, source: str) -> FaceDensity:
        """Read :meth:`to_bytes`'s bytes; truncated or foreign bytes raise ``ValueError`` naming ``source``."""
        tensors, metadata = parse_safetensors(data, f"face density {source}")
        try:
            meta = json.loads(metadata["spherefer"])
            if meta["schema"] != _SCHEMA:
                raise KeyError("schema")
            return cls(tensors["mean"], tensors["within"], tensors["background"], faces=int(meta["faces"]))
        except (KeyError, json.JSONDecodeError, TypeError) as err:
            raise InvalidInput(
                f"{source} is a safetensors file but not a spherefer face density (bad or missing {err})"
            ) from err
