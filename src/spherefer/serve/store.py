"""Versioned center banks, one per named profile, in SQLite (embedded, the default) or PostgreSQL.

Every change appends a new version of the profile's bank inside one write transaction
— ``BEGIN IMMEDIATE`` in SQLite, a per-profile advisory lock in PostgreSQL — so
concurrent requests, threads or server processes sharing the database are serialised
and none is lost. Version 0 of every profile is the model's trained bank and is never
stored. An undo appends a version equal to the state before the last change still in
effect, so repeated undos walk back through history and every step stays in the log.

A version stores only what its change changed (:mod:`.versions`: about one center,
2 kB, to enrol, update or rename a class), plus a full copy of the bank whenever the
changes stored since the last full copy add up to more than a full copy: the database
grows linearly with the number of changes (a full copy every time grew quadratically),
and reading a version replays at most a full copy's worth of changes. Each store keeps
the last bank it read per profile, so a read replays only versions newer than that.

A SQLite database file is created owner-only (0600; SQLite gives its ``-wal`` and
``-shm`` files the same mode). A PostgreSQL store keeps a bounded pool of connections
(``pool_size`` per store, so per server process): requests wait for a free connection
instead of opening one each, and ``workers x pool_size`` stays under ``max_connections``.
"""

from __future__ import annotations

import copy
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from spherefer.bank.centers import CenterBank
from spherefer.bank.history import NothingToUndo
from spherefer.core.errors import InvalidInput
from spherefer.core.labels import shown
from spherefer.serve.database import Database
from spherefer.serve.versions import BankState, bank_delta, replay

__all__ = ["BankStore", "Version", "check_profile", "CorruptBank", "STORE_FORMAT", "DEFAULT_POOL_SIZE"]

T = TypeVar("T")
PROFILE_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""A whole profile name (always used with ``fullmatch``: no trailing newline slips through)."""

STORE_FORMAT = "2"
"""Version of how banks are stored (2: changes as deltas); older spherefer releases refuse a database of a newer
format."""
DEFAULT_POOL_SIZE = 4
"""Most PostgreSQL connections one :class:`BankStore` (one server process) holds at once."""
CACHED_PROFILES = 256
"""How many profiles' last read banks one store keeps (least recently used go first)."""

# ``bank``: a full bank (chain 0) or a delta from the version before (chain: the bytes of
# deltas since the last full bank, this one included). Databases made before deltas lack
# ``chain``; it is added with 0, which is right, since every row then held a full bank.


class CorruptBank(RuntimeError):
    """A stored version of a profile's bank cannot be read (damaged database): the server's fault, never the
    request's."""

    def __init__(self, profile: str, version: int, reason: str) -> None:
        super().__init__(
            f"the stored bank of profile {profile!r} is corrupt (version {version}: {reason}); "
            "the server's database needs repair or restoring from a backup"
        )
        self.profile, self.version = profile, version


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
    if not isinstance(name, str) or not PROFILE_PATTERN.fullmatch(name):
        raise InvalidInput(f"profile names are 1-64 letters, digits, '_' or '-'; got {shown(name)}")
    return name


class BankStore:
    """Versioned banks per profile on top of the trained bank ``base`` of model ``model_id``.

    ``database`` is a SQLite file path (or ``sqlite:///PATH``) or a ``postgresql://`` URL;
    a PostgreSQL store holds at most ``pool_size`` connections at once. :meth:`close`
    (or leaving a ``with`` block) closes them.
    """

    def __init__(
        self, database: str | Path, base: CenterBank, model_id: str, pool_size: int = DEFAULT_POOL_SIZE
    ) -> None:
        if pool_size < 1:
            raise InvalidInput(f"pool_size must be at least 1, got {pool_size}")
        self.db = Database(str(database), pool_size)
        self.base = copy.deepcopy(base)
        self._base_state = BankState.of(self.base)
        self._cache: OrderedDict[str, tuple[int, BankState]] = OrderedDict()
        self._cache_lock = threading.Lock()
        identity = {"model": model_id, "embedding_size": str(base.embedding_size)}
        try:
            self.db.prepare()
            with self._writing("__schema__") as db:  # servers starting together create the tables once
                self.db.create(db)
                found = dict(db.execute("SELECT key, value FROM store_info").fetchall())
                if not found:
                    for item in identity.items():
                        db.execute(self.db.sql("INSERT INTO store_info VALUES (?, ?)"), item)
                    found = dict(identity)
                stored_format = found.pop("format", None)
                if stored_format is None and found == identity:
                    db.execute(self.db.sql("INSERT INTO store_info VALUES (?, ?)"), ("format", STORE_FORMAT))
        except BaseException:
            self.db.close()
            raise
        if found != identity:
            self.db.close()
            raise InvalidInput(
                f"database {self.db.where} holds banks of model {found.get('model')!r} "
                f"({found.get('embedding_size')}-d), not of {model_id!r} ({base.embedding_size}-d); use another --db"
            )
        if stored_format is not None and int(stored_format) > int(STORE_FORMAT):
            self.db.close()
            raise InvalidInput(
                f"database {self.db.where} was written by a newer spherefer (store format {stored_format}, "
                f"this one reads {STORE_FORMAT}); upgrade spherefer"
            )

    def close(self) -> None:
        """Close the PostgreSQL connection pool (nothing to do for SQLite)."""
        self.db.close()

    def __enter__(self) -> BankStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _latest(self, db: Any, profile: str) -> tuple[Version, int]:
        """The newest version's entry and its ``chain`` (bytes of changes since the last full bank)."""
        row = db.execute(
            self.db.sql(
                "SELECT version, previous, restores, created, action, chain FROM bank_versions WHERE profile = ? "
                "ORDER BY version DESC LIMIT 1"
            ),
            (profile,),
        ).fetchone()
        if row is None:
            return Version(0, None, None, 0.0, "trained bank"), 0
        return Version(*row[:5]), int(row[5])

    def _version(self, db: Any, profile: str, version: int) -> Version:
        row = db.execute(
            self.db.sql(
                "SELECT version, previous, restores, created, action FROM bank_versions WHERE profile = ? AND "
                "version = ?"
            ),
            (profile, version),
        ).fetchone()
        return Version(*row)

    def _state(self, db: Any, profile: str, version: int) -> BankState:
        """The state of ``profile`` at ``version``: the cached state or the last full bank before it, and the changes
        since."""
        if version == 0:
            return self._base_state
        with self._cache_lock:
            cached = self._cache.get(profile)
        if cached is not None and cached[0] <= version:
            start, state = cached
        else:
            (full,) = db.execute(
                self.db.sql("SELECT MAX(version) FROM bank_versions WHERE profile = ? AND version <= ? AND chain = 0"),
                (profile, version),
            ).fetchone()
            start, state = (0, self._base_state) if full is None else (int(full) - 1, None)  # type: ignore[assignment]
        if start < version:
            rows = db.execute(
                self.db.sql(
                    "SELECT version, bank FROM bank_versions WHERE profile = ? AND version > ? AND version <= ? "
                    "ORDER BY version"
                ),
                (profile, start, version),
            ).fetchall()
            if len(rows) != version - start:
                raise CorruptBank(
                    profile, version, f"versions {start + 1}..{version} should be stored, {len(rows)} are"
                )
            for number, data in rows:
                try:
                    state = replay(
                        state if number > 1 else self._base_state,
                        bytes(data),
                        f"bank of profile {profile!r} version {number}",
                    )
                except ValueError as err:
                    raise CorruptBank(profile, int(number), str(err)) from err
        assert state is not None
        self._remember(profile, version, state)
        return state

    def _remember(self, profile: str, version: int, state: BankState) -> None:
        with self._cache_lock:
            if profile not in self._cache or self._cache[profile][0] < version:
                self._cache[profile] = (version, state)
            self._cache.move_to_end(profile)
            while len(self._cache) > CACHED_PROFILES:
                self._cache.popitem(last=False)

    def _bank(self, db: Any, profile: str, version: int) -> CenterBank:
        return self._bank_of(self._state(db, profile, version), profile, version)

    def _bank_of(self, state: BankState, profile: str, version: int) -> CenterBank:
        if state is self._base_state:
            return copy.deepcopy(self.base)
        try:
            return state.bank(f"bank of profile {profile!r} version {version}")
        except ValueError as err:
            raise CorruptBank(profile, version, str(err)) from err

    def current(self, profile: str) -> tuple[int, CenterBank]:
        """(version, bank) of ``profile`` now; a profile never changed is at version 0, the trained bank."""
        check_profile(profile)
        with self.db.connection() as db:
            latest, _ = self._latest(db, profile)
            state = self._state(db, profile, latest.version)
        return latest.version, self._bank_of(state, profile, latest.version)

    @contextmanager
    def _writing(self, profile: str) -> Iterator[Any]:
        """A connection in a write transaction holding ``profile``'s lock: committed if the block succeeds, else rolled
        back."""
        check_profile(profile)
        with self.db.connection() as db:
            try:
                self.db.begin_write(db, profile)
                yield db
                db.execute("COMMIT")
            except BaseException:
                if self.db.in_transaction(db):
                    db.execute("ROLLBACK")
                raise

    def _append(
        self,
        db: Any,
        profile: str,
        latest: Version,
        chain: int,
        previous: int | None,
        restores: int | None,
        action: str,
        before: CenterBank,
        bank: CenterBank,
    ) -> int:
        """Store ``bank`` as the version after ``latest`` (whose bank is ``before``): as a delta, or in full when
        the deltas since the last full bank would outweigh one (and always for a profile's first version)."""
        version = latest.version + 1
        data = bank_delta(before, bank)
        full_size = 4 * bank.embedding_size * (len(bank) + len(bank.trained))  # the tensors alone: a lower bound
        if latest.version == 0 or chain + len(data) > full_size:
            data, chain = bank.to_bytes(), 0
        else:
            chain += len(data)
        db.execute(
            self.db.sql(
                "INSERT INTO bank_versions (profile, version, previous, restores, created, action, bank, chain) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            ),
            (profile, version, previous, restores, time.time(), action, data, chain),
        )
        return version

    def change(self, profile: str, action: str, edit: Callable[[CenterBank], T]) -> tuple[int, T]:
        """Apply ``edit`` to the latest bank and store the result as a new version, atomically.

        ``edit``'s exceptions propagate and nothing is stored.
        """
        with self._writing(profile) as db:
            latest, chain = self._latest(db, profile)
            before = self._bank(db, profile, latest.version)
            bank = copy.deepcopy(before)
            result = edit(bank)
            return self._append(db, profile, latest, chain, latest.version, None, action, before, bank), result

    def replace(self, profile: str, action: str, bank: CenterBank) -> int:
        """Store ``bank`` (a bank file brought in whole) as ``profile``'s new version; the version."""
        with self._writing(profile) as db:
            latest, chain = self._latest(db, profile)
            before = self._bank(db, profile, latest.version)
            return self._append(db, profile, latest, chain, latest.version, None, action, before, copy.deepcopy(bank))

    def undo(self, profile: str) -> tuple[int, str, CenterBank]:
        """Return ``profile`` to the state before its last change still in effect.

        Returns the new version, the action it undid and the bank it holds now.
        """
        with self._writing(profile) as db:
            latest, chain = self._latest(db, profile)
            if latest.previous is None:
                raise NothingToUndo(
                    f"profile {profile!r} has no change to undo (it is at the trained bank or everything was undone)"
                )
            undone = latest  # the change that made the current state: follow undos back to it
            while undone.restores is not None:
                undone = self._version(db, profile, undone.restores)
            target = latest.previous
            before = None if target == 0 else self._version(db, profile, target).previous
            bank = self._bank(db, profile, target)
            version = self._append(
                db,
                profile,
                latest,
                chain,
                before,
                target,
                f"undo: {undone.action}",
                self._bank(db, profile, latest.version),
                bank,
            )
            return version, undone.action, bank

    def history(self, profile: str) -> list[Version]:
        """Every stored version of ``profile``, oldest first (version 0, the trained bank, is implicit)."""
        check_profile(profile)
        with self.db.connection() as db:
            rows = db.execute(
                self.db.sql(
                    "SELECT version, previous, restores, created, action FROM bank_versions WHERE profile = ? ORDER "
                    "BY version"
                ),
                (profile,),
            ).fetchall()
        return [Version(*row) for row in rows]

    def profiles(self) -> list[str]:
        """Profiles with at least one change."""
        with self.db.connection() as db:
            return [row[0] for row in db.execute("SELECT DISTINCT profile FROM bank_versions ORDER BY profile")]
