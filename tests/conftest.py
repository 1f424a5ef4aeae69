"""Fixtures shared by several test modules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures import PATTERN_CLASSES, make_tiny_model


@pytest.fixture(autouse=True, scope="session")
def _own_spherefer_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tests never read or write the user's ~/.spherefer (a shipped model loaded by name takes the user's bank)."""
    patch = pytest.MonkeyPatch()
    patch.setenv("SPHEREFER_HOME", str(tmp_path_factory.mktemp("spherefer-home")))
    yield
    patch.undo()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny model over the pattern classes, saved once per test module."""
    folder = tmp_path_factory.mktemp("model")
    make_tiny_model(folder, PATTERN_CLASSES)
    return folder
