"""The ``spherefer`` command line."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from . import __version__
from .recognizer import load_model, resolve_model_path, shipped_models


class _CleanErrors(click.Group):
    """Turn the library's errors about bad input into one-line messages instead of tracebacks."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (ValueError, FileNotFoundError, KeyError) as err:
            message = err.args[0] if isinstance(err, KeyError) and err.args else err
            click.echo(f"error: {message}", err=True)
            sys.exit(2)


@click.group(cls=_CleanErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="spherefer")
def main() -> None:
    """Open-vocabulary facial expression recognition on the hypersphere (LMCL class centers)."""


@main.command()
@click.option("--model", "model_name", default="default", show_default=True, help="Shipped model name or model folder.")
def info(model_name: str) -> None:
    """Print the version, the model card and the class list of a model."""
    recognizer = load_model(model_name)
    folder = resolve_model_path(model_name)
    cfg = recognizer.config
    click.echo(f"spherefer {__version__}")
    click.echo(f"model: {model_name} ({folder})")
    click.echo("status: " + ("trained" if recognizer.trained else "UNTRAINED - random weights, predictions are meaningless"))
    click.echo(
        f"network: {cfg.arch}, input {cfg.input_size}x{cfg.input_size}x{cfg.in_channels}, "
        f"{cfg.embedding_size}-d embedding, head {cfg.head} (s={cfg.scale}, m={cfg.margin})"
    )
    bank = recognizer.bank
    click.echo(f"classes ({len(bank)}), unknown below cosine {bank.threshold}:")
    for row in bank.summary():
        threshold = "" if row["threshold"] is None else f", threshold {row['threshold']:.3f}"
        click.echo(f"  {row['name']:<16} {row['origin']}{threshold}")
    card = folder / "MODEL_CARD.md"
    if card.is_file():
        click.echo("")
        click.echo(card.read_text().rstrip())
    others = sorted(set(shipped_models()) - {model_name})
    if others:
        click.echo(f"\nother shipped models: {', '.join(others)}")


@main.command()
@click.option("--config", "config_path", default=None, help="YAML config file or shipped config name (default, paper).")
@click.argument("overrides", nargs=-1)
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def train(config_path: str | None, overrides: tuple[str, ...], no_progress: bool) -> None:
    """Train a model; OVERRIDES are key=value pairs such as epochs=5 model.margin=0.4.

    Re-running the same command resumes from the run's last checkpoint.
    """
    from .config import load_train_config
    from .train import train as run_training

    config = load_train_config(config_path, overrides)
    run_dir = run_training(config, progress=not no_progress)
    click.echo(f"run folder: {run_dir} (best model: {Path(run_dir) / 'best'})")


@main.command()
@click.option("--config", "config_path", default=None, help="Base YAML config or shipped config name.")
@click.option("--scales", default="20,25,30,35,40", show_default=True, help="Comma-separated values of s.")
@click.option("--margins", default="0.32,0.36,0.40,0.44,0.48", show_default=True, help="Comma-separated values of m.")
@click.option("--eval", "eval_data", required=True, help="FORMAT:PATH[:SPLIT] every cell's best model is evaluated on.")
@click.option("--no-progress", is_flag=True)
@click.argument("overrides", nargs=-1)
def grid(config_path: str | None, scales: str, margins: str, eval_data: str, no_progress: bool, overrides: tuple[str, ...]) -> None:
    """Grid search over the LMCL scale s and margin m (the paper's Table 2).

    Each cell is a resumable run under OUTPUT_DIR/NAME/; writes grid.json, grid.md and grid.png there.
    """
    from .grid import run_grid

    def numbers(text: str, what: str) -> list[float]:
        try:
            return [float(v) for v in text.split(",") if v.strip()]
        except ValueError as err:
            raise ValueError(f"--{what} must be comma-separated numbers, got {text!r}") from err

    result, folder = run_grid(config_path, overrides, numbers(scales, "scales"), numbers(margins, "margins"), eval_data, progress=not no_progress)
    click.echo(result.to_markdown())
    click.echo(f"wrote {folder / 'grid.md'}, {folder / 'grid.png'}, {folder / 'grid.json'}")


@main.command()
def datasets() -> None:
    """List the --data formats (FORMAT:PATH[:SPLIT]) and their splits."""
    from .data import DATASET_FORMATS

    for name, fmt in DATASET_FORMATS.items():
        splits = ", ".join(f"{s}*" if s == fmt.default_split else s for s in fmt.splits) or "(none)"
        click.echo(f"{name:<10} splits: {splits}")
        click.echo(f"{'':<10} {fmt.description}")
    click.echo("(* = default split when the spec names none)")


@main.command()
@click.argument("model_name", metavar="MODEL")
@click.option("--data", "data_specs", multiple=True, required=True, help="FORMAT:PATH[:SPLIT]; repeat for several datasets.")
@click.option("--output", "output_dir", default=None, help="Folder for the JSON, markdown and confusion PNG (default: print only).")
@click.option("--batch-size", default=512, show_default=True)
def evaluate(model_name: str, data_specs: tuple[str, ...], output_dir: str | None, batch_size: int) -> None:
    """Accuracy, per-class recall, macro-F1 and confusion of MODEL (name or folder) on --data."""
    from .evaluate import evaluate as run_evaluation

    recognizer = load_model(model_name)
    for spec in data_specs:
        report = run_evaluation(recognizer, spec, model_name=model_name, batch_size=batch_size)
        click.echo(report.to_markdown())
        if output_dir is not None:
            stem = spec.split(":")[0] + ("_" + spec.split(":")[2] if spec.count(":") == 2 else "")
            for path in report.save(output_dir, stem=stem):
                click.echo(f"wrote {path}")


@main.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--model", "model_name", default="default", show_default=True, help="Shipped model name or model folder.")
@click.option("--threshold", type=float, default=None, help="Cosine below which a face is unknown (default: the bank's).")
@click.option("--format", "output_format", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
def predict(images: tuple[Path, ...], model_name: str, threshold: float | None, output_format: str) -> None:
    """Classify aligned face crops (files or folders of images); one line per image.

    Unreadable files are reported on stderr and skipped.
    """
    import csv
    import json

    recognizer = load_model(model_name)
    files = [f for path in images for f in (sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path])]
    writer = csv.writer(sys.stdout) if output_format == "csv" else None
    if writer:
        writer.writerow(["source", "label", "cosine", *recognizer.bank.names])
    failures = 0
    for path in files:
        try:
            [prediction] = recognizer.predict(path, threshold=threshold)
        except (ValueError, FileNotFoundError) as err:
            failures += 1
            click.echo(f"skipped {path}: {err}", err=True)
            continue
        if writer:
            writer.writerow([str(path), prediction.label, f"{prediction.score:.4f}", *(f"{p:.4f}" for p in prediction.probabilities.values())])
        else:
            record = {"source": str(path), "label": prediction.label, "cosine": round(prediction.score, 4),
                      "probabilities": {k: round(v, 4) for k, v in prediction.probabilities.items()}}
            click.echo(json.dumps(record))
    if failures:
        click.echo(f"{failures} of {len(files)} files could not be read", err=True)


if __name__ == "__main__":
    main()
