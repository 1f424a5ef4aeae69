"""``spherefer serve``: an HTTP API and browser app over one model, with versioned banks per profile.

``build_app(model, db, api_key, **limits)`` makes the FastAPI app of a model (loaded by
name or folder) from :func:`~.app.create_app`, which takes a recognizer, a
:class:`~.store.BankStore` (the versioned banks) and :class:`~.app.ServeSettings`;
``run_server(model, host, port, ...)`` runs ``spherefer serve``: it passes its settings
through the environment to ``app_from_environment()``, what each worker process starts;
``serve_home()``, ``api_key_source()`` and ``load_api_key()`` locate the default
database and API key.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from spherefer.core.errors import InvalidInput
from spherefer.runtime.loading import load_model
from spherefer.serve.app import ServeSettings, create_app
from spherefer.serve.store import BankStore

__all__ = [
    "ServeSettings",
    "BankStore",
    "create_app",
    "build_app",
    "app_from_environment",
    "run_server",
    "serve_home",
    "api_key_source",
    "load_api_key",
]


def serve_home() -> Path:
    """``$SPHEREFER_HOME/serve`` (default ``~/.spherefer/serve``): the default database and API key live here."""
    return Path(os.environ.get("SPHEREFER_HOME", "~/.spherefer")).expanduser() / "serve"


def api_key_source() -> str:
    """Where the server's API key comes from: ``$SPHEREFER_API_KEY`` when set, else the key file in
    :func:`serve_home`."""
    return "$SPHEREFER_API_KEY" if os.environ.get("SPHEREFER_API_KEY") else str(serve_home() / "api_key")


def load_api_key(key_file: Path) -> str:
    """``$SPHEREFER_API_KEY`` if set; otherwise the key in ``key_file``, created (random, owner-only) if missing.

    Either must be at least 16 characters. Creation is atomic: servers starting together agree on one key.
    """
    key = os.environ.get("SPHEREFER_API_KEY")
    where = "$SPHEREFER_API_KEY"
    if not key:
        if not key_file.is_file():
            key_file.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=key_file.parent, prefix=".api_key.")  # owner-only (0600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(32) + "\n")
            try:
                os.link(temporary, key_file)  # fails if another process made the key first: then use theirs
            except FileExistsError:
                pass
            finally:
                os.unlink(temporary)
        key, where = key_file.read_text().strip(), str(key_file)
    if len(key) < 16:
        raise InvalidInput(f"the API key in {where} is shorter than 16 characters")
    return key


def build_app(
    model: str = "default", db: str | Path | None = None, api_key: str | None = None, **limits: Any
) -> FastAPI:
    """The app for ``model`` with its banks in ``db``: a SQLite file (default ``serve_home()/<model>.sqlite3``) or a
    postgresql:// URL."""
    recognizer = load_model(model)
    name = Path(model).name if Path(model).is_dir() else model
    store = BankStore(db or serve_home() / f"{name}.sqlite3", recognizer.bank, model_id=name)
    settings = ServeSettings(api_key=api_key or load_api_key(serve_home() / "api_key"), **limits)
    return create_app(recognizer, store, settings, model_name=name)


SUPERVISOR_CHECK_SECONDS = 0.5
"""How often a worker process checks that the process that started it is alive."""


def _exit_with(supervisor: int) -> None:
    """Stop this worker once ``supervisor`` (its parent, uvicorn's process manager) is gone: a parent killed
    with ``kill -9`` never stops its workers, which would go on serving and hold the port. The worker asks
    itself to stop as uvicorn does on Ctrl-C (SIGTERM: requests in flight finish), and leaves at once if that
    takes longer than 10 s."""
    while os.getppid() == supervisor:
        time.sleep(SUPERVISOR_CHECK_SECONDS)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(10.0)
    os._exit(1)


def app_from_environment():
    """The app ``spherefer serve`` starts in each worker process (settings passed through the environment);
    with several workers each one watches the process that started it and stops when it is gone."""
    limits = json.loads(os.environ.get("SPHEREFER_SERVE_LIMITS", "{}"))
    supervisor = os.environ.get("SPHEREFER_SERVE_SUPERVISOR")
    if supervisor is not None:
        watch = threading.Thread(
            target=_exit_with, args=(int(supervisor),), name="spherefer-supervisor-watch", daemon=True
        )
        watch.start()
    return build_app(os.environ.get("SPHEREFER_SERVE_MODEL", "default"), os.environ.get("SPHEREFER_SERVE_DB"), **limits)


def run_server(
    model: str = "default",
    host: str = "127.0.0.1",
    port: int = 8000,
    db: str | None = None,
    workers: int = 1,
    announce: Callable[[], None] | None = None,
    **limits: int,
) -> None:
    """Serve ``model`` with uvicorn until stopped: ``workers`` processes, each building its
    app with :func:`app_from_environment` from the settings passed here (``limits`` are
    :class:`ServeSettings` fields). The API key is created first, so every worker reads
    the same one; ``announce`` is called once everything is set, before serving starts."""
    import uvicorn

    load_api_key(serve_home() / "api_key")
    os.environ["SPHEREFER_SERVE_MODEL"] = model
    os.environ["SPHEREFER_SERVE_LIMITS"] = json.dumps(limits)
    os.environ.pop("SPHEREFER_SERVE_DB", None)
    if db is not None:
        os.environ["SPHEREFER_SERVE_DB"] = db
    os.environ.pop("SPHEREFER_SERVE_SUPERVISOR", None)
    if workers > 1:  # uvicorn's process manager is this process: its workers stop when it dies
        os.environ["SPHEREFER_SERVE_SUPERVISOR"] = str(os.getpid())
    if announce is not None:
        announce()
    uvicorn.run(
        "spherefer.serve:app_from_environment", factory=True, host=host, port=port, workers=workers, log_level="info"
    )
