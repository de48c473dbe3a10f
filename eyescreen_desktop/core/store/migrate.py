"""Bringing a clinic database to the current schema, on SQLite and PostgreSQL alike.

Alembic migrations (``migrations/``, shipped inside the package and run from
here: no ``alembic.ini`` at run time) create the schema on an empty database and
upgrade it on both engines. Their first revision, ``0001``, is the schema the
hand-written list in :mod:`schema` reached (``SCHEMA_VERSION``); a SQLite file
written before Alembic (``PRAGMA user_version`` 1 .. SCHEMA_VERSION, no
``alembic_version`` table) is brought there by that list, after a backup copy,
then stamped ``0001`` and upgraded like any other. A database from a newer
EyeScreen (a later user_version, or an Alembic revision this one does not know)
is refused with a clear message instead of being half-understood.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from . import schema
from .engine import StoreError

if TYPE_CHECKING:
    from .base import StoreBase

log = logging.getLogger(__name__)

BASELINE = "0001"
"""The Alembic revision that equals the hand-written schema at ``SCHEMA_VERSION``."""

SCRIPTS = Path(__file__).with_name("migrations")


def is_database_error(exc: BaseException) -> bool:
    """An error of the database or its driver (sqlite3, psycopg, SQLAlchemy)."""
    if isinstance(exc, (sa.exc.SQLAlchemyError, sqlite3.Error)):
        return True
    return type(exc).__module__.split(".")[0] == "psycopg"


def _config(connection: sa.Connection) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.attributes["connection"] = connection
    return config


def _revisions(store: "StoreBase") -> tuple[str | None, str]:
    """(the database's Alembic revision or None, the newest this EyeScreen knows)."""
    from alembic.runtime.migration import MigrationContext

    current = MigrationContext.configure(store._conn).get_current_revision()
    store._end_read()
    return current, head_revision()


def head_revision() -> str:
    """The newest Alembic revision this EyeScreen ships."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(SCRIPTS)).get_current_head()
    assert head is not None
    return head


def _alembic(store: "StoreBase", action: str, revision: str) -> None:
    """``alembic upgrade|stamp REVISION`` in one write transaction."""
    from alembic import command

    with store._tx():
        getattr(command, action)(_config(store._conn), revision)


def _user_version(store: "StoreBase") -> int:
    return int(store._query("PRAGMA user_version")[0][0])


def schema_level(store: "StoreBase") -> int:
    """``PRAGMA user_version`` on SQLite; SCHEMA_VERSION on a server at the newest revision."""
    if store.dialect == "sqlite":
        return _user_version(store)
    current, head = _revisions(store)
    return schema.SCHEMA_VERSION if current == head else 0


def migrate(store: "StoreBase") -> None:
    """Create or upgrade the schema of the store's database (see the module's docstring)."""
    if store.dialect == "sqlite":
        _hand_written(store)
    current, head = _revisions(store)
    if current is not None and current != head:
        from alembic.script import ScriptDirectory

        try:
            ScriptDirectory(str(SCRIPTS)).get_revision(current)
        except Exception:  # noqa: BLE001 - alembic says "Can't locate revision" its own way
            raise StoreError(f"{store.where} was written by a newer EyeScreen (revision {current}, this one "
                             f"knows up to {head}): update EyeScreen") from None
        if store.path is not None:
            _backup(store, store.path.with_name(f"{store.path.name}.{current}.bak"))
    if current != head:
        log.info("migrating %s to revision %s", store.where, head)
        _alembic(store, "upgrade", "head")
    if store.dialect == "sqlite" and _user_version(store) != schema.SCHEMA_VERSION:
        store._query(f"PRAGMA user_version = {schema.SCHEMA_VERSION}")   # an older EyeScreen refuses it


def _hand_written(store: "StoreBase") -> None:
    """A SQLite file from before Alembic: the hand-written list up to SCHEMA_VERSION
    (after a backup), then stamped as the baseline revision."""
    version = _user_version(store)
    if version > schema.SCHEMA_VERSION:
        raise StoreError(f"{store.where} was written by a newer EyeScreen (schema {version}, this one "
                         f"knows {schema.SCHEMA_VERSION}): update EyeScreen")
    has_alembic = bool(store._query("SELECT 1 FROM sqlite_master WHERE name = 'alembic_version'"))
    if version == 0 or has_alembic:
        return
    if version < schema.SCHEMA_VERSION:
        assert store.path is not None
        _backup(store, store.path.with_name(f"{store.path.name}.schema{version}.bak"))
    raw = store._db.driver_connection
    for target in range(version + 1, schema.SCHEMA_VERSION + 1):
        log.info("migrating %s to schema %d", store.where, target)
        try:
            raw.executescript(f"BEGIN IMMEDIATE;\n{schema.MIGRATIONS[target - 1]}\n"
                              f"PRAGMA user_version = {target};\nCOMMIT;")
        except sqlite3.Error:
            if raw.in_transaction:
                raw.execute("ROLLBACK")
            raise
    _alembic(store, "stamp", BASELINE)


def _backup(store: "StoreBase", dest: Path) -> None:
    """A full copy of a SQLite file before a migration, so an upgrade can always be undone."""
    store._end_read()
    with sqlite3.connect(dest) as copy:
        store._db.driver_connection.backup(copy)
    copy.close()
