"""One error story: each kind is also the builtin a caller expects, and maps once to an HTTP status and a
command-line exit code; messages are words, never an exception's class."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from spherefer.bank.centers import CenterBank
from spherefer.bank.enrol import HarmfulEnrolment
from spherefer.bank.history import NothingToUndo
from spherefer.bank.records import ClassExists
from spherefer.cli import main
from spherefer.core.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    SphereferError,
    TooLarge,
    Unusable,
    error_message,
    exit_code,
    http_status,
)
from spherefer.core.images import ImageTooLarge, read_image
from spherefer.evaluation.calibrate import DegenerateCalibration
from spherefer.runtime.samples import NoUsableFace


@pytest.mark.parametrize(
    ("kind", "builtin", "status"),
    [
        (InvalidInput, ValueError, 400),
        (NotFound, KeyError, 404),
        (Conflict, ValueError, 409),
        (TooLarge, ValueError, 413),
        (Unusable, ValueError, 422),
    ],
)
def test_each_kind_is_its_builtin_and_has_one_status(kind: type, builtin: type, status: int) -> None:
    err = kind("the problem in words")
    assert isinstance(err, SphereferError) and isinstance(err, builtin)
    assert http_status(err) == status and exit_code(err) == 2
    assert str(err) == error_message(err) == "the problem in words"  # no quotes, even for a KeyError


def test_the_library_errors_have_their_kinds() -> None:
    assert issubclass(ClassExists, Conflict) and issubclass(NothingToUndo, Conflict)
    assert issubclass(ImageTooLarge, TooLarge)
    assert all(issubclass(kind, Unusable) for kind in (NoUsableFace, HarmfulEnrolment, DegenerateCalibration))


def test_builtins_from_elsewhere_map_too() -> None:
    assert http_status(ValueError("x")) == 400 and http_status(FileNotFoundError("x")) == 404
    assert error_message(KeyError("no class named 'x'")) == "no class named 'x'"


def test_real_refusals_raise_their_kind() -> None:
    bank = CenterBank(["happy", "sad"], np.eye(4, dtype=np.float32)[:2])
    with pytest.raises(NotFound, match="no class named 'angry'") as missing:
        bank.index("angry")
    assert str(missing.value).startswith("no class")  # a KeyError's message without the quotes it would add
    with pytest.raises(Conflict, match="already exists"):
        bank.add("happy", np.ones((1, 4), np.float32))
    with pytest.raises(InvalidInput, match="cosine threshold must lie in"):
        bank.set_threshold(None, 3.0)
    with pytest.raises(InvalidInput, match="cannot read image junk.jpg: not an image in a format spherefer reads"):
        read_image(b"not an image at all", "junk.jpg")


def test_the_command_line_prints_the_message_and_exits_2(tmp_path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["classes", "remove", "no-such-class"], env={"SPHEREFER_HOME": str(tmp_path)})
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and "no-such-class" in result.stderr
    assert "KeyError" not in result.stderr and "Traceback" not in result.stderr
