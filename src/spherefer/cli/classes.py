"""``spherefer classes ...``: list, enrol, update, compose, remove, rename, reset, history, undo, export and
import classes.

Enrolment and updates follow :mod:`spherefer.bank.enrol`, the rules the HTTP service uses too:
photos are searched for faces (the largest usable face of each is enrolled), ``--aligned``
face crops are used as given, and unreadable files or photos without a usable face are
reported on stderr and skipped. Every editing command holds the bank file's lock from
loading the bank to saving it, so edits run at the same time are all kept.
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from spherefer.bank.centers import CenterBank
from spherefer.bank.enrol import (
    MIN_IMAGES,
    check_image_count,
    enrol_class,
    enrolment_files,
    old_center_weight,
    update_class,
)
from spherefer.bank.harm import HARM_LIMIT
from spherefer.bank.history import history, undo
from spherefer.cli.common import BANK_OPTION, DETECTOR_OPTION, MODEL_OPTION, save_bank, with_editable_model
from spherefer.core.errors import InvalidInput
from spherefer.core.labels import counted
from spherefer.core.storage import file_lock
from spherefer.face import get_detector
from spherefer.runtime.loading import editing_model
from spherefer.runtime.model_paths import editable_bank_path
from spherefer.runtime.recognizer import Recognizer
from spherefer.runtime.samples import enrolment_embeddings

ALIGNED_OPTION = click.option(
    "--aligned", is_flag=True, help="INPUTS are aligned face crops: use each whole image, no face detection."
)

__all__ = ["classes"]


@click.group()
def classes() -> None:
    """List, enrol, update, compose, remove, rename, reset, export and import expression classes.

    Changes are saved atomically to the editable bank (see --bank), which every front end
    uses (predict, evaluate, serve, spherefer.load_model); each change is a version that
    `classes history` lists and `classes undo` takes back. The shipped model's files are
    never changed, and trained classes can always be reset.
    """


@classes.command("list")
@with_editable_model(lock=False)
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
@click.option(
    "--threshold",
    type=float,
    default=None,
    help="The class's own threshold (default: the global one; on a bank with the paper's cosine rule, estimated from "
    "the samples' spread).",
)
@click.option(
    "--accept-harm",
    is_flag=True,
    help=f"Enrol even when the new class would take more than {HARM_LIMIT:.0%} of an existing class's faces.",
)
@ALIGNED_OPTION
@DETECTOR_OPTION
def classes_add(
    name: str,
    inputs: tuple[Path, ...],
    recognizer: Recognizer,
    bank_file: Path,
    shots: int | None,
    seed: int,
    min_images: int,
    threshold: float | None,
    accept_harm: bool,
    aligned: bool,
    detector: str,
) -> None:
    """Enrol a new expression NAME from photos (files or folders), without training.

    Each photo's largest usable face is found, aligned and enrolled, as `spherefer
    predict` finds faces; with --aligned, INPUTS are face crops used as given.
    Unreadable files and photos without a usable face are reported and skipped.

    Before the class is added, the share of each existing class's faces it would take is
    estimated from the model (no training data needed) and printed; above the limit the
    enrolment is refused unless --accept-harm is given.
    """
    recognizer.bank.check_new_name(name)  # before any image is read
    files = enrolment_files(inputs, shots, seed, min_images, hint="lower --min-images to enrol from fewer")
    x, skipped = _samples(recognizer, files, aligned, detector)
    check_image_count(
        len(x), min_images, hint=f"{skipped} skipped; lower --min-images to enrol from fewer" if skipped else None
    )
    enrolled = enrol_class(
        recognizer.bank, name, x, threshold=threshold, density=recognizer.density, accept_harm=accept_harm
    )
    own = recognizer.bank.threshold if enrolled.threshold is None else enrolled.threshold
    harm = "" if enrolled.harm is None else f"; it {enrolled.harm.summary()}"
    harm += " (accepted)" if enrolled.harm is not None and enrolled.harm.harmful else ""
    save_bank(
        recognizer, bank_file, f"enrolled {name!r} from {counted(enrolled.count, 'image')}, threshold {own:.3f}{harm}"
    )


@classes.command("update")
@click.argument("name")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@with_editable_model
@click.option(
    "--momentum",
    type=float,
    default=0.9,
    show_default=True,
    help="Weight the old center keeps in this update; the new images' mean gets the rest (once, however many images).",
)
@ALIGNED_OPTION
@DETECTOR_OPTION
def classes_update(
    name: str,
    inputs: tuple[Path, ...],
    recognizer: Recognizer,
    bank_file: Path,
    momentum: float,
    aligned: bool,
    detector: str,
) -> None:
    """Move the center of NAME towards new instances: one moving-average step on the sphere per call.

    The normalised mean of the new images' embeddings (photos: their largest usable
    face; --aligned: crops as given) moves the center once:
    center <- normalize(momentum * center + (1 - momentum) * mean), however many images
    are given. Prints the old center's weight and the angle the center moved.
    """
    recognizer.bank.index(name)  # an unknown class fails before any image is read
    files = enrolment_files(inputs, minimum=1)
    x, skipped = _samples(recognizer, files, aligned, detector)
    if len(x) == 0:
        raise InvalidInput(f"updating {name!r} needs at least one usable image; all {len(files)} were skipped")
    moved = update_class(recognizer.bank, name, x, momentum=momentum)
    old = old_center_weight(momentum, len(x))
    save_bank(
        recognizer,
        bank_file,
        f"updated {name!r} with {counted(len(x), 'image')} (old center weight {old:.2f}, new images' mean "
        f"{1 - old:.2f}); "
        f"center moved {moved:.2f} degrees",
    )


def _samples(recognizer: Recognizer, files: list[Path], aligned: bool, detector: str) -> tuple[np.ndarray, int]:
    """Enrolment samples of ``files`` (:func:`spherefer.bank.enrol.enrolment_embeddings`), each skipped file reported on
    stderr; and how many were skipped."""
    if not aligned:
        get_detector(detector)  # fail now, once, if the detector's files are missing
    skipped: list[Path] = []

    def report(path: Path, reason: str) -> None:
        skipped.append(path)
        click.echo(f"skipped {path}: {reason}", err=True)

    return enrolment_embeddings(recognizer, files, aligned=aligned, detector=detector, on_skip=report), len(skipped)


@classes.command("compose")
@click.argument("name")
@click.argument("components", nargs=-1, required=True)
@with_editable_model
@click.option("--weights", default=None, help="Comma-separated positive weights, one per component (default equal).")
def classes_compose(
    name: str, components: tuple[str, ...], recognizer: Recognizer, bank_file: Path, weights: str | None
) -> None:
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
@click.option(
    "--all",
    "reset_all",
    is_flag=True,
    help="Restore every trained class and center and the trained global threshold, dropping enrolled classes and "
    "per-class thresholds.",
)
def classes_reset(names: tuple[str, ...], model_name: str, bank_option: Path | None, reset_all: bool) -> None:
    """Restore trained classes NAMES to their trained centers (or, with --all, the trained
    classes, centers and global threshold, undoing enrolments, updates, adaptation and calibration)."""
    if not names and not reset_all:
        raise InvalidInput("name the classes to reset, or pass --all")
    with editing_model(model_name, bank_option) as (recognizer, bank_file):
        if reset_all:
            recognizer.bank.restore_trained()
        for name in names:
            recognizer.bank.reset(name)
        done = (
            f"restored the trained classes and threshold {recognizer.bank.threshold:.3f}"
            if reset_all
            else f"reset {', '.join(names)}"
        )
        save_bank(recognizer, bank_file, done)


@classes.command("history")
@MODEL_OPTION
@BANK_OPTION
def classes_history(model_name: str, bank_option: Path | None) -> None:
    """The edits saved to the editable bank, oldest first (version, time, what changed; undone ones marked)."""
    bank_file = bank_option if bank_option is not None else editable_bank_path(model_name)
    versions = history(bank_file)
    if not versions:
        click.echo(
            f"no edits recorded for {bank_file}: the model's own classes are in use"
            if not bank_file.is_file()
            else f"no edits recorded for {bank_file}"
        )
    for version in versions:
        click.echo(f"{version.version:>4}  {version.when}  {version.action}" + (" (undone)" if version.undone else ""))


@classes.command("undo")
@MODEL_OPTION
@BANK_OPTION
def classes_undo(model_name: str, bank_option: Path | None) -> None:
    """Take back the last edit saved to the editable bank (repeat to go further back)."""
    bank_file = bank_option if bank_option is not None else editable_bank_path(model_name)
    with file_lock(bank_file):
        version = undo(bank_file)
    now = "the model's own classes" if not bank_file.is_file() else str(bank_file)
    click.echo(f"undid version {version.version} ({version.action}); now using {now}")


@classes.command("export")
@click.argument("destination", type=click.Path(path_type=Path))
@with_editable_model(lock=False)
def classes_export(destination: Path, recognizer: Recognizer, bank_file: Path) -> None:
    """Write the current center bank to DESTINATION (a .safetensors file)."""
    recognizer.bank.save(destination)
    click.echo(f"exported {counted(len(recognizer.bank), 'class', 'classes')} to {destination}")


@classes.command("import")
@click.argument("source", type=click.Path(path_type=Path))
@with_editable_model
def classes_import(source: Path, recognizer: Recognizer, bank_file: Path) -> None:
    """Replace the editable bank by SOURCE (checked against the model first)."""
    recognizer = recognizer.with_bank(CenterBank.load(source))  # refuses a bank of another embedding size
    save_bank(recognizer, bank_file, f"imported {counted(len(recognizer.bank), 'class', 'classes')} from {source}")
