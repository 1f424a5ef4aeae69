"""What the commands share: the --model and --bank options, saving an edited bank, name lists."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from spherefer.bank.history import save_with_history
from spherefer.face import DEFAULT_DETECTOR, DETECTORS
from spherefer.runtime.loading import editing_model, load_editable_model
from spherefer.runtime.recognizer import Recognizer

__all__ = ["MODEL_OPTION", "BANK_OPTION", "DETECTOR_OPTION", "with_editable_model", "save_bank", "name_list"]

MODEL_OPTION = click.option(
    "--model", "model_name", default="default", show_default=True, help="Shipped model name or model folder."
)
BANK_OPTION = click.option(
    "--bank",
    "bank_option",
    default=None,
    type=click.Path(path_type=Path),
    help="Center-bank file to use and edit (default: ~/.spherefer/banks/<model>.safetensors for shipped models, the "
    "folder's bank otherwise).",
)

DETECTOR_OPTION = click.option(
    "--detector",
    type=click.Choice(sorted(DETECTORS)),
    default=DEFAULT_DETECTOR,
    show_default=True,
    help="Face detector for photos, videos and the webcam: yunet finds faces from about 20 px up (measured in "
    "docs/RESULTS.md §8); "
    "blazeface is the fastest, for faces that fill a good part of the picture; blazeface_full is BlazeFace's "
    "full-range model; "
    "haar is OpenCV's cascade. Not used with --aligned.",
)


def with_editable_model(command: Callable[..., Any] | None = None, *, lock: bool = True) -> Any:
    """The --model and --bank options; ``command`` is called with the model loaded with its
    editable bank (``recognizer=``) and the path edits are saved to (``bank_file=``) instead.

    With ``lock`` (default) the bank file stays locked from loading the bank until the
    command returns (:func:`~spherefer.runtime.loading.editing_model`), so that commands
    editing one bank at the same time run one after the other and lose no edit;
    ``@with_editable_model(lock=False)`` for commands that only read the bank. Put it
    where the two options should stand among the command's other options.
    """

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def load(*args: Any, model_name: str, bank_option: Path | None, **kwargs: Any) -> Any:
            if not lock:
                recognizer, bank_file = load_editable_model(model_name, bank_option)
                return command(*args, recognizer=recognizer, bank_file=bank_file, **kwargs)
            with editing_model(model_name, bank_option) as (recognizer, bank_file):
                return command(*args, recognizer=recognizer, bank_file=bank_file, **kwargs)

        return MODEL_OPTION(BANK_OPTION(load))

    return decorate if command is None else decorate(command)


def save_bank(recognizer: Recognizer, bank_file: Path, message: str) -> None:
    """Save the recognizer's bank to ``bank_file`` as a new version of its history (``classes history``,
    ``classes undo``) and say so."""
    version = save_with_history(bank_file, recognizer.bank.to_bytes(), message)
    click.echo(f"{message} (saved {bank_file}, version {version.version})")


def name_list(values: tuple[str, ...]) -> list[str] | None:
    """Names given as repeated options and/or comma-separated lists (None: none given)."""
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    return names or None
