"""Which optional part of spherefer a missing package belongs to, and how to install it.

The inference side (models, banks, faces, the CLI's predict/classes/calibrate/info/export)
needs only the base install. Training needs ``spherefer[train]`` (PyTorch), pictures
``spherefer[viz]``, the web service ``spherefer[serve]``, PostgreSQL banks
``spherefer[postgres]`` and ``--engine ray`` ``spherefer[ray]``.
"""

from __future__ import annotations

__all__ = ["EXTRAS", "install_hint", "require"]

EXTRAS: dict[str, str] = {
    "torch": "train",
    "torchvision": "train",
    "onnx": "train",
    "matplotlib": "viz",
    "fastapi": "serve",
    "fastapi_offline": "serve",
    "uvicorn": "serve",
    "multipart": "serve",
    "python_multipart": "serve",
    "psycopg": "postgres",
    "psycopg_pool": "postgres",
    "ray": "ray",
    "pandas": "ray",
    "pyarrow": "ray",
}
"""Top-level module name -> the extra that installs it."""


def require(*modules: str) -> None:
    """Import ``modules`` now, so that a command missing an extra fails before it does any
    work or writes any file (the ``ImportError`` names the module: :func:`install_hint`)."""
    import importlib

    for module in modules:
        importlib.import_module(module)


def install_hint(error: ImportError) -> str | None:
    """One line saying which extra installs the module ``error`` misses, or None for a module
    no extra provides (a broken install rather than a missing option)."""
    name = (getattr(error, "name", None) or "").split(".")[0]
    extra = EXTRAS.get(name)
    if extra is None:
        return None
    return f'this needs {name}, which is not installed: pip install "spherefer[{extra}]"'
