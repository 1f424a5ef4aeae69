"""``spherefer visualize`` and ``spherefer geometry``: faces and centers on the sphere, angles between centers."""

from __future__ import annotations

from pathlib import Path

import click

from spherefer.cli.common import BANK_OPTION, MODEL_OPTION, name_list, with_editable_model
from spherefer.core.errors import InvalidInput
from spherefer.core.extras import require
from spherefer.runtime.loading import load_editable_model
from spherefer.runtime.recognizer import Recognizer

__all__ = ["visualize", "geometry"]


@click.command()
@with_editable_model
@click.option(
    "--data",
    "data_spec",
    required=True,
    help="FORMAT:PATH[:SPLIT] whose faces are drawn (classes the bank lacks are left out).",
)
@click.option(
    "--classes",
    "class_options",
    multiple=True,
    help="Only these classes (comma-separated or repeated; default: every class of the bank).",
)
@click.option(
    "--max-points",
    type=int,
    default=2000,
    show_default=True,
    help="Draw at most this many faces, a random subset (0: all).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the --max-points draw.")
@click.option(
    "--projection",
    type=click.Choice(["joint", "between", "linear"]),
    default="joint",
    show_default=True,
    help="How embeddings larger than 3-d reach the sphere: uncentered PCA of the faces and centers together "
    "(joint), or of the centers alone around their mean (between, LDA-like) or through the origin (linear).",
)
@click.option(
    "--output",
    "output_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for sphere.png and sphere.html.",
)
@click.option("--batch-size", default=512, show_default=True)
def visualize(
    recognizer: Recognizer,
    bank_file: Path,
    data_spec: str,
    class_options: tuple[str, ...],
    max_points: int,
    seed: int,
    projection: str,
    output_dir: Path,
    batch_size: int,
) -> None:
    """Faces and class centers on the unit sphere: a PNG and an interactive offline HTML page.

    Each face's normalised embedding is a dot coloured by class; centers are labelled
    markers (circle: trained, star: enrolled, diamond: composed). Embeddings larger than
    3-d are projected (see --projection) and renormalised; the method, its explained
    variance and how often a face's pictured nearest center is its true one are written
    on both outputs.
    """
    from spherefer.viz import check_class_names, render_dataset

    classes = check_class_names(recognizer.bank, name_list(class_options), argument="--classes")
    if max_points < 0:
        raise InvalidInput(f"--max-points must be 0 (all) or positive, got {max_points}")
    paths = render_dataset(
        recognizer,
        data_spec,
        output_dir,
        stem="sphere",
        classes=classes,
        max_points=max_points or None,
        seed=seed,
        method=projection,
        batch_size=batch_size,
    )
    for path in paths:
        click.echo(f"wrote {path}")


def _compound_option(values: tuple[str, ...]) -> dict[str, list[str]]:
    """--compound NAME=A,B (or NAME=A+B) options as {NAME: [A, B]}."""
    compounds = {}
    for value in values:
        name, _, parts = value.rpartition("=")
        components = [part.strip() for part in parts.replace("+", ",").split(",") if part.strip()]
        if not name or len(components) != 2:
            raise InvalidInput(f"--compound takes NAME=A,B (two classes), got {value!r}")
        compounds[name] = components
    return compounds


@click.command()
@MODEL_OPTION
@BANK_OPTION
@click.option(
    "--output",
    "output_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for geometry.md, geometry.json and angles.png.",
)
@click.option(
    "--data",
    "data_spec",
    default=None,
    help="FORMAT:PATH[:SPLIT] whose faces give each class's spread around its center.",
)
@click.option(
    "--compound",
    "compounds",
    multiple=True,
    metavar="NAME=A,B",
    help="Measure class NAME against the arc between classes A and B (classes named A+B are measured anyway).",
)
@click.option("--batch-size", default=512, show_default=True)
def geometry(
    model_name: str,
    bank_option: Path | None,
    output_dir: Path,
    data_spec: str | None,
    compounds: tuple[str, ...],
    batch_size: int,
) -> None:
    """Angles between class centers, spread of each class's faces, and where enrolled and compound classes sit.

    All angles are measured in the full embedding space. For a class named A+B (or given
    with --compound) it reports the angle of its center to the great-circle arc from A to
    B and its position along that arc (0 at A, 1 at B).
    """
    require("matplotlib")  # angles.png: fail before writing anything
    from spherefer.viz import center_geometry, geometry_markdown, load_faces, write_geometry

    recognizer, _ = load_editable_model(model_name, bank_option)
    embeddings = labels = None
    title = f"Center geometry of {model_name}"
    if data_spec is not None:
        faces = load_faces(recognizer, data_spec, batch_size=batch_size)
        embeddings, labels = faces.embeddings, faces.labels
        title += f" (spread on {data_spec})"
    report = center_geometry(recognizer.bank, embeddings, labels, _compound_option(compounds))
    paths = write_geometry(report, output_dir, title=title)
    click.echo(geometry_markdown(report, title))
    for path in paths:
        click.echo(f"wrote {path}")
