"""Pictures of the sphere: a static PNG, a self-contained interactive HTML page, and the angle heatmap.

* :func:`plot_sphere_png` -- a static PNG: two orthographic views of a shaded unit
  sphere (the front and the back hemisphere, so every point is seen once), faces as
  dots coloured by class, centers as labelled markers whose shape tells their origin
  (trained: circle, enrolled: star, composed: diamond).
* :func:`write_sphere_html` -- one self-contained HTML file (no network access, all data
  inline as JSON, plain canvas 2-D; the page is ``template.html`` next to this module):
  drag to rotate, hover a face for its file, class and cosine to its center, click a
  legend entry to hide or show a class.
* :func:`render_dataset` -- both of them for the faces of a dataset.
* :func:`plot_angles_png` -- the heatmap of a :func:`spherefer.viz.geometry.center_geometry`
  report's pairwise center angles.

matplotlib is imported only inside the functions that draw.
"""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from spherefer.core.errors import InvalidInput
from spherefer.core.storage import atomic_write
from spherefer.viz.dataset import load_faces
from spherefer.viz.projection import PROJECTIONS
from spherefer.viz.scene import BACK_VIEW, FRONT_VIEW, GRATICULE, SphereScene, sphere_scene

__all__ = [
    "ORIGIN_MARKERS",
    "PNG_SIZE",
    "LEGEND_LEFT",
    "plot_sphere_png",
    "write_sphere_html",
    "read_html_data",
    "render_dataset",
    "plot_angles_png",
]

ORIGIN_MARKERS = {"trained": "o", "enrolled": "*", "composed": "D"}
"""Matplotlib marker of a class center by its origin in the :class:`CenterBank`."""

PNG_SIZE = (1200, 600)
"""Pixel size (width, height) of :func:`plot_sphere_png`'s image."""

LEGEND_LEFT = 0.775
"""Fraction of the PNG's width where the legend starts; the sphere panels lie left of it."""

_PNG_METADATA = {"Software": None}  # no matplotlib version or date in the file: same input, same bytes


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


def _draw_panel(
    ax: Any, scene: SphereScene, view: np.ndarray, caption: str, window: tuple[float, float, float] = (0.0, 0.0, 1.2)
) -> None:
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
        ax.scatter(
            screen[order, 0],
            screen[order, 1],
            s=5.0 + 11.0 * depth,
            c=[color_of[scene.labels[i]] for i in order],
            linewidths=0,
            zorder=2,
        )
    centers = scene.centers @ view.T
    outline = [effects.withStroke(linewidth=2.5, foreground="white")]
    visible = [k for k in np.argsort(-centers[:, 2], kind="stable") if centers[k, 2] >= 0]  # nearest first
    for k in visible:
        marker = ORIGIN_MARKERS.get(scene.origins[k], "o")
        size = {"*": 20, "D": 10}.get(marker, 13)
        ax.plot(
            [centers[k, 0]],
            [centers[k, 1]],
            marker=marker,
            ms=size,
            mfc=scene.colors[k],
            mec="black",
            mew=1.0,
            ls="",
            zorder=4,
        )
    for k, (x, y, ha, va) in zip(
        visible, _place_labels(centers[visible, :2], [scene.names[k] for k in visible], (cu, cv, half))
    ):
        ax.text(
            x,
            y,
            scene.names[k],
            fontsize=9,
            fontweight="bold",
            color="black",
            zorder=5,
            ha=ha,
            va=va,
            path_effects=outline,
            clip_on=True,
        )
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
        options: list[Any] = []
        for dx, dy in spots:
            left = x + gap if dx > 0 else x - gap - width if dx < 0 else x - width / 2
            bottom = y + gap if dy > 0 else y - gap - text_h if dy < 0 else y - text_h / 2
            box = (left, bottom, left + width, bottom + text_h)
            inside = box[0] >= cu - half and box[2] <= cu + half and box[1] >= cv - half and box[3] <= cv + half
            overlap = sum(
                max(0.0, min(box[2], t[2]) - max(box[0], t[0])) * max(0.0, min(box[3], t[3]) - max(box[1], t[1]))
                for t in taken
            )
            options.append((overlap + (0.0 if inside else 1e3), len(options), box, dx, dy))
        _, _, box, dx, dy = min(options)
        taken.append(box)
        placed.append(
            (
                box[0] if dx > 0 else box[2] if dx < 0 else (box[0] + box[2]) / 2,
                box[1],
                "left" if dx > 0 else "right" if dx < 0 else "center",
                "bottom",
            )
        )
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
    return (
        FRONT_VIEW,
        f"front hemisphere zoomed x{1.2 / half:.1f} (nothing lies on the back)",
        (float(center[0]), float(center[1]), half),
    )


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
    _draw_panel(
        fig.add_axes((0.005, 0.02, width, height)), scene, FRONT_VIEW, f"front hemisphere (+{axis} towards you)"
    )
    view, caption, window = _second_view(scene)
    _draw_panel(fig.add_axes((0.01 + width, 0.02, width, height)), scene, view, caption, window)
    counts = scene.counts()
    handles = [
        Line2D(
            [],
            [],
            marker=ORIGIN_MARKERS.get(o, "o"),
            ls="",
            mfc=col,
            mec="black",
            ms={"*": 13, "D": 7}.get(ORIGIN_MARKERS.get(o, "o"), 9),
            label=f"{n} ({counts[n]} faces)",
        )  # the marker says trained / enrolled / composed
        for n, o, col in zip(scene.names, scene.origins, scene.colors)
    ]
    handles += [Line2D([], [], ls="", label=" ")]
    handles += [
        Line2D(
            [], [], marker=m, ls="", mfc="white", mec="black", ms={"*": 13, "D": 7}.get(m, 9), label=f"{origin} center"
        )
        for origin, m in ORIGIN_MARKERS.items()
    ]
    handles += [Line2D([], [], marker="o", ls="", mfc="#555555", mec="none", ms=4, label="face (colour = class)")]
    fig.legend(
        handles=handles,
        loc="center left",
        bbox_to_anchor=(LEGEND_LEFT, 0.45),
        fontsize=8.5,
        frameon=False,
        title=f"{len(scene.labels)} faces, {len(scene.names)} classes",
        title_fontsize=9,
    )
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
    template = resources.files("spherefer.viz").joinpath("template.html").read_text(encoding="utf-8")
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


def render_dataset(
    recognizer: Any,
    data: str,
    output_dir: str | Path,
    stem: str = "sphere",
    classes: Sequence[str] | None = None,
    max_points: int | None = 2000,
    seed: int = 0,
    method: str = "joint",
    batch_size: int = 512,
    title: str | None = None,
) -> list[Path]:
    """Embed ``data``'s faces and write ``<stem>.png`` and ``<stem>.html`` into ``output_dir``.

    The centers shown are ``classes`` (default: every class of the bank, including classes
    without faces in the data, such as composed ones). The plots' title is ``title``
    (default: ``data``) followed by the number of faces.
    """
    if method not in PROJECTIONS:
        raise InvalidInput(f"unknown projection {method!r}; choose one of {', '.join(PROJECTIONS)}")
    faces = load_faces(recognizer, data, classes, max_points, seed, batch_size)
    shown = list(classes) if classes else None
    scene = sphere_scene(
        recognizer.bank,
        faces.embeddings,
        faces.labels,
        faces.files,
        shown,
        method,
        title=f"{title or data}: {len(faces.labels)} faces",
    )
    folder = Path(output_dir)
    return [plot_sphere_png(scene, folder / f"{stem}.png"), write_sphere_html(scene, folder / f"{stem}.html")]


# ---------------------------------------------------------------- angles between centers


def plot_angles_png(
    report: Mapping[str, Any], path: str | Path, title: str = "Angles between class centers (degrees)", dpi: int = 110
) -> Path:
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
        ax.text(
            col,
            r,
            f"{value:.0f}",
            ha="center",
            va="center",
            fontsize=8,
            color="white" if value < 0.55 * max(90.0, angles.max()) else "black",
        )
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
