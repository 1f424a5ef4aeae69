"""The geometry of a bank's class centers, measured in the full embedding space (in degrees).

:func:`center_geometry` reports pairwise center angles, each class's spread (mean angle
of its faces to its center), the nearest trained classes of enrolled/composed ones, and
for a compound ``A+B`` where its center lies relative to the great-circle arc from A to
B (:func:`arc_position`) -- the paper's remark that compound expressions sit between
their components. :func:`geometry_markdown` and :func:`write_geometry` write the report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from spherefer.bank.centers import CenterBank
from spherefer.core.errors import InvalidInput, NotFound
from spherefer.core.storage import atomic_write, write_json
from spherefer.viz.projection import unit_rows
from spherefer.viz.render import plot_angles_png

__all__ = ["arc_position", "center_geometry", "geometry_markdown", "write_geometry"]


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
        raise InvalidInput(f"center, a and b must have the same dimension, got {c.shape}, {a.shape}, {b.shape}")
    if min(np.linalg.norm(c), np.linalg.norm(a), np.linalg.norm(b)) == 0:
        raise InvalidInput("a zero vector has no direction")
    c, a, b = c / np.linalg.norm(c), a / np.linalg.norm(a), b / np.linalg.norm(b)
    across = b - np.dot(b, a) * a
    if np.linalg.norm(across) < 1e-9:
        raise InvalidInput("A and B point in the same or opposite directions: no unique great circle joins them")
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
        raise InvalidInput("the center bank has no classes")
    c = bank.centers.astype(np.float64)
    c = unit_rows(c)
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
            raise InvalidInput("embeddings need their labels")
        e = np.asarray(embeddings, dtype=np.float64)
        e = e.reshape(len(labels), -1) if len(labels) else np.zeros((0, bank.embedding_size))
        if e.shape != (len(labels), bank.embedding_size):
            raise InvalidInput(f"expected ({len(labels)}, {bank.embedding_size}) embeddings, got shape {e.shape}")
        label_names = [names[int(x)] if isinstance(x, (int, np.integer)) else str(x) for x in labels]
        stray = sorted(set(label_names) - set(names))
        if stray:
            raise InvalidInput(f"labels {stray} are not classes of the bank ({', '.join(names)})")
        e = unit_rows(e)
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
            raise NotFound(f"compound {name!r} is not a class of the bank; classes are {names}")
        if len(parts) != 2:
            raise InvalidInput(f"compound {name!r} needs exactly two components, got {parts}")
        for part in parts:
            if part not in names or part == name:
                raise InvalidInput(
                    f"component {part!r} of {name!r} must be another class of the bank ({', '.join(names)})"
                )
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
    lines = [
        f"# {title}",
        "",
        f"{len(names)} classes, {report['embedding_size']}-d centers; all angles in degrees, "
        "measured in the full embedding space (not on a projected picture).",
        "",
    ]
    lines += [
        "## Pairwise angles between centers",
        "",
        "| | " + " | ".join(mark[n] for n in names) + " | nearest |",
        "|---" * (len(names) + 2) + "|",
    ]
    for i, name in enumerate(names):
        near = report["nearest"].get(name)
        near_text = f"{near['name']} ({near['angle']:.1f})" if near else ""
        lines.append(f"| {mark[name]} | " + " | ".join(f"{v:.1f}" for v in report["angles"][i]) + f" | {near_text} |")
    if report["spread"]:
        lines += [
            "",
            "## Spread of each class's faces around its center",
            "",
            "| class | faces | mean angle | median | std | mean cosine | nearest other center |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, s in report["spread"].items():
            near = report["nearest"].get(name)
            near_text = f"{near['name']} at {near['angle']:.1f}" if near else ""
            lines.append(
                f"| {mark[name]} | {s['n']} | {s['mean_angle']:.1f} | {s['median_angle']:.1f} | {s['std_angle']:.1f} | "
                f"{s['mean_cosine']:.3f} | {near_text} |"
            )
    if report["new_classes"]:
        lines += [
            "",
            "## Enrolled and composed classes: nearest trained classes",
            "",
            "| class | origin | nearest trained classes (angle) |",
            "|---|---|---|",
        ]
        for name, item in report["new_classes"].items():
            near = (
                ", ".join(f"{n['name']} ({n['angle']:.1f})" for n in item["nearest_trained"][:3])
                or "(no trained classes)"
            )
            lines.append(f"| {name} | {item['origin']} | {near} |")
    if report["compounds"]:
        lines += [
            "",
            "## Compounds: position relative to the arc between their components",
            "",
            "Angle off arc 0 = on the great-circle arc from A to B; fraction 0 = at A, 1 = at B, 0.5 = halfway "
            "(outside [0, 1]: beyond an end of the arc).",
            "",
            "| class | A | B | angle A-B | to A | to B | to midpoint | angle off arc | fraction along arc |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, item in report["compounds"].items():
            fraction = "n/a" if item["fraction"] is None else f"{item['fraction']:.2f}"
            a, b = item["components"]
            lines.append(
                f"| {mark[name]} | {a} | {b} | {item['angle_components']:.1f} | {item['angle_to_a']:.1f} | "
                f"{item['angle_to_b']:.1f} | {item['angle_to_midpoint']:.1f} | {item['angle_off_arc']:.1f} | "
                f"{fraction} |"
            )
    return "\n".join(lines) + "\n"


def write_geometry(report: Mapping[str, Any], output_dir: str | Path, title: str = "Center geometry") -> list[Path]:
    """Write ``geometry.md``, ``geometry.json`` and ``angles.png`` into ``output_dir``."""
    folder = Path(output_dir)
    paths = [folder / "geometry.md", folder / "geometry.json", folder / "angles.png"]
    with atomic_write(paths[0], "w") as handle:
        handle.write(geometry_markdown(report, title))
    write_json(paths[1], report)
    plot_angles_png(report, paths[2])
    return paths
