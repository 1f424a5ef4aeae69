"""What the sphere pictures draw: faces and class centers as unit 3-D points, their classes and colours.

:func:`sphere_scene` projects a bank's centers and a set of face embeddings onto the
sphere (:func:`spherefer.viz.projection.project_to_sphere`) and records, for each face,
its file, class, cosine to its own center and nearest center in the full embedding space.
The renderers of :mod:`spherefer.viz.render` draw a :class:`SphereScene`; the web
service takes its class colours from :func:`class_colors`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from spherefer.bank.centers import CenterBank
from spherefer.core.errors import InvalidInput
from spherefer.viz.projection import Projection, project_to_sphere, unit_rows

__all__ = ["FRONT_VIEW", "BACK_VIEW", "GRATICULE", "SphereScene", "class_colors", "sphere_scene"]

_PALETTE = (  # no greys: they would vanish on the grey sphere
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#17becf",
    "#393b79",
    "#e7ba52",
    "#637939",
    "#ad494a",
    "#7b4173",
    "#00a087",
    "#f781bf",
    "#a65628",
    "#4daf4a",
    "#984ea3",
    "#111111",
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
        agree = (
            ""
            if self.agreement is None
            else (
                f" For {self.agreement:.0%} of the faces the nearest center on this sphere is also the nearest in "
                f"{self.projection.input_dim}-d;"
            )
        )
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
                {
                    "file": f,
                    "class": lab,
                    "cosine": round(float(cos), 4),
                    "nearest": near,
                    "xyz": [round(float(v), 4) for v in xyz],
                }
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
        raise InvalidInput("no classes to show")
    labels = list(labels)
    stray = sorted(set(labels) - set(shown))
    if stray:
        raise InvalidInput(f"faces of classes {stray} have no center among the classes shown ({', '.join(shown)})")
    e = (
        np.asarray(embeddings, dtype=np.float64).reshape(len(labels), -1)
        if labels
        else np.zeros((0, bank.embedding_size))
    )
    if e.shape[1] != bank.embedding_size:
        raise InvalidInput(f"embeddings have dimension {e.shape[1]}, the bank's centers {bank.embedding_size}")
    files = [f"face {i}" for i in range(len(labels))] if files is None else [str(f) for f in files]
    if len(files) != len(labels):
        raise InvalidInput(f"{len(files)} file names for {len(labels)} faces")
    c = bank.centers[[bank.index(n) for n in shown]].astype(np.float64)
    cos = unit_rows(e) @ c.T if len(e) else np.zeros((0, len(shown)))
    own = np.array([cos[i, shown.index(lab)] for i, lab in enumerate(labels)]) if labels else np.zeros(0)
    nearest = [shown[j] for j in cos.argmax(axis=1)] if labels else []
    points, centers, info = project_to_sphere(e, c, method)
    agreement = float(((points @ centers.T).argmax(axis=1) == cos.argmax(axis=1)).mean()) if labels else None
    colors = class_colors(bank.names)
    return SphereScene(
        points,
        labels,
        files,
        own,
        nearest,
        centers,
        shown,
        [bank.info[n].origin for n in shown],
        [colors[n] for n in shown],
        info,
        title,
        agreement,
    )
