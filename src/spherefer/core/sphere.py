"""Arithmetic on the unit hypersphere: normalising, the paper's normalised mean, angles,
and checking that an array-like holds embeddings."""

from __future__ import annotations

import math

import numpy as np

from spherefer.core.errors import InvalidInput

__all__ = ["DUPLICATE_COSINE", "angle_degrees", "as_array", "as_embeddings", "distinct", "normalize", "normalized_mean"]

DUPLICATE_COSINE = 0.995
"""Two unit embeddings at least this close are one face seen twice (a copy, a re-encoded file, the next video frame)."""


def as_array(values: object) -> np.ndarray:
    """A float32 numpy array of an array-like or a PyTorch tensor (detached, on CPU)."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().float().numpy()
    return np.array(values, dtype=np.float32)


def normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``x`` scaled to unit length along ``axis`` (computed in float64, returned float32)."""
    x64 = np.asarray(x, dtype=np.float64)
    return (x64 / np.maximum(np.linalg.norm(x64, axis=axis, keepdims=True), 1e-12)).astype(np.float32)


def as_embeddings(embeddings: object, dim: int | None, what: str) -> np.ndarray:
    """Validate and convert embeddings (an array-like or a PyTorch tensor) to an (N, D) float32 array."""
    x = as_array(embeddings)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[0] == 0:
        raise InvalidInput(f"{what}: expected a non-empty (N, D) array of embeddings, got shape {tuple(x.shape)}")
    if dim is not None and x.shape[1] != dim:
        raise InvalidInput(
            f"{what}: embeddings have dimension {x.shape[1]}, but this bank's centers have dimension {dim}"
        )
    if not np.isfinite(x).all():
        raise InvalidInput(f"{what}: embeddings contain NaN or infinite values")
    if (np.linalg.norm(x, axis=1) == 0).any():
        raise InvalidInput(f"{what}: an embedding is all zeros and has no direction")
    return x


def angle_degrees(a: object, b: object) -> float:
    """Angle in degrees between two vectors."""
    u, v = normalize(as_array(a).ravel()), normalize(as_array(b).ravel())
    return math.degrees(math.acos(float(np.clip(np.dot(u.astype(np.float64), v), -1.0, 1.0))))


def normalized_mean(x: np.ndarray) -> np.ndarray:
    """Paper eq. 4: normalise each row, average, renormalise."""
    mean = normalize(x, axis=1).astype(np.float64).mean(axis=0)
    if np.linalg.norm(mean) < 1e-6:
        raise InvalidInput("the samples point in opposite directions: their normalised mean has no direction")
    return normalize(mean)


def distinct(embeddings: np.ndarray, cosine: float = DUPLICATE_COSINE, chunk: int = 1024) -> np.ndarray:
    """(N,) mask of the embeddings that are not near-duplicates of an earlier one (cosine >= ``cosine``):
    each face seen several times counts once, as its first occurrence."""
    x = normalize(np.asarray(embeddings, dtype=np.float32), axis=1)
    keep = np.ones(len(x), dtype=bool)
    for start in range(0, len(x), chunk):
        block = x[start : start + chunk]
        earlier = np.einsum("nd,md->nm", block, x[: start + len(block)]) >= cosine  # not BLAS: see CenterBank.cosine
        earlier[:, start:] &= np.tri(len(block), len(block), -1, dtype=bool)[:, : earlier.shape[1] - start]
        earlier &= keep[: start + len(block)][None]  # a duplicate of a duplicate is still the first face's
        keep[start : start + len(block)] = ~earlier.any(axis=1)
    return keep
