"""Which database the clinic uses and the one connection the store talks through.

A single workstation keeps the embedded default, a SQLite file in its data folder
(``sqlite:///PATH``); a clinic with several workstations points every one of them
at its PostgreSQL server (``postgresql://user@host:port/db``) with ``--database``
or ``EYESCREEN_DATABASE_URL``. SQLAlchemy 2 Core makes the engine; the store's
SQL is written once, with ``?`` placeholders, and :class:`Db` hands it to
whichever driver (sqlite3 or psycopg 3) the engine has, so there are not two
hand-written dialects of the clinic's queries.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import sqlalchemy as sa
from sqlalchemy import event

from .names import ENV_VAR, StoreError, add_database_argument, database_url  # noqa: F401 - re-exported: light, see names.py

BUSY_TIMEOUT_MS = 10_000



def sqlite_file(url: str) -> Path | None:
    """The file of a ``sqlite:///`` URL; None for any other database."""
    parsed = sa.engine.make_url(url)
    return Path(parsed.database) if parsed.get_backend_name() == "sqlite" and parsed.database else None


def display_url(url: str) -> str:
    """The URL as messages show it: never with its password."""
    return sa.engine.make_url(url).render_as_string(hide_password=True)


def make_engine(url: str) -> sa.Engine:
    """An Engine for ``url``: SQLite with WAL, ``synchronous=FULL``, foreign keys and
    write transactions that take the lock at BEGIN (so two writers queue instead of
    failing half-way); PostgreSQL through psycopg 3."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(parsed, pool_pre_ping=True)
    engine = sa.create_engine(parsed, connect_args={"check_same_thread": False,
                                                    "timeout": BUSY_TIMEOUT_MS / 1000})
    event.listen(engine, "connect", _configure_sqlite)
    event.listen(engine, "begin", _begin_sqlite)
    return engine


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    from .base import search_text

    dbapi_connection.isolation_level = None   # transactions are begun below, not by the driver
    cur = dbapi_connection.cursor()
    cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA journal_mode = WAL")
    cur.execute("PRAGMA synchronous = FULL")
    cur.execute("PRAGMA foreign_keys = ON")
    cur.close()
    dbapi_connection.create_function("eyescreen_search_text", 3, search_text, deterministic=True)


def _begin_sqlite(conn: sa.Connection) -> None:
    # a write transaction takes the write lock at once; a read stays deferred (WAL readers never wait)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if getattr(conn, "eyescreen_write", False) else "BEGIN")


class Row(tuple):
    """One row, by position or by column name (as ``sqlite3.Row``)."""

    _index: dict[str, int]

    def __new__(cls, values: Iterable[Any], index: dict[str, int]) -> "Row":
        row = super().__new__(cls, values)
        row._index = index
        return row

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]  # a Row is looked up by column name as well as by index
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


class Cursor:
    """What one statement gave back: rows, the row count."""

    def __init__(self, result: sa.CursorResult | None):
        self.rowcount = result.rowcount if result is not None else -1
        if result is not None and result.returns_rows:
            index = {k: i for i, k in enumerate(result.keys())}
            self._rows: Iterator[Row] = iter([Row(r, index) for r in result.fetchall()])
        else:
            self._rows = iter(())

    def fetchone(self) -> Row | None:
        return next(self._rows, None)

    def fetchall(self) -> list[Row]:
        return list(self._rows)


def driver_error(exc: sa.exc.DBAPIError | sa.exc.PendingRollbackError, conn: sa.Connection | None = None) -> BaseException:
    """The error to raise for a failed statement: the driver's own, or, when the
    server went away (restarted, network down), a StoreError that says so and what
    to do; what was committed before stays."""
    orig = getattr(exc, "orig", None)
    server_gone = type(orig).__module__.startswith("psycopg") and type(orig).__name__ == "OperationalError"
    if isinstance(exc, sa.exc.PendingRollbackError) or getattr(exc, "connection_invalidated", False) \
            or server_gone:
        return lost_connection(exc, conn)
    return exc.orig  # type: ignore[return-value]  # the driver's own exception, raised by the caller


def lost_connection(exc: BaseException, conn: sa.Connection | None = None) -> StoreError:
    """The server went away: say so, and that a rerun resumes."""
    where = display_url(conn.engine.url.render_as_string(hide_password=False)) if conn is not None else "server"
    first = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or ["connection lost"])[0]
    return StoreError(f"lost the connection to the clinic database {where} ({first}): check that the "
                      "server runs, then run the same command again; everything saved so far is kept")


@functools.lru_cache(maxsize=2048)
def bound(sql: str) -> sa.TextClause:
    """``sql`` with its ``?`` placeholders as SQLAlchemy bound parameters ``:p0, :p1 ...``.

    Only a ``?`` outside quotes is a placeholder: a literal '?' (the value of
    ``Eye.UNKNOWN``) stays as it is on every driver, and SQLAlchemy itself escapes
    '%' for psycopg's placeholder style; every ':' of the text is escaped so it is
    never taken for a parameter. Cached: the store runs the same few statements."""
    out: list[str] = []
    quote: str | None = None
    n = 0
    for ch in sql:
        if ch == ":":
            out.append("\\:")
            continue
        if quote is not None:
            quote = None if ch == quote else quote   # '' inside a literal closes and reopens it
        elif ch in "'\"":
            quote = ch
        elif ch == "?":
            out.append(f":p{n}")
            n += 1
            continue
        out.append(ch)
    return sa.text("".join(out))


def _params(values: Sequence[Any]) -> dict[str, Any]:
    return {f"p{i}": v for i, v in enumerate(values)}


class Db:
    """The store's SQL (``?`` placeholders) on one SQLAlchemy connection, whatever
    the driver. Errors come out as the driver's own (``sqlite3.IntegrityError``,
    ``psycopg.errors.UniqueViolation`` ...), the store's contract since it began."""

    def __init__(self, conn: sa.Connection):
        self.conn = conn
        self.dialect = conn.dialect.name

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        """Run one statement with its ``?`` parameters (:func:`bound`)."""
        try:
            return Cursor(self.conn.execute(bound(sql), _params(params)))
        except (sa.exc.DBAPIError, sa.exc.PendingRollbackError) as exc:
            raise driver_error(exc, self.conn) from None

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Cursor:
        """Run one statement once per row of parameters."""
        many = [_params(r) for r in rows]
        if not many:
            return Cursor(None)
        try:
            return Cursor(self.conn.execute(bound(sql), many))
        except (sa.exc.DBAPIError, sa.exc.PendingRollbackError) as exc:
            raise driver_error(exc, self.conn) from None

    @property
    def driver_connection(self) -> Any:
        """The driver's own connection (e.g. sqlite3's, for a backup or a trace)."""
        return self.conn.connection.driver_connection

    def set_trace_callback(self, callback: Any) -> None:
        """SQLite only: every statement run is passed to ``callback``."""
        self.driver_connection.set_trace_callback(callback)
