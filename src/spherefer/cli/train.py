"""``spherefer train``, ``grid``, ``evaluate`` and ``calibrate``: making and measuring models."""

from __future__ import annotations

from pathlib import Path

import click

from spherefer.cli.common import save_bank, with_editable_model
from spherefer.core.errors import InvalidInput
from spherefer.core.extras import require
from spherefer.runtime.loading import load_model
from spherefer.runtime.recognizer import Recognizer

__all__ = ["calibrate", "evaluate", "grid", "train"]


@click.command()
@click.option("--config", "config_path", default=None, help="YAML config file or shipped config name (default, paper).")
@click.argument("overrides", nargs=-1)
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@click.option(
    "--plots",
    is_flag=True,
    help="Afterwards write the best model's validation faces on the sphere "
    "(plots/val_sphere.png, .html) and its center geometry (plots/geometry.md, angles.png) into the run folder.",
)
def train(config_path: str | None, overrides: tuple[str, ...], no_progress: bool, plots: bool) -> None:
    """Train a model; OVERRIDES are key=value pairs such as epochs=5 model.margin=0.4.

    Re-running the same command resumes from the run's last checkpoint.
    """
    from spherefer.training.config import load_train_config
    from spherefer.training.loop import train as run_training

    config = load_train_config(config_path, overrides)
    run_dir = run_training(config, progress=not no_progress)
    click.echo(f"run folder: {run_dir} (best model: {Path(run_dir) / 'best'})")
    if plots:
        from spherefer.viz import plot_run

        for path in plot_run(run_dir, config):
            click.echo(f"wrote {path}")


def _numbers(text: str, what: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise InvalidInput(f"--{what} must be comma-separated numbers, got {text!r}") from err


@click.command()
@click.option("--config", "config_path", default=None, help="Base YAML config or shipped config name.")
@click.option("--scales", default="20,25,30,35,40", show_default=True, help="Comma-separated values of s.")
@click.option("--margins", default="0.32,0.36,0.40,0.44,0.48", show_default=True, help="Comma-separated values of m.")
@click.option(
    "--eval",
    "eval_data",
    multiple=True,
    required=True,
    help="FORMAT:PATH[:SPLIT] every cell's best model is evaluated on (repeatable).",
)
@click.option("--no-progress", is_flag=True)
@click.argument("overrides", nargs=-1)
def grid(
    config_path: str | None,
    scales: str,
    margins: str,
    eval_data: tuple[str, ...],
    no_progress: bool,
    overrides: tuple[str, ...],
) -> None:
    """Grid search over the LMCL scale s and margin m (the paper's Table 2).

    Each cell is a resumable run under OUTPUT_DIR/NAME/; writes grid.json, grid.md and grid.png there.
    """
    from spherefer.training.grid import run_grid

    result, folder = run_grid(
        config_path,
        overrides,
        _numbers(scales, "scales"),
        _numbers(margins, "margins"),
        eval_data,
        progress=not no_progress,
    )
    click.echo(result.to_markdown())
    click.echo(f"wrote {folder / 'grid.md'}, {folder / 'grid.png'}, {folder / 'grid.json'}")


@click.command()
@click.argument("model_name", metavar="MODEL")
@click.option(
    "--data", "data_specs", multiple=True, required=True, help="FORMAT:PATH[:SPLIT]; repeat for several datasets."
)
@click.option(
    "--output",
    "output_dir",
    default=None,
    help="Folder for the JSON, markdown and confusion PNG (default: print only).",
)
@click.option(
    "--bank",
    "bank_option",
    default=None,
    type=click.Path(path_type=Path),
    help="Evaluate with this center bank instead of the model's own.",
)
@click.option("--batch-size", default=512, show_default=True)
@click.option(
    "--plots",
    is_flag=True,
    help="Also write <stem>_sphere.png and <stem>_sphere.html (faces and centers on the sphere, as `spherefer "
    "visualize`) into --output.",
)
@click.option(
    "--threshold",
    type=float,
    default=None,
    help="Global threshold on the bank's unknown score for the reported unknown rate (default: the bank's).",
)
def evaluate(
    model_name: str,
    data_specs: tuple[str, ...],
    output_dir: str | None,
    bank_option: Path | None,
    batch_size: int,
    plots: bool,
    threshold: float | None,
) -> None:
    """Accuracy, per-class recall, macro-F1 and confusion of MODEL (name or folder) on --data."""
    from spherefer.data import data_spec_stem
    from spherefer.evaluation.evaluate import evaluate as run_evaluation

    if plots and output_dir is None:
        raise click.UsageError("--plots writes files: give --output too")
    if output_dir is not None:
        require("matplotlib")  # the confusion PNG: fail before evaluating, not after
    recognizer = load_model(model_name, bank=bank_option)
    if threshold is not None:
        recognizer.bank.set_threshold(None, threshold)
    for spec in data_specs:
        report = run_evaluation(recognizer, spec, model_name=model_name, batch_size=batch_size)
        click.echo(report.to_markdown())
        if output_dir is not None:
            stem = data_spec_stem(spec)
            for path in report.save(output_dir, stem=stem):
                click.echo(f"wrote {path}")
            if plots:
                from spherefer.viz import render_dataset

                for path in render_dataset(
                    recognizer,
                    spec,
                    output_dir,
                    stem=f"{stem}_sphere",
                    batch_size=batch_size,
                    title=f"{model_name} on {spec}",
                ):
                    click.echo(f"wrote {path}")


@click.command()
@with_editable_model
@click.option(
    "--data",
    "data_spec",
    required=True,
    help="Held-out labelled FORMAT:PATH[:SPLIT]; classes the bank lacks count as unknown faces.",
)
@click.option(
    "--accept", type=float, default=0.95, show_default=True, help="Share of the known faces the thresholds accept."
)
@click.option(
    "--min-faces", type=int, default=20, show_default=True, help="Faces matched to a class for its own threshold."
)
@click.option("--dry-run", is_flag=True, help="Report the thresholds without saving them.")
@click.option(
    "--force",
    is_flag=True,
    help="Store thresholds from data that is refused as degenerate (near-copies, one class, --accept under 0.5).",
)
def calibrate(
    recognizer: Recognizer, bank_file: Path, data_spec: str, accept: float, min_faces: int, dry_run: bool, force: bool
) -> None:
    """Choose the global and per-class thresholds of the bank's unknown score from held-out
    labelled faces, and store them in the bank.

    Each threshold accepts --accept of the known faces (of its class, for a class with
    --min-faces faces matched to it). Refuses (exit 2, nothing stored) data with fewer
    than 50 faces of the bank's classes, and, unless --force, data whose thresholds would
    mislead: fewer than 50 distinct faces (near-copies count once), faces of one class only,
    or --accept under 0.5. `spherefer classes reset --all` brings back the trained threshold.
    """
    from spherefer.evaluation.calibrate import calibrate as run_calibration

    result = run_calibration(recognizer, data_spec, accept=accept, min_faces=min_faces, apply=not dry_run, force=force)
    click.echo(result.to_markdown())
    if dry_run:
        click.echo("dry run: nothing stored")
    if not dry_run:
        save_bank(recognizer, bank_file, "stored the thresholds")
