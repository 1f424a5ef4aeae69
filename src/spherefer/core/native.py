"""Helpers for native (C/C++) libraries that write straight to the process's file descriptors.

LiteRT (the BlazeFace detectors, :mod:`spherefer.face.blazeface`) and FFmpeg inside OpenCV
(:mod:`spherefer.runtime.video`) print to fd 2 from C code, which Python's ``sys.stderr`` cannot
redirect; :func:`quiet_native_stderr` silences them around the calls that do.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

__all__ = ["quiet_native_stderr"]


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silence C-level writes to fd 2 (LiteRT's 'INFO: Created TensorFlow Lite XNNPACK
    delegate' line) for the duration of the block; Python exceptions are unaffected."""
    try:
        fd = sys.__stderr__.fileno() if sys.__stderr__ is not None else 2
        saved = os.dup(fd)
    except (OSError, ValueError):
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
