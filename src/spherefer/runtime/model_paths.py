"""Where models and the user's banks live: shipped model folders by name, user folders by path,
and the editable bank each front end reads and ``spherefer classes`` writes."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

__all__ = ["editable_bank_path", "resolve_model_path", "shipped_models"]


def shipped_models() -> dict[str, Path]:
    """Models inside the installed package, by name."""
    root = Path(str(resources.files("spherefer") / "weights"))
    if not root.is_dir():
        return {}
    return {p.name: p for p in sorted(root.iterdir()) if (p / "config.json").is_file()}


def resolve_model_path(path_or_name: str | os.PathLike[str]) -> Path:
    """A shipped model's folder by name, or a user's model folder by path."""
    shipped = shipped_models()
    if isinstance(path_or_name, str) and path_or_name in shipped:
        return shipped[path_or_name]
    folder = Path(path_or_name).expanduser()
    if folder.is_dir():
        return folder
    raise FileNotFoundError(
        f"no model folder {str(path_or_name)!r}; shipped models are {sorted(shipped)}, "
        "or give a folder written by Recognizer.save"
    )


def editable_bank_path(path_or_name: str | os.PathLike[str]) -> Path:
    """Where edits to a model's classes are saved: the folder's own bank for a user's model
    folder; ``$SPHEREFER_HOME/banks/<name>.safetensors`` (default ``~/.spherefer``) for a
    shipped model, whose package files are never written."""
    if isinstance(path_or_name, str) and path_or_name in shipped_models():
        home = Path(os.environ.get("SPHEREFER_HOME", "~/.spherefer")).expanduser()
        return home / "banks" / f"{path_or_name}.safetensors"
    return resolve_model_path(path_or_name) / "bank.safetensors"
