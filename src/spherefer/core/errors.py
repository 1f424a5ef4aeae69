"""What can go wrong, by kind: one hierarchy that the library raises, mapped once to the command line's
exit codes and once to the service's HTTP statuses.

Every error is a :class:`SphereferError` of one kind, and also the builtin exception a caller would
expect of that kind (an invalid input is a ``ValueError``, a missing name a ``KeyError``), so code that
catches the builtins keeps working. Messages name the problem in words, never an exception class.

=====================  ======================================================  =========  ====
kind                   when                                                    HTTP       exit
=====================  ======================================================  =========  ====
:class:`InvalidInput`  a value, file, image or config that cannot be used      400        2
:class:`NotFound`      a class, profile, model or file that does not exist     404        2
:class:`Conflict`      the request clashes with what is there (a taken name)   409        2
:class:`TooLarge`      an input over a size limit (pixels, bytes, images)      413        2
:class:`Unusable`      well-formed input that cannot serve (no face, harmful)  422        2
=====================  ======================================================  =========  ====
"""

from __future__ import annotations

__all__ = [
    "Conflict",
    "InvalidInput",
    "NotFound",
    "SphereferError",
    "TooLarge",
    "Unusable",
    "error_message",
    "exit_code",
    "http_status",
]


class SphereferError(Exception):
    """Any error spherefer raises on purpose; its subclasses say which kind."""

    http_status = 400
    exit_code = 2

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidInput(SphereferError, ValueError):
    """A value, file, image or configuration that cannot be used as it is."""


class NotFound(SphereferError, KeyError):
    """A class, profile, model or file that does not exist."""

    http_status = 404


class Conflict(SphereferError, ValueError):
    """The request clashes with what is there: a name already taken, nothing left to undo."""

    http_status = 409


class TooLarge(SphereferError, ValueError):
    """An input over one of spherefer's size limits."""

    http_status = 413


class Unusable(SphereferError, ValueError):
    """Well-formed input that cannot serve its purpose: a photo without a usable face, an enrolment that
    would take over another class."""

    http_status = 422


def http_status(err: BaseException) -> int:
    """The HTTP status of an error the service did not expect to raise itself: its kind's, 404 for a missing
    file, 400 for any other ``ValueError``, ``KeyError`` or ``FileNotFoundError``."""
    if isinstance(err, SphereferError):
        return err.http_status
    return 404 if isinstance(err, (KeyError, FileNotFoundError)) else 400


def exit_code(err: BaseException) -> int:
    """The command line's exit status for an error of the user's input: 2 (click's usage-error status)."""
    return err.exit_code if isinstance(err, SphereferError) else 2


def error_message(err: BaseException) -> str:
    """The error's message in words (a builtin ``KeyError`` quotes its message; this does not)."""
    if isinstance(err, KeyError) and not isinstance(err, SphereferError) and err.args:
        return str(err.args[0])
    return str(err)
