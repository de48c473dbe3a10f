"""The connection, transactions, migrations and the audit row every change writes."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import logging
import sqlite3
import threading
import unicodedata
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Self, Sequence

from ..paths import DataPaths
from . import schema

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000


class StoreError(Exception):
    """The database cannot be used; the message says which file and what to do."""


def fold_text(text: str | None) -> str:
    """Text as patient search compares it: Unicode NFKD with the accents dropped, then
    case-folded ("Zoë Ñúñez" -> "zoe nunez"), so staff typing on any keyboard find
    the patient instead of registering a duplicate."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def search_text(patient_id: str | None, name: str | None, birth_date: str | None) -> str:
    """The folded text a patient is found by: ID, name and birth date (ISO, and as
    day/month/year with / . or -, the ways staff type it)."""
    parts = [patient_id or "", name or ""]
    if birth_date:
        parts.append(birth_date)
        try:
            day = dt.date.fromisoformat(birth_date)
            parts += [day.strftime(f"%d{sep}%m{sep}%Y") for sep in "/.-"]
        except ValueError:
            pass
    return fold_text(" | ".join(parts))


def default_user() -> str:
    """The operating-system user name: who an audit row names when no one else is given."""
    try:
        return getpass.getuser() or "unknown"
    except Exception:  # noqa: BLE001 - no login name (e.g. some containers)
        return "unknown"


def _now() -> str:
    return dt.datetime.now().isoformat(timespec="seconds")


def _iso(value: dt.date | dt.datetime | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="seconds")
    return value.isoformat()


def _date(text: str | None) -> dt.date | None:
    return dt.date.fromisoformat(text) if text else None


def _datetime(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


class StoreBase():
    """The SQLite connection shared by the parts of :class:`ClinicStore`: one
    re-entrant lock serialises every call, ``_tx`` gives one write transaction
    (nested calls join it), ``_audit`` writes the audit row in the caller's transaction."""

    def __init__(self, path: Path | str, image_store: Path | str | None = None):
        self.path = Path(path)
        self.image_store = Path(image_store) if image_store else self.path.parent / "images"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._depth = 0
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                       timeout=BUSY_TIMEOUT_MS / 1000)
            self._db.row_factory = sqlite3.Row
            self._configure()
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not a usable EyeScreen database ({exc}): "
                             "restore it from a backup or choose another data folder") from None

    @classmethod
    def open(cls, data_paths: DataPaths) -> Self:
        """The clinic database and image store under a data folder (created if needed)."""
        data_paths.ensure()
        return cls(data_paths.database, data_paths.image_store)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None  # type: ignore[assignment]

    def _configure(self) -> None:
        self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            log.warning("database %s is not in WAL mode (%s)", self.path, mode)
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.execute("PRAGMA foreign_keys = ON")
        self._db.create_function("eyescreen_search_text", 3, search_text, deterministic=True)

    @property
    def schema_version(self) -> int:
        """``PRAGMA user_version`` of the open file."""
        with self._lock:
            return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        version = self.schema_version
        if version > schema.SCHEMA_VERSION:
            raise StoreError(f"{self.path} was written by a newer EyeScreen (schema {version}, this one "
                             f"knows {schema.SCHEMA_VERSION}): update EyeScreen")
        if 0 < version < schema.SCHEMA_VERSION:
            self._backup(self.path.with_name(f"{self.path.name}.schema{version}.bak"))
        for target in range(version + 1, schema.SCHEMA_VERSION + 1):
            log.info("migrating %s to schema %d", self.path, target)
            try:
                self._db.executescript(f"BEGIN IMMEDIATE;\n{schema.MIGRATIONS[target - 1]}\n"
                                       f"PRAGMA user_version = {target};\nCOMMIT;")
            except sqlite3.Error:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def _backup(self, dest: Path) -> None:
        """A full copy before a migration, so an upgrade can always be undone."""
        with sqlite3.connect(dest) as copy:
            self._db.backup(copy)
        copy.close()

    @contextmanager
    def transaction(self) -> Iterator[Self]:
        """Group several calls into one commit (all or nothing), e.g. registering
        the patients of a batch; the calls inside join it."""
        with self._tx():
            yield self

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (re-entrant: nested calls join the outer one)."""
        with self._lock:
            if self._db is None:
                raise StoreError("the clinic database is closed")
            outer = self._depth == 0
            if outer:
                self._db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield self._db
            except BaseException:
                self._depth -= 1
                if outer:
                    self._db.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                self._db.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            if self._db is None:
                raise StoreError("the clinic database is closed")
            return self._db.execute(sql, params).fetchall()

    def _meta_int(self, key: str, default: int = 0) -> int:
        """An integer the store keeps in ``store_meta`` (``default`` when unset)."""
        rows = self._query("SELECT value FROM store_meta WHERE key = ?", (key,))
        return int(rows[0][0]) if rows else default

    def _set_meta(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO store_meta (key, value) VALUES (?, ?) "
                       "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))

    def _audit(self, db: sqlite3.Connection, user: str | None, action: str, entity: str,
               details: dict[str, Any] | None = None) -> None:
        db.execute("INSERT INTO audit_log (at, user, action, entity, details) VALUES (?, ?, ?, ?, ?)",
                   (_now(), user or default_user(), action, entity,
                    json.dumps(details or {}, sort_keys=True, default=str)))
