"""Fixtures shared by several test modules."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures import PATTERN_CLASSES, make_tiny_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny model over the pattern classes, saved once per test module."""
    folder = tmp_path_factory.mktemp("model")
    make_tiny_model(folder, PATTERN_CLASSES)
    return folder
