"""The SQL database under the bank store: a SQLite file or a PostgreSQL server, with one way to connect,
lock and write."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from spherefer.core.errors import InvalidInput

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS bank_versions (
        profile TEXT NOT NULL, version INTEGER NOT NULL, previous INTEGER, restores INTEGER, created {real} NOT NULL,
        action TEXT NOT NULL, bank {blob} NOT NULL, chain INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (profile,
        version))""",
    "CREATE TABLE IF NOT EXISTS store_info (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)


class Database:
    """The few things SQLite and PostgreSQL do differently here: connecting, parameters, types, locking."""

    def __init__(self, url: str, pool_size: int) -> None:
        self.postgres = url.startswith(("postgresql://", "postgres://"))
        self.pool: Any = None
        if self.postgres:
            try:
                import psycopg
                from psycopg_pool import ConnectionPool
            except ImportError as err:
                raise InvalidInput(
                    "a postgresql:// database needs psycopg and psycopg-pool: pip install 'spherefer[postgres]'"
                ) from err
            self._psycopg, self.url = psycopg, url
            self.where = "postgresql://" + url.split("@")[-1].split("?")[0].split("://")[-1]  # never show a password
            self.pool = ConnectionPool(
                url,
                min_size=0,
                max_size=pool_size,
                kwargs={"autocommit": True},
                open=True,
                check=ConnectionPool.check_connection,
                name=f"spherefer {self.where}",
            )
        else:
            path = Path(url.removeprefix("sqlite:///")).expanduser()
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():  # owner-only, like the API key; SQLite gives -wal and -shm the same mode
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
            self.url = self.where = str(path)

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """A connection for the ``with`` block: SQLite opens one, PostgreSQL borrows one from the pool (waiting for a
        free one)."""
        if self.postgres:
            with self.pool.connection() as db:
                yield db
            return
        db = sqlite3.connect(self.url, timeout=60.0, isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout=60000")
            yield db
        finally:
            db.close()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()

    def sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.postgres else statement

    def prepare(self) -> None:
        """SQLite: switch the file to write-ahead logging (readers never wait for the writer); retried while another
        process does it."""
        if self.postgres:
            return
        for attempt in range(50):
            try:
                with self.connection() as db:
                    db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError:
                time.sleep(0.1 * (attempt + 1))
        raise InvalidInput(f"database {self.where} stays locked; is another program holding it?")

    def create(self, db: Any) -> None:
        types = {"real": "DOUBLE PRECISION", "blob": "BYTEA"} if self.postgres else {"real": "REAL", "blob": "BLOB"}
        for statement in _SCHEMA:
            db.execute(statement.format(**types))
        if self.postgres:
            columns = {
                row[0]
                for row in db.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = 'bank_versions' AND "
                    "table_schema = current_schema()"
                )
            }
        else:
            columns = {row[1] for row in db.execute("PRAGMA table_info(bank_versions)")}
        if "chain" not in columns:  # a database of an older spherefer: every row holds a full bank
            db.execute("ALTER TABLE bank_versions ADD COLUMN chain INTEGER NOT NULL DEFAULT 0")

    def begin_write(self, db: Any, profile: str) -> None:
        """Start a transaction that holds the profile's write lock until COMMIT or ROLLBACK."""
        if self.postgres:
            db.execute("BEGIN")
            db.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (profile,))
        else:
            db.execute("BEGIN IMMEDIATE")

    def in_transaction(self, db: Any) -> bool:
        if self.postgres:
            return db.info.transaction_status != self._psycopg.pq.TransactionStatus.IDLE
        return db.in_transaction
