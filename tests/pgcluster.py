"""A throw-away PostgreSQL cluster for tests (initdb + pg_ctl; as user postgres when run as root)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def postgres_cluster(**settings: object) -> Iterator[str]:
    """Start a cluster with server ``settings`` (``max_connections=10``, ...) for the ``with`` block;
    yields its base URL with a ``{dbname}`` placeholder. Skips the test without psycopg or the server binaries."""
    pytest.importorskip("psycopg")
    if not (shutil.which("initdb") and shutil.which("pg_ctl")):
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl)")
    folder = Path(tempfile.mkdtemp(prefix="spherefer-pg-"))
    as_owner: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        as_owner = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    options = f"-k {folder} -p {port} -c listen_addresses=''" + "".join(
        f" -c {key}={value}" for key, value in settings.items()
    )
    subprocess.run(
        [*as_owner, "initdb", "-D", str(folder / "data"), "-A", "trust", "-U", "spherefer"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [*as_owner, "pg_ctl", "-D", str(folder / "data"), "-o", options, "-l", str(folder / "log"), "-w", "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://spherefer@/{{dbname}}?host={folder}&port={port}"
    finally:
        subprocess.run(
            [*as_owner, "pg_ctl", "-D", str(folder / "data"), "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(folder, ignore_errors=True)


def create_database(base: str) -> str:
    """A new empty database on the cluster at ``base`` (from :func:`postgres_cluster`); its URL."""
    import uuid

    import psycopg

    name = f"t{uuid.uuid4().hex}"
    with psycopg.connect(base.format(dbname="postgres"), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    return base.format(dbname=name)
