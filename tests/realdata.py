"""Find the real research datasets for tests marked ``@pytest.mark.realdata``.

The archives live in ``../shared/datasets`` next to the repository; each is extracted
once into ``$SPHEREFER_DATA_CACHE/<name>`` (default ``~/.cache/spherefer-data/<name>``),
never into the repository. Usage::

    from realdata import realdata_path

    @pytest.mark.realdata
    def test_something():
        root = realdata_path("ckplus48")   # holds CK+48/
"""

from __future__ import annotations

import os
import tarfile
import tempfile
from pathlib import Path

import pytest

__all__ = ["SHARED_DATASETS", "realdata_path"]

SHARED_DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
"""Where the dataset archives are: ``<repo>/../shared/datasets``."""

_TOP_FOLDER = {"fer2013": "train", "ferplus": "data", "ckplus48": "CK+48"}
"""Archive name -> a folder whose presence in the cache means the archive is fully extracted."""


def _cache_root() -> Path:
    """The folder holding one extraction per archive."""
    return Path(os.environ.get("SPHEREFER_DATA_CACHE", "~/.cache/spherefer-data")).expanduser()


def realdata_path(name: str) -> Path:
    """The extracted ``name`` archive (fer2013, ferplus or ckplus48), extracting it on first use.

    Skips the calling test when ``../shared/datasets`` or the archive is absent.
    """
    if name not in _TOP_FOLDER:
        raise ValueError(f"unknown real dataset {name!r}; known: {', '.join(_TOP_FOLDER)}")
    archive = SHARED_DATASETS / f"{name}.tar"
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"real datasets absent: {SHARED_DATASETS} does not exist (a fresh clone has no ../shared)")
    if not archive.is_file():
        pytest.skip(f"real dataset archive absent: {archive}")
    target = _cache_root() / name
    if not (target / _TOP_FOLDER[name]).is_dir():
        _extract(archive, target, _TOP_FOLDER[name])
    return target


def _extract(archive: Path, target: Path, top_folder: str) -> None:
    """Extract ``archive`` beside ``target`` and move its entries in, ``top_folder`` last, so its presence means
    done."""
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".extracting-", dir=target) as scratch:
        with tarfile.open(archive) as tar:
            tar.extractall(scratch, filter="data")
        for entry in sorted(Path(scratch).iterdir(), key=lambda path: path.name == top_folder):
            destination = target / entry.name
            if not destination.exists():
                os.replace(entry, destination)
