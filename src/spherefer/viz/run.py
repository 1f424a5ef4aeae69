"""The pictures of a finished training run (``spherefer train --plots``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from spherefer.viz.geometry import center_geometry, write_geometry
from spherefer.viz.render import render_dataset

if TYPE_CHECKING:
    from spherefer.training.config import TrainConfig

__all__ = ["plot_run"]


def plot_run(run_dir: str | Path, config: TrainConfig) -> list[Path]:
    """Picture the best model of the run in ``run_dir`` trained with ``config`` into
    ``run_dir/plots``: its validation faces on the sphere (``val_sphere.png``, ``.html``)
    and its center geometry (``geometry.md``, ``geometry.json``, ``angles.png``).

    A cross-validated run's validation subjects are no dataset spec: its training data is drawn instead.
    """
    from spherefer.runtime.loading import load_model

    best = load_model(Path(run_dir) / "best")
    data = config.data.train if config.data.folds else config.data.val
    plots = Path(run_dir) / "plots"
    paths = render_dataset(best, data, plots, stem="val_sphere", title=f"{config.name} on {data}")
    return paths + write_geometry(center_geometry(best.bank), plots, title=f"Center geometry of {config.name}")
