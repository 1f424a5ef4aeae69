"""The tools that keep the code as it is written: ruff's lint and format (120 columns) and mypy's
type check of the package (configured in pyproject.toml; strict flags for the newest modules)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ["src", "tests", "benchmarks", "tools"]

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("ruff") is None, reason="ruff is not installed (pip install -e .[test])"
)


def test_ruff_finds_no_lint() -> None:
    done = subprocess.run([sys.executable, "-m", "ruff", "check", *CHECKED], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_code_is_formatted() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", *CHECKED], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, "run `ruff format src tests benchmarks tools`:\n" + done.stdout + done.stderr


@pytest.mark.slow
@pytest.mark.skipif(
    any(importlib.util.find_spec(name) is None for name in ("mypy", "fastapi", "torch", "ray")),
    reason="the type check reads every part: pip install -e .[all]",
)
def test_mypy_finds_no_type_error() -> None:
    done = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
