"""The ``spherefer`` command line, thin over the library.

Each command parses its options, calls library functions and formats what they
return; one module per command group: :mod:`~.info` (info, datasets), :mod:`~.predict`
(predict), :mod:`~.export` (export), :mod:`~.train` (train, grid, evaluate, calibrate),
:mod:`~.viz` (visualize, geometry), :mod:`~.serve` (serve) and :mod:`~.classes`
(the ``classes`` group); :mod:`~.common` holds the options they share.
"""

from __future__ import annotations

import sys

import click

from spherefer import __version__
from spherefer.cli import adapt, classes, export, info, predict, serve, train, viz
from spherefer.core.errors import SphereferError, error_message, exit_code
from spherefer.core.extras import install_hint
from spherefer.face import DetectorUnavailable

__all__ = ["main"]


class CleanErrors(click.Group):
    """Turn the library's errors about bad input into one-line messages instead of tracebacks."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (SphereferError, ValueError, FileNotFoundError, KeyError, DetectorUnavailable) as err:
            click.echo(f"error: {error_message(err)}", err=True)  # the kinds and their codes: spherefer.core.errors
            sys.exit(exit_code(err))
        except ImportError as err:
            hint = install_hint(err)
            if hint is None:
                raise
            click.echo(
                f"error: spherefer {ctx.invoked_subcommand or ''}: {hint}".replace("spherefer : ", "spherefer: "),
                err=True,
            )
            sys.exit(2)


@click.group(cls=CleanErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="spherefer")
def main() -> None:
    """Open-vocabulary facial expression recognition on the hypersphere (LMCL class centers)."""


# The command modules keep their names here (``spherefer.cli.predict`` is the module, not the command).
for command in (
    info.info,
    info.datasets,
    predict.predict,
    export.export,
    train.train,
    train.grid,
    train.evaluate,
    train.calibrate,
    viz.visualize,
    viz.geometry,
    serve.serve,
    classes.classes,
    adapt.adapt,
):
    main.add_command(command)
