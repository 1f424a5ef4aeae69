"""``spherefer export``: the embedding network as ONNX, with its center bank."""

from __future__ import annotations

from pathlib import Path

import click

from spherefer.cli.common import with_editable_model
from spherefer.core.labels import counted
from spherefer.runtime.recognizer import Recognizer

__all__ = ["export"]


@click.command()
@click.option(
    "--onnx",
    "onnx_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the embedding network to this .onnx file (and its center bank to <name>.bank.safetensors).",
)
@with_editable_model
def export(onnx_path: Path, recognizer: Recognizer, bank_file: Path) -> None:
    """Write the embedding network as ONNX, with the center bank next to it.

    The graph is the one the model runs: the int8 graph where the model ships one (the
    shipped default does), else fp32; `load_model(..., precision="fp32")` and
    `spherefer.runtime.export.export_onnx` give the other from Python.

    The graph maps the normalised input, float32 (N, C, S, S) with any batch size N, to
    unit embeddings (N, D); the model config (input size, channels, mean, std) is stored
    in the file's metadata. Classify by cosine against the bank's centers, or embed
    with it through `Recognizer.use_onnx(path)`. The written file is checked against
    the model on a random batch.
    """
    from spherefer.runtime.export import export_onnx

    result = export_onnx(recognizer, onnx_path)
    cfg = recognizer.config
    click.echo(
        f"wrote {result.path} (input N x {cfg.in_channels} x {cfg.input_size} x {cfg.input_size}, output N x "
        f"{cfg.embedding_size})"
    )
    click.echo(f"wrote {result.bank_path} ({counted(len(recognizer.bank), 'class', 'classes')})")
    click.echo(f"max |written file - model| on a random batch: {result.max_abs_diff:.2e}")
