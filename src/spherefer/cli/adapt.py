"""``spherefer adapt``: move a bank's centers to a new camera or population from unlabelled faces
(:mod:`spherefer.bank.adapt`)."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from spherefer.bank.adapt import MIN_ADAPT_FACES, adapt_bank
from spherefer.cli.classes import ALIGNED_OPTION
from spherefer.cli.common import DETECTOR_OPTION, save_bank, with_editable_model
from spherefer.core.images import collect_image_files
from spherefer.data import open_dataset
from spherefer.evaluation.evaluate import embed_arrays
from spherefer.face import get_detector
from spherefer.runtime.recognizer import Recognizer
from spherefer.runtime.samples import enrolment_embeddings


@click.command()
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--data",
    "data_spec",
    default=None,
    help="Also the faces of this FORMAT:PATH[:SPLIT] dataset (its labels are not used).",
)
@ALIGNED_OPTION
@DETECTOR_OPTION
@click.option("--dry-run", is_flag=True, help="Report what adapting would do without saving it.")
@with_editable_model
def adapt(
    recognizer: Recognizer,
    bank_file: Path,
    inputs: tuple[Path, ...],
    data_spec: str | None,
    aligned: bool,
    detector: str,
    dry_run: bool,
) -> None:
    """Adapt the bank to unlabelled faces of your setting (photos, folders, or --data).

    Each photo gives its largest usable face (--aligned: each image is a face crop). The
    centers move towards the new faces' clusters as far as the faces differ from the
    training faces: faces like them move nothing, and the move grows with the evidence (on
    CK+48: 40 faces move nothing, 200 a third of the way, all 927 four fifths). Needs at
    least 30 faces the bank accepts (not unknown); `spherefer classes reset --all` undoes
    it (with enrolments).
    """
    parts = []
    if inputs:
        files = collect_image_files(inputs)
        parts.append(
            enrolment_embeddings(
                recognizer,
                files,
                aligned,
                get_detector(detector),
                on_skip=lambda path, reason: click.echo(f"skipped {path}: {reason}", err=True),
            )
        )
    if data_spec is not None:
        images, _ = open_dataset(data_spec).load_arrays(recognizer.config.input_size)
        parts.append(embed_arrays(recognizer, images))
    if not parts:
        raise click.UsageError(f"give photos, folders or --data: at least {MIN_ADAPT_FACES} faces of your setting")
    report = adapt_bank(recognizer.bank, recognizer.density, np.concatenate(parts))
    click.echo(report.to_markdown())
    if dry_run:
        click.echo("dry run: nothing stored")
    else:
        save_bank(recognizer, bank_file, f"adapted the centers to {report.faces} faces")
