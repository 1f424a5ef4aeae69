"""``spherefer classes ...``: list, enrol, update, compose, remove, rename, reset, export and import classes.

Enrolment and updates follow :mod:`spherefer.enrol`, the rules the HTTP service uses too.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..centers import CenterBank
from ..enrol import MIN_IMAGES, enrol_class, enrolment_files, update_class
from ..recognizer import Recognizer, load_editable_model
from .common import BANK_OPTION, MODEL_OPTION, save_bank, with_editable_model

__all__ = ["classes"]


@click.group()
def classes() -> None:
    """List, enrol, update, compose, remove, rename, reset, export and import expression classes.

    Changes are saved atomically to the editable bank (see --bank); the shipped model's
    files are never changed, and trained classes can always be reset.
    """


@classes.command("list")
@with_editable_model
def classes_list(recognizer: Recognizer, bank_file: Path) -> None:
    """Classes with origin, sample count, updates and own threshold."""
    bank = recognizer.bank
    click.echo(f"{'class':<20} {'origin':<9} {'samples':>7} {'updates':>7}  threshold")
    for row in bank.summary():
        threshold = f"{row['threshold']:.3f}" if row["threshold"] is not None else f"{bank.threshold:.3f} (global)"
        click.echo(f"{row['name']:<20} {row['origin']:<9} {row['count']:>7} {row['updates']:>7}  {threshold}")


@classes.command("add")
@click.argument("name")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@with_editable_model
@click.option("--shots", type=int, default=None, help="Enrol from this many images drawn at random from INPUTS.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the --shots draw.")
@click.option("--min-images", type=int, default=MIN_IMAGES, show_default=True)
@click.option("--threshold", type=float, default=None, help="The class's own threshold (default: estimated from the samples' spread).")
def classes_add(name: str, inputs: tuple[Path, ...], recognizer: Recognizer, bank_file: Path, shots: int | None, seed: int, min_images: int, threshold: float | None) -> None:
    """Enrol a new expression NAME from face crops (files or folders), without training."""
    recognizer.bank.check_new_name(name)  # before any image is read
    files = enrolment_files(inputs, shots, seed, min_images, hint="lower --min-images to enrol from fewer")
    enrolled = enrol_class(recognizer.bank, name, recognizer.embed(files), threshold=threshold)
    own = recognizer.bank.threshold if enrolled.threshold is None else enrolled.threshold
    save_bank(recognizer, bank_file, f"enrolled {name!r} from {enrolled.count} images, threshold {own:.3f}")


@classes.command("update")
@click.argument("name")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@with_editable_model
@click.option("--momentum", type=float, default=0.9, show_default=True, help="Weight kept by the old center at each new instance.")
def classes_update(name: str, inputs: tuple[Path, ...], recognizer: Recognizer, bank_file: Path, momentum: float) -> None:
    """Move the center of NAME towards new instances (moving average on the sphere)."""
    recognizer.bank.index(name)  # an unknown class fails before any image is read
    files = enrolment_files(inputs, minimum=1)
    moved = update_class(recognizer.bank, name, recognizer.embed(files), momentum=momentum)
    save_bank(recognizer, bank_file, f"updated {name!r} with {len(files)} images; center moved {moved:.2f} degrees")


@classes.command("compose")
@click.argument("name")
@click.argument("components", nargs=-1, required=True)
@with_editable_model
@click.option("--weights", default=None, help="Comma-separated positive weights, one per component (default equal).")
def classes_compose(name: str, components: tuple[str, ...], recognizer: Recognizer, bank_file: Path, weights: str | None) -> None:
    """Add NAME as the normalised weighted sum of existing classes (no samples needed)."""
    values = None if weights is None else [float(w) for w in weights.split(",")]
    recognizer.bank.compose(name, list(components), values)
    save_bank(recognizer, bank_file, f"composed {name!r} from {', '.join(components)}")


@classes.command("remove")
@click.argument("name")
@with_editable_model
def classes_remove(name: str, recognizer: Recognizer, bank_file: Path) -> None:
    """Remove class NAME (a trained class can be brought back with reset)."""
    recognizer.bank.remove(name)
    save_bank(recognizer, bank_file, f"removed {name!r}")


@classes.command("rename")
@click.argument("old")
@click.argument("new")
@with_editable_model
def classes_rename(old: str, new: str, recognizer: Recognizer, bank_file: Path) -> None:
    """Rename class OLD to NEW."""
    recognizer.bank.rename(old, new)
    save_bank(recognizer, bank_file, f"renamed {old!r} to {new!r}")


@classes.command("reset")
@click.argument("names", nargs=-1)
@MODEL_OPTION
@BANK_OPTION
@click.option("--all", "reset_all", is_flag=True, help="Restore every trained class and center, dropping enrolled classes and per-class thresholds.")
def classes_reset(names: tuple[str, ...], model_name: str, bank_option: Path | None, reset_all: bool) -> None:
    """Restore trained classes NAMES to their trained centers (or everything with --all)."""
    if not names and not reset_all:
        raise ValueError("name the classes to reset, or pass --all")
    recognizer, bank_file = load_editable_model(model_name, bank_option)
    if reset_all:
        recognizer.bank.restore_trained()
    for name in names:
        recognizer.bank.reset(name)
    save_bank(recognizer, bank_file, "restored the trained classes" if reset_all else f"reset {', '.join(names)}")


@classes.command("export")
@click.argument("destination", type=click.Path(path_type=Path))
@with_editable_model
def classes_export(destination: Path, recognizer: Recognizer, bank_file: Path) -> None:
    """Write the current center bank to DESTINATION (a .safetensors file)."""
    recognizer.bank.save(destination)
    click.echo(f"exported {len(recognizer.bank)} classes to {destination}")


@classes.command("import")
@click.argument("source", type=click.Path(path_type=Path))
@with_editable_model
def classes_import(source: Path, recognizer: Recognizer, bank_file: Path) -> None:
    """Replace the editable bank by SOURCE (checked against the model first)."""
    recognizer = recognizer.with_bank(CenterBank.load(source))  # refuses a bank of another embedding size
    save_bank(recognizer, bank_file, f"imported {len(recognizer.bank)} classes from {source}")
