"""Bringing D-dimensional embeddings and class centers onto the unit sphere in 3-D.

Light on purpose (numpy only, no plotting library): the web service's sphere view and the
renderers of :mod:`spherefer.viz.render` both use it.

Embeddings larger than 3-D are projected by :func:`project_to_sphere`. The default,
``"joint"``, is an uncentered PCA of the normalised face embeddings and the class centers
together (the centers weighted to count as much as all the faces): a linear map through
the origin onto the three directions that keep most of both, then renormalised to the
unit sphere. Because it is fitted on the faces as well as the centers, each face tends
to stay nearest the center it is nearest in the full space (checked on a mid-training
512-d FER+ model with FER2013 and CK+ faces: for 75-83% of the faces, against 25-56% for
the centers-only fits below), and because it is uncentered the pictured angles come from
a plain linear projection. Two
centers-only alternatives: ``"between"`` (LDA-like: the top-3 principal directions of
the centers around their mean -- the between-class scatter -- applied to ``x - mean``,
which spreads the centers over the whole sphere but can leave the faces far from them)
and ``"linear"`` (the uncentered top-3 principal directions of the centers). The method,
its explained variance and how often a face's nearest center on the picture is its true
nearest center are written on every plot. Angles on a projected sphere are not the true
ones: :func:`spherefer.viz.geometry.center_geometry` measures those in the full embedding space.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from spherefer.core.errors import InvalidInput

__all__ = ["PROJECTIONS", "Projection", "project_to_sphere", "unit_rows"]

PROJECTIONS = ("joint", "between", "linear")
"""Methods of :func:`project_to_sphere` for embeddings larger than 3-D."""


@dataclass(frozen=True)
class Projection:
    """How D-dimensional embeddings were brought onto the 3-D sphere.

    ``explained_variance`` is the share of the fitted data's variance along the three
    axes: faces and weighted centers around the origin for ``"joint"``, the centers
    around their mean for ``"between"``, the centers around the origin for ``"linear"``.
    ``faces_kept`` and ``centers_kept`` are the mean share of each face's and each
    center's squared length (measured from the projection's origin) kept before
    renormalisation. All three are None for 3-D (or smaller) inputs, shown unchanged.
    """

    method: str
    input_dim: int
    explained_variance: float | None = None
    faces_kept: float | None = None
    centers_kept: float | None = None
    n_centers: int = 0
    n_faces: int = 0

    @property
    def exact(self) -> bool:
        """Whether the inputs were shown unchanged (3-d or smaller): the pictured angles are the true ones."""
        return self.method in ("identity", "padded")

    @property
    def short(self) -> str:
        """A one-line label: method and explained variance."""
        if self.method == "identity":
            return "3-d embeddings shown as they are"
        if self.method == "padded":
            return f"{self.input_dim}-d embeddings padded with zeros to 3-d"
        kind = {
            "joint": "joint PCA of faces and centers",
            "between": "between-class PCA of the centers",
            "linear": "uncentered PCA of the centers",
        }[self.method]
        return f"{self.input_dim}-d -> 3-d by {kind}, {self.explained_variance:.0%} variance explained"

    @property
    def text(self) -> str:
        """The full description written on the plots."""
        if self.exact:
            return self.short + "; the angles on the sphere are the true ones."
        if self.method == "joint":
            how = (
                f"uncentered PCA of the {self.n_faces} normalised face embeddings and the {self.n_centers} class "
                "centers "
                "together (the centers weighted to count as much as all faces), a linear map through the origin, "
                "then renormalised to the unit sphere"
            )
        elif self.method == "between":
            how = (
                f"top-3 principal directions of the {self.n_centers} class centers around their mean (LDA-like "
                "between-class axes), faces and centers measured from that mean, then renormalised to the unit sphere"
            )
        else:
            how = (
                f"top-3 principal directions of the {self.n_centers} class centers through the origin (uncentered), "
                "then renormalised to the unit sphere"
            )
        kept = [f"{self.explained_variance:.1%} of the variance explained"]
        if self.faces_kept is not None:
            kept.append(f"faces keep {self.faces_kept:.0%} of their squared length")
        if self.centers_kept is not None:
            kept.append(f"centers {self.centers_kept:.0%}")
        return f"Projection {self.input_dim}-d -> 3-d: {how}; {', '.join(kept)}."

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "input_dim": self.input_dim,
            "explained_variance": self.explained_variance,
            "faces_kept": self.faces_kept,
            "centers_kept": self.centers_kept,
            "n_centers": self.n_centers,
            "n_faces": self.n_faces,
            "short": self.short,
            "text": self.text,
        }

    def __str__(self) -> str:
        return self.text


def unit_rows(x: np.ndarray) -> np.ndarray:
    """The rows of ``x`` scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def _top_directions(x: np.ndarray, count: int, exclude: np.ndarray) -> np.ndarray:
    """Up to ``count`` principal directions (rows) of ``x`` orthogonal to the rows of ``exclude``."""
    if count <= 0 or x.shape[0] == 0:
        return np.zeros((0, x.shape[1]))
    residual = x - (x @ exclude.T) @ exclude if exclude.shape[0] else x
    _, s, vt = np.linalg.svd(residual, full_matrices=False)
    keep = s > 1e-9 * max(1.0, float(np.abs(x).max()))
    return vt[keep][:count]


def _kept(projected: np.ndarray, offsets: np.ndarray) -> float | None:
    lengths = (offsets**2).sum(axis=1)
    moving = lengths > 1e-12
    return float(((projected[moving] ** 2).sum(axis=1) / lengths[moving]).mean()) if moving.any() else None


def project_to_sphere(
    embeddings: np.ndarray, centers: np.ndarray, method: str = "joint"
) -> tuple[np.ndarray, np.ndarray, Projection]:
    """Unit 3-D points for (N, D) ``embeddings`` and (K, D) ``centers``, and how they were made.

    Inputs are normalised first. 3-D inputs are returned as they are (normalised); smaller
    ones are padded with zeros. Larger ones go through a linear map onto three axes and
    are renormalised to the sphere:

    * ``"joint"`` (default): the top-3 uncentered principal directions of the faces and
      the centers together, each center weighted ``max(1, N / K)`` so that the centers
      count as much as all the faces; applied to ``x``.
    * ``"between"``: the top-3 principal directions of the centers around their mean
      ``m`` (LDA-like between-class axes); applied to ``x - m``.
    * ``"linear"``: the top-3 uncentered principal directions of the centers; applied to ``x``.

    Where the fitted data span fewer than three directions (too few classes) the
    remaining axes are the faces' own principal directions, then coordinate axes. Each
    axis's sign is fixed (its largest loading positive) so the picture is deterministic.
    ``"between"`` with a single center has no spread and falls back to ``"linear"``.
    """
    if method not in PROJECTIONS:
        raise InvalidInput(f"unknown projection {method!r}; choose one of {', '.join(PROJECTIONS)}")
    c = np.asarray(centers, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] == 0:
        raise InvalidInput(f"centers must be a non-empty (K, D) array, got shape {c.shape}")
    dim = c.shape[1]
    e = np.asarray(embeddings, dtype=np.float64)
    e = e.reshape(0, dim) if e.size == 0 else e
    if e.ndim != 2 or e.shape[1] != dim:
        raise InvalidInput(f"embeddings must be (N, {dim}) like the centers, got shape {e.shape}")
    if not (np.isfinite(c).all() and np.isfinite(e).all()):
        raise InvalidInput("embeddings and centers must be finite")
    c, e = unit_rows(c), unit_rows(e)
    if dim <= 3:
        pad = ((0, 0), (0, 3 - dim))
        info = Projection("identity" if dim == 3 else "padded", dim, n_centers=len(c), n_faces=len(e))
        return np.pad(e, pad), np.pad(c, pad), info
    if method == "between" and len(c) < 2:
        method = "linear"
    origin = c.mean(axis=0) if method == "between" else np.zeros(dim)
    cc, ec = c - origin, e - origin
    if method == "joint":
        fit = np.vstack([math.sqrt(max(1.0, len(e) / len(c))) * cc, ec])
    else:
        fit = cc
    axes = _top_directions(fit, 3, np.zeros((0, dim)))
    spectrum = np.linalg.svd(fit, compute_uv=False) ** 2
    total = float(spectrum.sum())
    explained = float(spectrum[:3].sum() / total) if total > 0 else 1.0
    if len(axes) < 3:
        axes = np.vstack([axes, _top_directions(ec, 3 - len(axes), axes)])
    if len(axes) < 3:
        axes = np.vstack([axes, _top_directions(np.eye(dim), 3 - len(axes), axes)])
    signs = np.sign(axes[np.arange(3), np.abs(axes).argmax(axis=1)])
    bulk = float((fit @ axes[0]).sum())  # turn the bulk of the fitted data towards +axis 1, the front view
    if abs(bulk) > 1e-6 * len(fit):
        signs[0] = np.sign(bulk)
    axes = axes * signs[:, None]
    pc, pe = cc @ axes.T, ec @ axes.T
    info = Projection(
        method,
        dim,
        explained_variance=explained,
        faces_kept=_kept(pe, ec),
        centers_kept=_kept(pc, cc),
        n_centers=len(c),
        n_faces=len(e),
    )
    for p in (pc, pe):  # a vector with nothing left in the three axes gets the first axis
        p[np.linalg.norm(p, axis=1) < 1e-12] = (1.0, 0.0, 0.0)
    return unit_rows(pe), unit_rows(pc), info
