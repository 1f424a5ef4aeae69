"""Versioned center banks, one per named profile, in SQLite (embedded, the default) or PostgreSQL.

Every change appends a new version of the profile's whole bank (a few kB) inside one
write transaction — ``BEGIN IMMEDIATE`` in SQLite, a per-profile advisory lock in
PostgreSQL — so concurrent requests, threads or server processes sharing the database,
are serialised and none is lost. Version 0 of every profile is the
model's trained bank and is never stored. An undo appends a version equal to the state
before the last change still in effect, so repeated undos walk back through history
and every step stays in the log.
"""

from __future__ import annotations

import copy
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..centers import CenterBank
from ..labels import shown

__all__ = ["BankStore", "Version", "check_profile", "NothingToUndo"]

T = TypeVar("T")
PROFILE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS bank_versions (
        profile TEXT NOT NULL, version INTEGER NOT NULL, previous INTEGER, restores INTEGER, created {real} NOT NULL,
        action TEXT NOT NULL, bank {blob} NOT NULL, PRIMARY KEY (profile, version))""",
    "CREATE TABLE IF NOT EXISTS store_info (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)


class _Database:
    """The few things SQLite and PostgreSQL do differently here: connecting, parameters, types, locking."""

    def __init__(self, url: str) -> None:
        self.postgres = url.startswith(("postgresql://", "postgres://"))
        if self.postgres:
            try:
                import psycopg
            except ImportError as err:
                raise ValueError("a postgresql:// database needs psycopg: pip install 'psycopg[binary]'") from err
            self._psycopg, self.url = psycopg, url
            self.where = "postgresql://" + url.split("@")[-1].split("?")[0].split("://")[-1]  # never show a password
        else:
            path = Path(url.removeprefix("sqlite:///")).expanduser()
            path.parent.mkdir(parents=True, exist_ok=True)
            self.url = self.where = str(path)

    def connect(self) -> Any:
        if self.postgres:
            return self._psycopg.connect(self.url, autocommit=True)
        db = sqlite3.connect(self.url, timeout=60.0, isolation_level=None)
        db.execute("PRAGMA busy_timeout=60000")
        return db

    def sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.postgres else statement

    def prepare(self) -> None:
        """SQLite: switch the file to write-ahead logging (readers never wait for the writer); retried while another process does it."""
        if self.postgres:
            return
        for attempt in range(50):
            try:
                with closing(self.connect()) as db:
                    db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError:
                time.sleep(0.1 * (attempt + 1))
        raise ValueError(f"database {self.where} stays locked; is another program holding it?")

    def create(self, db: Any) -> None:
        types = {"real": "DOUBLE PRECISION", "blob": "BYTEA"} if self.postgres else {"real": "REAL", "blob": "BLOB"}
        for statement in _SCHEMA:
            db.execute(statement.format(**types))

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


class NothingToUndo(ValueError):
    """The profile is at its trained bank (or every change was already undone)."""


@dataclass
class Version:
    """One entry of a profile's history: ``previous`` is the state an undo returns to (None: nothing
    to undo); an undo's ``restores`` is the version whose state it brought back (0: the trained bank)."""

    version: int
    previous: int | None
    restores: int | None
    created: float
    action: str


def check_profile(name: str) -> str:
    """A profile name (letters, digits, ``_``, ``-``; at most 64), or ``ValueError``."""
    if not isinstance(name, str) or not PROFILE_PATTERN.match(name):
        raise ValueError(f"profile names are 1-64 letters, digits, '_' or '-'; got {shown(name)}")
    return name


class BankStore:
    """Versioned banks per profile on top of the trained bank ``base`` of model ``model_id``.

    ``database`` is a SQLite file path (or ``sqlite:///PATH``) or a ``postgresql://`` URL.
    """

    def __init__(self, database: str | Path, base: CenterBank, model_id: str) -> None:
        self.db = _Database(str(database))
        self.base = copy.deepcopy(base)
        identity = {"model": model_id, "embedding_size": str(base.embedding_size)}
        self.db.prepare()
        with self._writing("__schema__") as db:  # servers starting together create the tables once
            self.db.create(db)
            found = dict(db.execute("SELECT key, value FROM store_info").fetchall())
            if not found:
                for item in identity.items():
                    db.execute(self.db.sql("INSERT INTO store_info VALUES (?, ?)"), item)
                found = identity
        if found != identity:
            raise ValueError(f"database {self.db.where} holds banks of model {found.get('model')!r} "
                             f"({found.get('embedding_size')}-d), not of {model_id!r} ({base.embedding_size}-d); use another --db")

    def _connect(self) -> Any:
        return self.db.connect()

    def _latest(self, db: sqlite3.Connection, profile: str) -> tuple[Version, bytes | None]:
        row = db.execute(self.db.sql(
            "SELECT version, previous, restores, created, action, bank FROM bank_versions WHERE profile = ? ORDER BY version DESC LIMIT 1"), (profile,)
        ).fetchone()
        if row is None:
            return Version(0, None, None, 0.0, "trained bank"), None
        return Version(*row[:5]), bytes(row[5])

    def _version(self, db: Any, profile: str, version: int) -> Version:
        row = db.execute(self.db.sql("SELECT version, previous, restores, created, action FROM bank_versions WHERE profile = ? AND version = ?"),
                         (profile, version)).fetchone()
        return Version(*row)

    def _bank(self, db: sqlite3.Connection, profile: str, version: int) -> CenterBank:
        if version == 0:
            return copy.deepcopy(self.base)
        (data,) = db.execute(self.db.sql("SELECT bank FROM bank_versions WHERE profile = ? AND version = ?"), (profile, version)).fetchone()
        return CenterBank.from_bytes(bytes(data), f"bank of profile {profile!r} version {version}")

    def current(self, profile: str) -> tuple[int, CenterBank]:
        """(version, bank) of ``profile`` now; a profile never changed is at version 0, the trained bank."""
        check_profile(profile)
        with closing(self._connect()) as db:
            latest, data = self._latest(db, profile)
        bank = copy.deepcopy(self.base) if data is None else CenterBank.from_bytes(data, f"bank of profile {profile!r}")
        return latest.version, bank

    @contextmanager
    def _writing(self, profile: str) -> Iterator[Any]:
        """A connection in a write transaction holding ``profile``'s lock: committed if the block succeeds, else rolled back."""
        check_profile(profile)
        db = self._connect()
        try:
            self.db.begin_write(db, profile)
            yield db
            db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction(db):
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    def _append(self, db: Any, profile: str, latest: Version, previous: int | None, restores: int | None, action: str, bank: CenterBank) -> int:
        version = latest.version + 1
        db.execute(self.db.sql("INSERT INTO bank_versions VALUES (?, ?, ?, ?, ?, ?, ?)"),
                   (profile, version, previous, restores, time.time(), action, bank.to_bytes()))
        return version

    def change(self, profile: str, action: str, edit: Callable[[CenterBank], T]) -> tuple[int, T]:
        """Apply ``edit`` to the latest bank and store the result as a new version, atomically.

        ``edit``'s exceptions propagate and nothing is stored.
        """
        with self._writing(profile) as db:
            latest, data = self._latest(db, profile)
            bank = copy.deepcopy(self.base) if data is None else CenterBank.from_bytes(data, f"bank of profile {profile!r}")
            result = edit(bank)
            return self._append(db, profile, latest, latest.version, None, action, bank), result

    def undo(self, profile: str) -> tuple[int, str, CenterBank]:
        """Return ``profile`` to the state before its last change still in effect.

        Returns the new version, the action it undid and the bank it holds now.
        """
        with self._writing(profile) as db:
            latest, _ = self._latest(db, profile)
            if latest.previous is None:
                raise NothingToUndo(f"profile {profile!r} has no change to undo (it is at the trained bank or everything was undone)")
            undone = latest  # the change that made the current state: follow undos back to it
            while undone.restores is not None:
                undone = self._version(db, profile, undone.restores)
            target = latest.previous
            before = None if target == 0 else self._version(db, profile, target).previous
            bank = self._bank(db, profile, target)
            version = self._append(db, profile, latest, before, target, f"undo: {undone.action}", bank)
            return version, undone.action, bank

    def history(self, profile: str) -> list[Version]:
        """Every stored version of ``profile``, oldest first (version 0, the trained bank, is implicit)."""
        check_profile(profile)
        with closing(self._connect()) as db:
            rows = db.execute(self.db.sql("SELECT version, previous, restores, created, action FROM bank_versions WHERE profile = ? ORDER BY version"),
                              (profile,)).fetchall()
        return [Version(*row) for row in rows]

    def profiles(self) -> list[str]:
        """Profiles with at least one change."""
        with closing(self._connect()) as db:
            return [row[0] for row in db.execute("SELECT DISTINCT profile FROM bank_versions ORDER BY profile")]
