"""Pictures of the hypersphere: faces and class centers on a 3-D sphere, and the centers' geometry.

Two outputs show where faces fall relative to the class centers (trained, enrolled and
composed alike):

* :func:`plot_sphere_png` -- a static PNG: two orthographic views of a shaded unit
  sphere (the front and the back hemisphere, so every point is seen once), faces as
  dots coloured by class, centers as labelled markers whose shape tells their origin
  (trained: circle, enrolled: star, composed: diamond).
* :func:`write_sphere_html` -- one self-contained HTML file (no network access, all data
  inline as JSON, plain canvas 2-D): drag to rotate, hover a face for its file, class and
  cosine to its center, click a legend entry to hide or show a class.

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
ones: :func:`center_geometry` measures those in the full embedding space.

:func:`center_geometry` reports pairwise center angles, each class's spread (mean angle
of its faces to its center), the nearest trained classes of enrolled/composed ones, and
for a compound ``A+B`` where its center lies relative to the great-circle arc from A to
B (:func:`arc_position`) -- the paper's remark that compound expressions sit between
their components.
"""

from __future__ import annotations

import copy
import json
import math
import textwrap
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .centers import CenterBank
from .storage import atomic_write, write_json

__all__ = [
    "PROJECTIONS",
    "ORIGIN_MARKERS",
    "Projection",
    "SphereScene",
    "FaceSet",
    "project_to_sphere",
    "class_colors",
    "sphere_scene",
    "plot_sphere_png",
    "write_sphere_html",
    "read_html_data",
    "load_faces",
    "render_dataset",
    "arc_position",
    "center_geometry",
    "geometry_markdown",
    "plot_angles_png",
    "write_geometry",
]

PROJECTIONS = ("joint", "between", "linear")
"""Methods of :func:`project_to_sphere` for embeddings larger than 3-D."""

ORIGIN_MARKERS = {"trained": "o", "enrolled": "*", "composed": "D"}
"""Matplotlib marker of a class center by its origin in the :class:`CenterBank`."""

PNG_SIZE = (1200, 600)
"""Pixel size (width, height) of :func:`plot_sphere_png`'s image."""

LEGEND_LEFT = 0.775
"""Fraction of the PNG's width where the legend starts; the sphere panels lie left of it."""

_PALETTE = (  # no greys: they would vanish on the grey sphere
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#393b79",
    "#e7ba52", "#637939", "#ad494a", "#7b4173", "#00a087", "#f781bf", "#a65628", "#4daf4a", "#984ea3", "#111111",
)
# Front view: looking down the first projected axis (the rows are the screen's right, up and
# towards-the-viewer axes); the back view is the same camera turned half round its vertical axis.
FRONT_VIEW = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
BACK_VIEW = np.diag([-1.0, 1.0, -1.0]) @ FRONT_VIEW
# The graticule (decoration only) is a globe whose pole is the screen's up axis tilted 20 degrees
# towards the viewer, so that its parallels read as ellipses; in data coordinates: GRATICULE @ curve.
_TILT = math.radians(20.0)
_TILT_X = np.array([[1.0, 0.0, 0.0], [0.0, math.cos(_TILT), -math.sin(_TILT)], [0.0, math.sin(_TILT), math.cos(_TILT)]])
GRATICULE = FRONT_VIEW.T @ _TILT_X @ FRONT_VIEW
_PNG_METADATA = {"Software": None}  # no matplotlib version or date in the file: same input, same bytes


# ---------------------------------------------------------------- projection


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
        kind = {"joint": "joint PCA of faces and centers", "between": "between-class PCA of the centers",
                "linear": "uncentered PCA of the centers"}[self.method]
        return f"{self.input_dim}-d -> 3-d by {kind}, {self.explained_variance:.0%} variance explained"

    @property
    def text(self) -> str:
        """The full description written on the plots."""
        if self.exact:
            return self.short + "; the angles on the sphere are the true ones."
        if self.method == "joint":
            how = (f"uncentered PCA of the {self.n_faces} normalised face embeddings and the {self.n_centers} class centers "
                   "together (the centers weighted to count as much as all faces), a linear map through the origin, "
                   "then renormalised to the unit sphere")
        elif self.method == "between":
            how = (f"top-3 principal directions of the {self.n_centers} class centers around their mean (LDA-like "
                   "between-class axes), faces and centers measured from that mean, then renormalised to the unit sphere")
        else:
            how = (f"top-3 principal directions of the {self.n_centers} class centers through the origin (uncentered), "
                   "then renormalised to the unit sphere")
        kept = [f"{self.explained_variance:.1%} of the variance explained"]
        if self.faces_kept is not None:
            kept.append(f"faces keep {self.faces_kept:.0%} of their squared length")
        if self.centers_kept is not None:
            kept.append(f"centers {self.centers_kept:.0%}")
        return f"Projection {self.input_dim}-d -> 3-d: {how}; {', '.join(kept)}."

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "input_dim": self.input_dim, "explained_variance": self.explained_variance,
                "faces_kept": self.faces_kept, "centers_kept": self.centers_kept, "n_centers": self.n_centers,
                "n_faces": self.n_faces, "short": self.short, "text": self.text}

    def __str__(self) -> str:
        return self.text


def _unit_rows(x: np.ndarray) -> np.ndarray:
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
        raise ValueError(f"unknown projection {method!r}; choose one of {', '.join(PROJECTIONS)}")
    c = np.asarray(centers, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] == 0:
        raise ValueError(f"centers must be a non-empty (K, D) array, got shape {c.shape}")
    dim = c.shape[1]
    e = np.asarray(embeddings, dtype=np.float64)
    e = e.reshape(0, dim) if e.size == 0 else e
    if e.ndim != 2 or e.shape[1] != dim:
        raise ValueError(f"embeddings must be (N, {dim}) like the centers, got shape {e.shape}")
    if not (np.isfinite(c).all() and np.isfinite(e).all()):
        raise ValueError("embeddings and centers must be finite")
    c, e = _unit_rows(c), _unit_rows(e)
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
    info = Projection(method, dim, explained_variance=explained, faces_kept=_kept(pe, ec), centers_kept=_kept(pc, cc),
                      n_centers=len(c), n_faces=len(e))
    for p in (pc, pe):  # a vector with nothing left in the three axes gets the first axis
        p[np.linalg.norm(p, axis=1) < 1e-12] = (1.0, 0.0, 0.0)
    return _unit_rows(pe), _unit_rows(pc), info


# ---------------------------------------------------------------- the scene


def class_colors(names: Sequence[str]) -> dict[str, str]:
    """A fixed colour per class: its position in ``names`` (the bank order) picks from a 20-colour palette."""
    return {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(names)}


@dataclass
class SphereScene:
    """Everything drawn on the sphere: unit 3-D faces and centers with their classes."""

    points: np.ndarray  # (N, 3) unit
    labels: list[str]  # (N,) class name of each face
    files: list[str]  # (N,) file name (or id) of each face
    cosines: np.ndarray  # (N,) cosine of each face to its class center, in the full embedding space
    nearest: list[str]  # (N,) class of the nearest center, in the full embedding space
    centers: np.ndarray  # (K, 3) unit
    names: list[str]  # (K,)
    origins: list[str]  # (K,) trained / enrolled / composed
    colors: list[str]  # (K,) "#rrggbb"
    projection: Projection
    title: str = "spherefer"
    agreement: float | None = None  # share of faces whose nearest center on the sphere is their nearest in full

    @property
    def description(self) -> str:
        """The projection's description with how faithful the picture is."""
        if self.projection.exact:
            return self.projection.text
        agree = "" if self.agreement is None else (
            f" For {self.agreement:.0%} of the faces the nearest center on this sphere is also the nearest in {self.projection.input_dim}-d;")
        return f"{self.projection.text}{agree} angles on the sphere are not the true angles (see spherefer geometry)."

    def counts(self) -> dict[str, int]:
        return {name: self.labels.count(name) for name in self.names}

    def to_json_dict(self) -> dict[str, Any]:
        """The data the HTML page draws (coordinates rounded to 4 decimals)."""
        counts = self.counts()
        return {
            "title": self.title,
            "projection": self.projection.to_dict(),
            "description": self.description,
            "agreement": self.agreement,
            "view": FRONT_VIEW.round(6).tolist(),
            "graticule": GRATICULE.round(6).tolist(),
            "classes": [
                {"name": n, "origin": o, "color": col, "center": [round(float(v), 4) for v in xyz], "count": counts[n]}
                for n, o, col, xyz in zip(self.names, self.origins, self.colors, self.centers)
            ],
            "points": [
                {"file": f, "class": lab, "cosine": round(float(cos), 4), "nearest": near, "xyz": [round(float(v), 4) for v in xyz]}
                for f, lab, cos, near, xyz in zip(self.files, self.labels, self.cosines, self.nearest, self.points)
            ],
        }


def sphere_scene(
    bank: CenterBank,
    embeddings: np.ndarray,
    labels: Sequence[str],
    files: Sequence[str] | None = None,
    classes: Sequence[str] | None = None,
    method: str = "joint",
    title: str = "spherefer",
) -> SphereScene:
    """Project faces (``embeddings`` with class ``labels``) and the bank's centers onto the sphere.

    ``classes`` chooses the centers shown (default: every class of the bank); every label
    must be one of them. Colours follow the bank's class order, so a class keeps its colour
    whatever subset is shown.
    """
    shown = list(bank.names) if classes is None else list(classes)
    for name in shown:
        bank.index(name)
    if not shown:
        raise ValueError("no classes to show")
    labels = list(labels)
    stray = sorted(set(labels) - set(shown))
    if stray:
        raise ValueError(f"faces of classes {stray} have no center among the classes shown ({', '.join(shown)})")
    e = np.asarray(embeddings, dtype=np.float64).reshape(len(labels), -1) if labels else np.zeros((0, bank.embedding_size))
    if e.shape[1] != bank.embedding_size:
        raise ValueError(f"embeddings have dimension {e.shape[1]}, the bank's centers {bank.embedding_size}")
    files = [f"face {i}" for i in range(len(labels))] if files is None else [str(f) for f in files]
    if len(files) != len(labels):
        raise ValueError(f"{len(files)} file names for {len(labels)} faces")
    c = bank.centers[[bank.index(n) for n in shown]].double().numpy()
    cos = _unit_rows(e) @ c.T if len(e) else np.zeros((0, len(shown)))
    own = np.array([cos[i, shown.index(lab)] for i, lab in enumerate(labels)]) if labels else np.zeros(0)
    nearest = [shown[j] for j in cos.argmax(axis=1)] if labels else []
    points, centers, info = project_to_sphere(e, c, method)
    agreement = float(((points @ centers.T).argmax(axis=1) == cos.argmax(axis=1)).mean()) if labels else None
    colors = class_colors(bank.names)
    return SphereScene(
        points, labels, files, own, nearest, centers, shown, [bank.info[n].origin for n in shown], [colors[n] for n in shown], info,
        title, agreement,
    )


# ---------------------------------------------------------------- PNG


def _sphere_shading(resolution: int = 400) -> np.ndarray:
    """RGBA image of a Lambert-shaded unit disk lit from the upper left; transparent outside."""
    u = np.linspace(-1.0, 1.0, resolution)
    x, y = np.meshgrid(u, -u)
    r2 = x**2 + y**2
    z = np.sqrt(np.clip(1.0 - r2, 0.0, None))
    light = np.array([-0.45, 0.55, 0.70])
    light /= np.linalg.norm(light)
    lambert = np.clip(x * light[0] + y * light[1] + z * light[2], 0.0, None)
    shade = 0.62 + 0.38 * lambert
    base = np.array([0.90, 0.92, 0.95])
    rgba = np.ones((resolution, resolution, 4))
    rgba[..., :3] = base * shade[..., None]
    rgba[..., 3] = (r2 <= 1.0).astype(float)
    return rgba


def _graticule(view: np.ndarray) -> list[np.ndarray]:
    """Visible (front-facing) parts of the decorative globe's parallels and meridians, in screen (u, v)."""
    t = np.linspace(0.0, 2.0 * math.pi, 241)
    curves = []
    for lat in np.radians([-60, -30, 0, 30, 60]):
        curves.append(np.stack([np.cos(lat) * np.cos(t), np.cos(lat) * np.sin(t), np.full_like(t, np.sin(lat))], 1))
    for lon in np.radians(np.arange(0, 180, 30)):
        curves.append(np.stack([np.cos(t) * np.cos(lon), np.cos(t) * np.sin(lon), np.sin(t)], 1))
    visible = []
    for curve in curves:
        screen = curve @ GRATICULE.T @ view.T
        screen[screen[:, 2] < 0, :2] = np.nan
        visible.append(screen[:, :2])
    return visible


def _draw_panel(ax: Any, scene: SphereScene, view: np.ndarray, caption: str, window: tuple[float, float, float] = (0.0, 0.0, 1.2)) -> None:
    """One orthographic view; ``window`` = (u, v, half-width) of the square shown (zoomed in when below 1.2)."""
    import matplotlib.patheffects as effects

    cu, cv, half = window
    ax.set_xlim(cu - half, cu + half)
    ax.set_ylim(cv - half, cv + half)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.imshow(_sphere_shading(), extent=(-1, 1, -1, 1), interpolation="bilinear", zorder=0)
    for line in _graticule(view):
        ax.plot(line[:, 0], line[:, 1], color="#b8c0cc", lw=0.5, zorder=1)
    t = np.linspace(0.0, 2.0 * math.pi, 361)
    ax.plot(np.cos(t), np.sin(t), color="#8a94a3", lw=0.8, zorder=1)
    color_of = dict(zip(scene.names, scene.colors))
    if len(scene.points):
        screen = scene.points @ view.T
        front = np.flatnonzero(screen[:, 2] >= 0)
        order = front[np.argsort(screen[front, 2], kind="stable")]  # far first: painter's order
        depth = screen[order, 2]
        ax.scatter(screen[order, 0], screen[order, 1], s=5.0 + 11.0 * depth, c=[color_of[scene.labels[i]] for i in order],
                   linewidths=0, zorder=2)
    centers = scene.centers @ view.T
    outline = [effects.withStroke(linewidth=2.5, foreground="white")]
    visible = [k for k in np.argsort(-centers[:, 2], kind="stable") if centers[k, 2] >= 0]  # nearest first
    for k in visible:
        marker = ORIGIN_MARKERS.get(scene.origins[k], "o")
        size = {"*": 20, "D": 10}.get(marker, 13)
        ax.plot([centers[k, 0]], [centers[k, 1]], marker=marker, ms=size, mfc=scene.colors[k], mec="black", mew=1.0, ls="", zorder=4)
    for k, (x, y, ha, va) in zip(visible, _place_labels(centers[visible, :2], [scene.names[k] for k in visible], (cu, cv, half))):
        ax.text(x, y, scene.names[k], fontsize=9, fontweight="bold", color="black", zorder=5, ha=ha, va=va,
                path_effects=outline, clip_on=True)
    ax.set_title(caption, fontsize=9, color="#333333")


def _place_labels(
    anchors: np.ndarray, names: Sequence[str], window: tuple[float, float, float]
) -> list[tuple[float, float, str, str]]:
    """Greedy label placement: for each marker (in order) the first of eight spots around it whose
    text box overlaps no marker and no label placed before; (x, y, ha, va) for ``ax.text``."""
    cu, cv, half = window
    unit = half / 1.2  # data units per "unzoomed" unit; 9 pt bold is about 0.037 wide per character, 0.065 tall
    char_w, text_h, gap, marker_r = 0.037 * unit, 0.065 * unit, 0.05 * unit, 0.045 * unit
    taken = [(x - marker_r, y - marker_r, x + marker_r, y + marker_r) for x, y in anchors]
    spots = [(1, 1), (-1, 1), (1, -1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1)]
    placed = []
    for (x, y), name in zip(anchors, names):
        width = char_w * len(name)
        options = []
        for dx, dy in spots:
            left = x + gap if dx > 0 else x - gap - width if dx < 0 else x - width / 2
            bottom = y + gap if dy > 0 else y - gap - text_h if dy < 0 else y - text_h / 2
            box = (left, bottom, left + width, bottom + text_h)
            inside = box[0] >= cu - half and box[2] <= cu + half and box[1] >= cv - half and box[3] <= cv + half
            overlap = sum(max(0.0, min(box[2], t[2]) - max(box[0], t[0])) * max(0.0, min(box[3], t[3]) - max(box[1], t[1])) for t in taken)
            options.append((overlap + (0.0 if inside else 1e3), len(options), box, dx, dy))
        _, _, box, dx, dy = min(options)
        taken.append(box)
        placed.append((
            box[0] if dx > 0 else box[2] if dx < 0 else (box[0] + box[2]) / 2,
            box[1],
            "left" if dx > 0 else "right" if dx < 0 else "center",
            "bottom",
        ))
    return placed


def _second_view(scene: SphereScene) -> tuple[np.ndarray, str, tuple[float, float, float]]:
    """The back hemisphere, or -- when every face and center faces the front -- the front zoomed onto them."""
    axis = "x" if scene.projection.exact else "axis 1"
    items = np.vstack([scene.points, scene.centers]) @ FRONT_VIEW.T
    if (items[:, 2] < 0).any():
        return BACK_VIEW, f"back hemisphere (seen from behind, -{axis} towards you)", (0.0, 0.0, 1.2)
    lo, hi = items[:, :2].min(axis=0), items[:, :2].max(axis=0)
    center = (lo + hi) / 2
    half = max(0.15, 0.6 * float((hi - lo).max()) + 0.08)
    if half >= 1.0:
        return BACK_VIEW, f"back hemisphere (seen from behind, -{axis} towards you; empty)", (0.0, 0.0, 1.2)
    return FRONT_VIEW, f"front hemisphere zoomed x{1.2 / half:.1f} (nothing lies on the back)", (float(center[0]), float(center[1]), half)


def plot_sphere_png(scene: SphereScene, path: str | Path, size: tuple[int, int] = PNG_SIZE, dpi: int = 100) -> Path:
    """Write the two-view sphere picture of ``scene`` to ``path`` (PNG, ``size`` pixels, written atomically).

    The left panel shows the front hemisphere; the right one the back hemisphere, or, when
    nothing lies on the back, the front zoomed onto the faces and centers. The same scene
    gives the same bytes: no date or software version is stored.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    fig = Figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)
    fig.patch.set_facecolor("white")
    header = textwrap.fill(scene.description, 175)
    fig.suptitle(f"{scene.title}\n{header}", fontsize=8.5, y=0.985, va="top")
    width = (LEGEND_LEFT - 0.015) / 2
    height = min(0.80, width * size[0] / size[1])  # square panels
    axis = "x" if scene.projection.exact else "axis 1"
    _draw_panel(fig.add_axes((0.005, 0.02, width, height)), scene, FRONT_VIEW, f"front hemisphere (+{axis} towards you)")
    view, caption, window = _second_view(scene)
    _draw_panel(fig.add_axes((0.01 + width, 0.02, width, height)), scene, view, caption, window)
    counts = scene.counts()
    handles = [
        Line2D([], [], marker=ORIGIN_MARKERS.get(o, "o"), ls="", mfc=col, mec="black", ms={"*": 13, "D": 7}.get(ORIGIN_MARKERS.get(o, "o"), 9),
               label=f"{n} ({counts[n]} faces)")  # the marker says trained / enrolled / composed
        for n, o, col in zip(scene.names, scene.origins, scene.colors)
    ]
    handles += [Line2D([], [], ls="", label=" ")]
    handles += [
        Line2D([], [], marker=m, ls="", mfc="white", mec="black", ms={"*": 13, "D": 7}.get(m, 9), label=f"{origin} center")
        for origin, m in ORIGIN_MARKERS.items()
    ]
    handles += [Line2D([], [], marker="o", ls="", mfc="#555555", mec="none", ms=4, label="face (colour = class)")]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(LEGEND_LEFT, 0.45), fontsize=8.5, frameon=False,
               title=f"{len(scene.labels)} faces, {len(scene.names)} classes", title_fontsize=9)
    target = Path(path)
    with atomic_write(target) as handle:
        fig.savefig(handle, format="png", dpi=dpi, metadata=_PNG_METADATA)
    return target


# ---------------------------------------------------------------- HTML

_DATA_PLACEHOLDER = "/*__SPHERE_DATA__*/"


def write_sphere_html(scene: SphereScene, path: str | Path) -> Path:
    """Write an interactive, self-contained HTML view of ``scene`` (atomically).

    The page needs no network: its script and styles are inline and the scene is embedded
    as JSON in ``<script type="application/json" id="sphere-data">``.
    """
    template = resources.files("spherefer").joinpath("viz_template.html").read_text(encoding="utf-8")
    payload = json.dumps(scene.to_json_dict(), separators=(",", ":"), ensure_ascii=False)
    # keep the JSON inert inside <script>: no "</script>" or "<!--" can end or open anything
    payload = payload.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    page = template.replace(_DATA_PLACEHOLDER, payload)
    target = Path(path)
    with atomic_write(target, "w") as handle:
        handle.write(page)
    return target


def read_html_data(path: str | Path) -> dict[str, Any]:
    """The scene JSON embedded in a page written by :func:`write_sphere_html`."""
    text = Path(path).read_text(encoding="utf-8")
    start_tag = '<script type="application/json" id="sphere-data">'
    start = text.index(start_tag) + len(start_tag)
    return json.loads(text[start : text.index("</script>", start)])


# ---------------------------------------------------------------- faces of a dataset


@dataclass
class FaceSet:
    """Unit embeddings of a dataset's faces with their class names and file ids."""

    data: str
    embeddings: np.ndarray
    labels: list[str]
    files: list[str]
    classes: list[str] = field(default_factory=list)


def _check_class_names(bank: CenterBank, classes: Sequence[str] | None) -> list[str] | None:
    if not classes:
        return None
    unknown = [name for name in classes if name not in bank.names]
    if unknown:
        raise ValueError(f"unknown class {', '.join(map(repr, unknown))} in --classes; the model's classes are {', '.join(bank.names)}")
    if len(set(classes)) != len(classes):
        raise ValueError(f"a class is named twice in --classes: {', '.join(classes)}")
    return list(classes)


def load_faces(
    recognizer: Any, data: str, classes: Sequence[str] | None = None, max_points: int | None = None, seed: int = 0,
    batch_size: int = 512,
) -> FaceSet:
    """Embed the faces of dataset ``data`` (``FORMAT:PATH[:SPLIT]``) whose classes the bank knows.

    ``classes`` (bank class names) keeps only those; ``max_points`` draws that many faces
    at random (``seed``) before any image is read. Raises ValueError when the data has no
    faces of a class the bank knows (or of the classes asked for).
    """
    from .data import open_dataset
    from .evaluate import embed_arrays

    bank = recognizer.bank
    wanted = _check_class_names(bank, classes)
    if max_points is not None and max_points < 0:
        raise ValueError(f"--max-points must be 0 (all) or positive, got {max_points}")
    dataset = open_dataset(data)
    counts = dataset.class_counts()
    known = [name for name in dataset.classes if name in bank.names and counts.get(name, 0) > 0]
    if not known:
        raise ValueError(f"{data} has classes {dataset.classes}, none of which (with images) the model knows ({', '.join(bank.names)})")
    keep = known if wanted is None else [name for name in wanted if name in known]
    if not keep:
        raise ValueError(f"{data} has no images of {', '.join(wanted or [])}; it has images of {', '.join(known)}")
    targets = np.asarray(dataset.targets)
    index = np.flatnonzero(np.isin(targets, [dataset.classes.index(name) for name in keep]))
    if max_points and len(index) > max_points:
        index = np.sort(np.random.default_rng(seed).choice(index, size=max_points, replace=False))
    subset = copy.copy(dataset)
    subset.records = [dataset.records[i] for i in index]
    subset.targets = [dataset.targets[i] for i in index]
    images, targets = subset.load_arrays(size=recognizer.config.input_size)
    embeddings = embed_arrays(recognizer, images, batch_size)
    labels = [dataset.classes[t] for t in targets]
    return FaceSet(data, embeddings, labels, subset.ids, keep)


def render_dataset(
    recognizer: Any, data: str, output_dir: str | Path, stem: str = "sphere", classes: Sequence[str] | None = None,
    max_points: int | None = 2000, seed: int = 0, method: str = "joint", batch_size: int = 512, title: str | None = None,
) -> list[Path]:
    """Embed ``data``'s faces and write ``<stem>.png`` and ``<stem>.html`` into ``output_dir``.

    The centers shown are ``classes`` (default: every class of the bank, including classes
    without faces in the data, such as composed ones). The plots' title is ``title``
    (default: ``data``) followed by the number of faces.
    """
    if method not in PROJECTIONS:
        raise ValueError(f"unknown projection {method!r}; choose one of {', '.join(PROJECTIONS)}")
    faces = load_faces(recognizer, data, classes, max_points, seed, batch_size)
    shown = list(classes) if classes else None
    scene = sphere_scene(recognizer.bank, faces.embeddings, faces.labels, faces.files, shown, method,
                         title=f"{title or data}: {len(faces.labels)} faces")
    folder = Path(output_dir)
    return [plot_sphere_png(scene, folder / f"{stem}.png"), write_sphere_html(scene, folder / f"{stem}.html")]


# ---------------------------------------------------------------- center geometry


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    cos = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))


def arc_position(center: Any, a: Any, b: Any) -> tuple[float, float]:
    """Where ``center`` lies relative to the shorter great-circle arc from ``a`` to ``b`` (any dimension).

    Returns ``(angle_off_arc, fraction)``: ``fraction`` is the position of the center's
    projection onto the great circle through A and B, as a fraction of the arc from A (0)
    to B (1) -- below 0 or above 1 when it falls beyond an end, NaN when the center is
    perpendicular to that circle; ``angle_off_arc`` is the angle in degrees from the center
    to the nearest point of the arc (its projection when that lies on the arc, otherwise
    the nearer end). The normalised midpoint of A and B gives (0, 0.5).
    """
    c, a, b = (np.asarray(v, dtype=np.float64).ravel() for v in (center, a, b))
    if not (c.shape == a.shape == b.shape):
        raise ValueError(f"center, a and b must have the same dimension, got {c.shape}, {a.shape}, {b.shape}")
    if min(np.linalg.norm(c), np.linalg.norm(a), np.linalg.norm(b)) == 0:
        raise ValueError("a zero vector has no direction")
    c, a, b = c / np.linalg.norm(c), a / np.linalg.norm(a), b / np.linalg.norm(b)
    across = b - np.dot(b, a) * a
    if np.linalg.norm(across) < 1e-9:
        raise ValueError("A and B point in the same or opposite directions: no unique great circle joins them")
    across /= np.linalg.norm(across)
    arc = math.atan2(float(np.dot(b, across)), float(np.dot(b, a)))  # angle A to B, in (0, pi)
    x, y = float(np.dot(c, a)), float(np.dot(c, across))
    in_plane = math.hypot(x, y)
    if in_plane < 1e-12:
        return 90.0, float("nan")
    phi = math.atan2(y, x)  # position along the circle from A, towards B when positive
    fraction = phi / arc
    if 0.0 <= fraction <= 1.0:
        off = math.degrees(math.acos(min(1.0, in_plane)))
    else:
        off = min(_angle(c, a), _angle(c, b))
    return off, fraction


def _compound_components(name: str, bank: CenterBank) -> tuple[str, str] | None:
    parts = name.split("+")
    if len(parts) != 2 or any(p not in bank.names or p == name for p in parts):
        return None
    return parts[0], parts[1]


def center_geometry(
    bank: CenterBank,
    embeddings: np.ndarray | None = None,
    labels: Sequence[str] | Sequence[int] | None = None,
    components: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """The geometry of a bank's centers, in degrees, measured in the full embedding space.

    Returns a JSON-ready dict with ``classes`` (name, origin), ``angles`` (K x K pairwise
    center angles), ``nearest`` (each class's nearest other center), ``spread`` (with
    ``embeddings`` and their class ``labels``, names or bank indices: per class the
    number of faces and the mean, median and standard deviation of their angles to the
    center), ``new_classes`` (every enrolled or composed class with all trained classes by
    angle) and ``compounds`` (classes named ``A+B`` of two bank classes, or listed in
    ``components`` as ``{name: (A, B)}``: angles to A, B and their normalised midpoint, and
    :func:`arc_position` on the arc from A to B).
    """
    names = list(bank.names)
    if not names:
        raise ValueError("the center bank has no classes")
    c = bank.centers.double().numpy()
    c = _unit_rows(c)
    angles = np.degrees(np.arccos(np.clip(c @ c.T, -1.0, 1.0)))
    np.fill_diagonal(angles, 0.0)
    origins = {n: bank.info[n].origin for n in names}
    report: dict[str, Any] = {
        "embedding_size": bank.embedding_size,
        "threshold": bank.threshold,
        "classes": [{"name": n, "origin": origins[n]} for n in names],
        "angles": angles.round(4).tolist(),
        "nearest": {},
        "spread": {},
        "new_classes": {},
        "compounds": {},
    }
    for i, name in enumerate(names):
        others = [j for j in range(len(names)) if j != i]
        if others:
            j = min(others, key=lambda k: angles[i, k])
            report["nearest"][name] = {"name": names[j], "angle": round(float(angles[i, j]), 4)}
    trained = [n for n in names if origins[n] == "trained"]
    for name in names:
        if origins[name] == "trained":
            continue
        i = names.index(name)
        ranked = sorted(trained, key=lambda n: angles[i, names.index(n)])
        report["new_classes"][name] = {
            "origin": origins[name],
            "nearest_trained": [{"name": n, "angle": round(float(angles[i, names.index(n)]), 4)} for n in ranked],
        }
    if embeddings is not None:
        if labels is None:
            raise ValueError("embeddings need their labels")
        e = np.asarray(embeddings, dtype=np.float64)
        e = e.reshape(len(labels), -1) if len(labels) else np.zeros((0, bank.embedding_size))
        if e.shape != (len(labels), bank.embedding_size):
            raise ValueError(f"expected ({len(labels)}, {bank.embedding_size}) embeddings, got shape {e.shape}")
        label_names = [names[int(x)] if isinstance(x, (int, np.integer)) else str(x) for x in labels]
        stray = sorted(set(label_names) - set(names))
        if stray:
            raise ValueError(f"labels {stray} are not classes of the bank ({', '.join(names)})")
        e = _unit_rows(e)
        label_array = np.array(label_names)
        for i, name in enumerate(names):
            rows = e[label_array == name]
            if not len(rows):
                continue
            to_center = np.degrees(np.arccos(np.clip(rows @ c[i], -1.0, 1.0)))
            report["spread"][name] = {
                "n": int(len(rows)),
                "mean_angle": round(float(to_center.mean()), 4),
                "median_angle": round(float(np.median(to_center)), 4),
                "std_angle": round(float(to_center.std()), 4),
                "mean_cosine": round(float((rows @ c[i]).mean()), 4),
            }
    pairs: dict[str, tuple[str, str]] = {}
    for name in names:
        found = _compound_components(name, bank)
        if found:
            pairs[name] = found
    for name, parts in (components or {}).items():
        parts = list(parts)
        if name not in names:
            raise KeyError(f"compound {name!r} is not a class of the bank; classes are {names}")
        if len(parts) != 2:
            raise ValueError(f"compound {name!r} needs exactly two components, got {parts}")
        for part in parts:
            if part not in names or part == name:
                raise ValueError(f"component {part!r} of {name!r} must be another class of the bank ({', '.join(names)})")
        pairs[name] = (parts[0], parts[1])
    for name, (a_name, b_name) in pairs.items():
        center, a, b = c[names.index(name)], c[names.index(a_name)], c[names.index(b_name)]
        if _angle(a, b) < 1e-6 or _angle(a, b) > 180 - 1e-6:
            continue
        off, fraction = arc_position(center, a, b)
        midpoint = (a + b) / np.linalg.norm(a + b)
        report["compounds"][name] = {
            "origin": origins[name],
            "components": [a_name, b_name],
            "component_origins": [origins[a_name], origins[b_name]],
            "angle_components": round(_angle(a, b), 4),
            "angle_to_a": round(_angle(center, a), 4),
            "angle_to_b": round(_angle(center, b), 4),
            "angle_to_midpoint": round(_angle(center, midpoint), 4),
            "angle_off_arc": round(off, 4),
            "fraction": None if math.isnan(fraction) else round(fraction, 4),
        }
    return report


def geometry_markdown(report: Mapping[str, Any], title: str = "Center geometry") -> str:
    """The report of :func:`center_geometry` as markdown tables."""
    names = [c["name"] for c in report["classes"]]
    origins = {c["name"]: c["origin"] for c in report["classes"]}
    mark = {n: (n if origins[n] == "trained" else f"{n} ({origins[n]})") for n in names}
    lines = [f"# {title}", "", f"{len(names)} classes, {report['embedding_size']}-d centers; all angles in degrees, "
             "measured in the full embedding space (not on a projected picture).", ""]
    lines += ["## Pairwise angles between centers", "", "| | " + " | ".join(mark[n] for n in names) + " | nearest |",
              "|---" * (len(names) + 2) + "|"]
    for i, name in enumerate(names):
        near = report["nearest"].get(name)
        near_text = f"{near['name']} ({near['angle']:.1f})" if near else ""
        lines.append(f"| {mark[name]} | " + " | ".join(f"{v:.1f}" for v in report["angles"][i]) + f" | {near_text} |")
    if report["spread"]:
        lines += ["", "## Spread of each class's faces around its center", "",
                  "| class | faces | mean angle | median | std | mean cosine | nearest other center |", "|---|---|---|---|---|---|---|"]
        for name, s in report["spread"].items():
            near = report["nearest"].get(name)
            near_text = f"{near['name']} at {near['angle']:.1f}" if near else ""
            lines.append(f"| {mark[name]} | {s['n']} | {s['mean_angle']:.1f} | {s['median_angle']:.1f} | {s['std_angle']:.1f} | "
                         f"{s['mean_cosine']:.3f} | {near_text} |")
    if report["new_classes"]:
        lines += ["", "## Enrolled and composed classes: nearest trained classes", "",
                  "| class | origin | nearest trained classes (angle) |", "|---|---|---|"]
        for name, item in report["new_classes"].items():
            near = ", ".join(f"{n['name']} ({n['angle']:.1f})" for n in item["nearest_trained"][:3]) or "(no trained classes)"
            lines.append(f"| {name} | {item['origin']} | {near} |")
    if report["compounds"]:
        lines += ["", "## Compounds: position relative to the arc between their components", "",
                  "Angle off arc 0 = on the great-circle arc from A to B; fraction 0 = at A, 1 = at B, 0.5 = halfway "
                  "(outside [0, 1]: beyond an end of the arc).", "",
                  "| class | A | B | angle A-B | to A | to B | to midpoint | angle off arc | fraction along arc |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for name, item in report["compounds"].items():
            fraction = "n/a" if item["fraction"] is None else f"{item['fraction']:.2f}"
            a, b = item["components"]
            lines.append(f"| {mark[name]} | {a} | {b} | {item['angle_components']:.1f} | {item['angle_to_a']:.1f} | "
                         f"{item['angle_to_b']:.1f} | {item['angle_to_midpoint']:.1f} | {item['angle_off_arc']:.1f} | {fraction} |")
    return "\n".join(lines) + "\n"


def plot_angles_png(report: Mapping[str, Any], path: str | Path, title: str = "Angles between class centers (degrees)", dpi: int = 110) -> Path:
    """Heatmap of the pairwise center angles, annotated, non-trained classes marked (PNG, written atomically)."""
    from matplotlib.figure import Figure

    names = [c["name"] for c in report["classes"]]
    origins = [c["origin"] for c in report["classes"]]
    angles = np.array(report["angles"], dtype=float)
    k = len(names)
    side = 2.2 + 0.62 * k
    fig = Figure(figsize=(side + 1.2, side), dpi=dpi)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(angles, cmap="viridis", vmin=0.0, vmax=max(90.0, float(angles.max())))
    for (r, col), value in np.ndenumerate(angles):
        ax.text(col, r, f"{value:.0f}", ha="center", va="center", fontsize=8, color="white" if value < 0.55 * max(90.0, angles.max()) else "black")
    labels = [n if o == "trained" else f"{n} ({o})" for n, o in zip(names, origins)]
    ax.set_xticks(range(k), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), labels, fontsize=8)
    for tick_set in (ax.get_xticklabels(), ax.get_yticklabels()):
        for tick, origin in zip(tick_set, origins):
            if origin != "trained":
                tick.set_fontweight("bold")
                tick.set_color("#b03060")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="degrees")
    ax.set_title(title, fontsize=10)
    target = Path(path)
    with atomic_write(target) as handle:  # a tight box: long class names must not be cut off
        fig.savefig(handle, format="png", dpi=dpi, metadata=_PNG_METADATA, bbox_inches="tight", pad_inches=0.15)
    return target


def write_geometry(report: Mapping[str, Any], output_dir: str | Path, title: str = "Center geometry") -> list[Path]:
    """Write ``geometry.md``, ``geometry.json`` and ``angles.png`` into ``output_dir``."""
    folder = Path(output_dir)
    paths = [folder / "geometry.md", folder / "geometry.json", folder / "angles.png"]
    with atomic_write(paths[0], "w") as handle:
        handle.write(geometry_markdown(report, title))
    write_json(paths[1], report)
    plot_angles_png(report, paths[2])
    return paths
