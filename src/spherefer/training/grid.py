"""The paper's Table 2: a grid search over the LMCL scale s and margin m.

Each cell is an ordinary training run (``<grid>-s<S>-m<M>`` under the output folder),
so an interrupted grid resumes where it stopped and finished cells are not retrained.
Every best model is then evaluated on one dataset; the grid is written as JSON, a
markdown table and a heatmap PNG.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spherefer.core.errors import InvalidInput
from spherefer.core.storage import atomic_write, write_json
from spherefer.data import given_split, parse_data_spec
from spherefer.evaluation.evaluate import evaluate
from spherefer.runtime.loading import load_model
from spherefer.training.config import TrainConfig, load_train_config
from spherefer.training.heads import additive_margin_heads
from spherefer.training.loop import train

__all__ = ["GridResult", "grid_cell", "run_grid"]


@dataclass
class GridResult:
    """Accuracy per evaluation dataset (rows: scales, columns: margins; NaN = not run yet)."""

    name: str
    epochs: int
    scales: list[float]
    margins: list[float]
    accuracy: dict[str, list[list[float]]]

    def to_markdown(self) -> str:
        lines = []
        for data, values in self.accuracy.items():
            acc = np.array(values, dtype=float)
            best = np.unravel_index(np.nanargmax(acc), acc.shape) if np.isfinite(acc).any() else None
            lines += [
                f"LMCL grid `{self.name}`: accuracy on `{data}` after {self.epochs} epochs per cell (best in bold)",
                "",
                "| s \\ m | " + " | ".join(f"{m:.2f}" for m in self.margins) + " |",
                "|---" * (len(self.margins) + 1) + "|",
            ]
            for i, s in enumerate(self.scales):
                cells = [
                    "-" if np.isnan(v) else f"**{v:.2%}**" if (i, j) == best else f"{v:.2%}"
                    for j, v in enumerate(acc[i])
                ]
                lines.append(f"| {s:g} | " + " | ".join(cells) + " |")
            lines.append("")
        return "\n".join(lines)

    def plot(self, path: str | Path) -> None:
        """One heatmap per evaluation dataset, side by side."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        width = 1.6 + 0.9 * len(self.margins)
        fig, axes = plt.subplots(
            1, len(self.accuracy), figsize=(width * len(self.accuracy), 1.4 + 0.6 * len(self.scales)), squeeze=False
        )
        for ax, (data, values) in zip(axes[0], self.accuracy.items()):
            acc = np.array(values, dtype=float)
            image = ax.imshow(acc, cmap="viridis", aspect="auto")
            for (i, j), value in np.ndenumerate(acc):
                if np.isfinite(value):
                    ax.text(
                        j,
                        i,
                        f"{value:.1%}",
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white" if value < np.nanmean(acc) else "black",
                    )
            ax.set_xticks(range(len(self.margins)), [f"{m:.2f}" for m in self.margins])
            ax.set_yticks(range(len(self.scales)), [f"{s:g}" for s in self.scales])
            ax.set_xlabel("margin m")
            ax.set_ylabel("scale s")
            ax.set_title(
                f"{parse_data_spec(data).format}:{given_split(data) or 'all'}\n({self.epochs} epochs/cell)", fontsize=9
            )
            fig.colorbar(image, ax=ax, format=lambda v, _: f"{v:.0%}")
        fig.tight_layout()
        with atomic_write(path) as handle:
            fig.savefig(handle, format="png", dpi=120)
        plt.close(fig)


def _check_head(head: str) -> None:
    heads = additive_margin_heads()
    if head not in heads:
        raise InvalidInput(f"a scale/margin grid needs an additive-margin head ({', '.join(heads)}), not {head!r}")


def grid_cell(base: TrainConfig, scale: float, margin: float) -> TrainConfig:
    """The run of one (s, m) cell: ``base`` named ``<base name>/s<S>-m<M>`` with the model's scale and margin
    replaced."""
    _check_head(base.model.head)
    model = dataclasses.replace(base.model, scale=float(scale), margin=float(margin))
    return dataclasses.replace(base, name=f"{base.name}/s{scale:g}-m{margin:.2f}", model=model)


def run_grid(
    config_path: str | None,
    overrides: Sequence[str],
    scales: Sequence[float],
    margins: Sequence[float],
    eval_data: Sequence[str],
    progress: bool = True,
) -> tuple[GridResult, Path]:
    """Train (or resume) every (s, m) cell, evaluate each best model on every ``eval_data`` spec."""
    base: TrainConfig = load_train_config(config_path, overrides)
    _check_head(base.model.head)
    cells = [[grid_cell(base, s, m) for m in margins] for s in scales]
    grid_dir = base.run_dir
    accuracy = {spec: np.full((len(scales), len(margins)), np.nan) for spec in eval_data}
    for i, row in enumerate(cells):
        for j, cell in enumerate(row):
            recognizer = load_model(train(cell, progress=progress) / "best")
            for spec in eval_data:
                accuracy[spec][i, j] = evaluate(recognizer, spec, model_name=cell.name, progress=False).accuracy
            result = GridResult(
                base.name, base.epochs, list(scales), list(margins), {k: v.tolist() for k, v in accuracy.items()}
            )
            write_json(grid_dir / "grid.json", vars(result))
    with atomic_write(grid_dir / "grid.md", "w") as handle:
        handle.write(result.to_markdown())
    result.plot(grid_dir / "grid.png")
    return result, grid_dir
