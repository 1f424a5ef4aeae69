"""Pictures of the hypersphere: faces and class centers on a 3-D sphere, and the centers' geometry.

One home per concept:

* :mod:`spherefer.viz.projection` -- D-dimensional embeddings and centers onto the unit
  sphere in 3-D (:func:`project_to_sphere`, :class:`Projection`); numpy only, shared by the
  web service and the renderers.
* :mod:`spherefer.viz.scene` -- what is drawn (:class:`SphereScene`, :func:`sphere_scene`,
  the views and :func:`class_colors`).
* :mod:`spherefer.viz.render` -- the static PNG (:func:`plot_sphere_png`), the
  self-contained interactive HTML page (:func:`write_sphere_html`), both for a dataset
  (:func:`render_dataset`), and the angle heatmap (:func:`plot_angles_png`); matplotlib is
  imported only when drawing.
* :mod:`spherefer.viz.dataset` -- a dataset's faces embedded for the plots (:func:`load_faces`).
* :mod:`spherefer.viz.geometry` -- angles between centers, spread of each class, compound
  arc positions, measured in the full embedding space (:func:`center_geometry`,
  :func:`arc_position`, :func:`geometry_markdown`, :func:`write_geometry`).
* :mod:`spherefer.viz.run` -- the pictures of a finished training run (:func:`plot_run`).

Angles on a projected sphere are not the true ones: :func:`center_geometry` measures
those in the full embedding space.
"""

from __future__ import annotations

from spherefer.viz.dataset import FaceSet, check_class_names, load_faces
from spherefer.viz.geometry import arc_position, center_geometry, geometry_markdown, write_geometry
from spherefer.viz.projection import PROJECTIONS, Projection, project_to_sphere
from spherefer.viz.render import (
    LEGEND_LEFT,
    ORIGIN_MARKERS,
    PNG_SIZE,
    plot_angles_png,
    plot_sphere_png,
    read_html_data,
    render_dataset,
    write_sphere_html,
)
from spherefer.viz.run import plot_run
from spherefer.viz.scene import (
    BACK_VIEW,
    FRONT_VIEW,
    GRATICULE,
    SphereScene,
    class_colors,
    sphere_scene,
)

__all__ = [
    "PROJECTIONS",
    "ORIGIN_MARKERS",
    "PNG_SIZE",
    "LEGEND_LEFT",
    "FRONT_VIEW",
    "BACK_VIEW",
    "GRATICULE",
    "Projection",
    "SphereScene",
    "FaceSet",
    "project_to_sphere",
    "class_colors",
    "sphere_scene",
    "plot_sphere_png",
    "write_sphere_html",
    "read_html_data",
    "check_class_names",
    "load_faces",
    "render_dataset",
    "arc_position",
    "center_geometry",
    "geometry_markdown",
    "plot_angles_png",
    "write_geometry",
    "plot_run",
]
