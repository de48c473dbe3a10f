"""The connection, transactions, migrations and the audit row every change writes."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import threading
import unicodedata
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol, Self, Sequence

import sqlalchemy as sa

from ..paths import DataPaths
from .engine import BUSY_TIMEOUT_MS, Db, StoreError, driver_error, Row, database_url, display_url, sqlite_file, make_engine
from .migrate import is_database_error, migrate, schema_level
from .names import IMAGE_STORE_VAR, default_user

if TYPE_CHECKING:
    from ..roles import Action
    from .accounts import Person
    from .notify import ChangeWatcher

log = logging.getLogger(__name__)

CHANGE_CHANNEL = "eyescreen_changes"   # notify.CHANNEL

_UNSET = object()
WRITE_LOCK_KEY = 0x45594553   # "EYES": the advisory lock every write transaction takes on a server

__all__ = ["BUSY_TIMEOUT_MS", "StoreBase", "StoreError", "default_user", "fold_text", "search_text"]



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


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class Clock(Protocol):
    """Where the store reads the time: the system clock in a clinic, a fixed
    moment in tests and demos (so nothing drifts with the day the suite runs)."""

    def now(self) -> dt.datetime:
        """The current moment, timezone-aware."""


class SystemClock:
    """The machine's clock, in UTC."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc)


class FixedClock:
    """A clock that says ``at`` until told otherwise (:meth:`advance`, :meth:`set`)."""

    def __init__(self, at: dt.datetime):
        self.set(at)

    def set(self, at: dt.datetime) -> None:
        self.at = at if at.tzinfo else at.astimezone()   # a naive time is local, as people type it

    def advance(self, **delta: float) -> None:
        self.at += dt.timedelta(**delta)

    def now(self) -> dt.datetime:
        return self.at


SYSTEM_CLOCK = SystemClock()


def _utc_text(moment: dt.datetime) -> str:
    """How the database keeps a moment: ISO 8601 in UTC with its offset
    (``2026-12-07T14:05:00+00:00``), so text order is time order on every
    workstation, whatever its time zone; a naive ``moment`` is local time."""
    return moment.astimezone(dt.timezone.utc).replace(microsecond=0).isoformat()


def _now() -> str:
    """Now, as the database keeps it, from the system clock (a store's own
    ``_now`` method reads its injected clock instead)."""
    return _utc_text(SYSTEM_CLOCK.now())


def _iso(value: dt.date | dt.datetime | None) -> str | None:
    """A date as ``YYYY-MM-DD``; a moment in UTC (:func:`_utc_text`)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return _utc_text(value)
    return value.isoformat()


def _date(text: str | None) -> dt.date | None:
    return dt.date.fromisoformat(text) if text else None


def _datetime(text: str | None) -> dt.datetime | None:
    """A stored moment in this machine's local time zone (timezone-aware), as the
    screen, the slip and the reports show it; a naive text (written before
    timestamps were UTC and not yet migrated) is read as local time."""
    return dt.datetime.fromisoformat(text).astimezone() if text else None


class StoreBase():
    """The connection shared by the parts of :class:`ClinicStore` (a SQLAlchemy
    Engine's, SQLite or PostgreSQL): one re-entrant lock serialises every call,
    ``_tx`` gives one write transaction (nested calls join it), ``_audit`` writes
    the audit row in the caller's transaction."""

    def __init__(self, path: Path | str, image_store: Path | str | None = None, clock: Clock | None = None):
        """``path``: a SQLite file, or a database URL (``sqlite:///FILE``,
        ``postgresql://user@host:port/db``). ``image_store`` defaults to ``images``
        next to a SQLite file; a server database needs it given (a shared folder).
        ``clock``: where every timestamp and "today" comes from (the system clock)."""
        self.clock: Clock = clock or SYSTEM_CLOCK
        self.url = database_url(path, Path("clinic.sqlite3"))
        self.path = sqlite_file(self.url)
        if image_store is None and self.path is None:
            raise StoreError(f"{display_url(self.url)}: say where the image store is (a folder every "
                             "workstation reaches, e.g. the clinic's shared drive)")
        self.image_store = Path(image_store) if image_store else self.path.parent / "images"  # type: ignore[union-attr]  # set above or inside a transaction; mypy cannot see it
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._depth = 0
        self._trans: sa.RootTransaction | None = None
        self.engine = make_engine(self.url)
        try:
            self._conn = self.engine.connect()
            self._db: Db = Db(self._conn)  # type: ignore[assignment]  # None only once closed; every use checks the lock first
            migrate(self)
        except Exception as exc:
            if not is_database_error(exc):
                raise
            self.engine.dispose()
            raise StoreError(f"{self.where} is not a usable EyeScreen database ({_first_line(exc)}): "
                             + ("restore it from a backup or choose another data folder" if self.path else
                                "check that the server runs and the address, user and password are right")) from None

    @property
    def where(self) -> str:
        """The database as messages name it: the file, or the URL without its password."""
        return str(self.path) if self.path is not None else display_url(self.url)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @classmethod
    def open(cls, data_paths: DataPaths, database: str | None = None, image_store: Path | str | None = None,
             clock: Clock | None = None) -> Self:
        """The clinic database and image store of a data folder (created if needed):
        ``database`` (a URL), else ``EYESCREEN_DATABASE_URL``, else the SQLite file
        there; ``image_store``, else ``EYESCREEN_IMAGE_STORE`` (a clinic's shared
        folder, which must exist: a share that is not mounted is said, not recreated
        empty), else ``images`` in the data folder."""
        data_paths.ensure()
        shared = image_store or os.environ.get(IMAGE_STORE_VAR, "").strip()
        if shared and not Path(shared).is_dir():
            raise StoreError(f"the image store {shared} cannot be reached: mount the clinic's shared folder "
                             f"(or correct {IMAGE_STORE_VAR}) and start again")
        return cls(database_url(database, data_paths.database), Path(shared) if shared else data_paths.image_store,
                   clock=clock)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _now(self) -> str:
        """Now from the store's clock, as the database keeps it (UTC text)."""
        return _utc_text(self.clock.now())

    def now_local(self) -> dt.datetime:
        """Now from the store's clock in this machine's time zone (timezone-aware)."""
        return self.clock.now().astimezone().replace(microsecond=0)

    def today(self) -> dt.date:
        """The clinic's date today (local), from the store's clock: visit days and due dates."""
        return self.clock.now().astimezone().date()

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            if self._db is not None:
                self._conn.close()
                self.engine.dispose()
                self._db = None  # type: ignore[assignment]  # None only once closed; every use checks the lock first

    @property
    def schema_version(self) -> int:
        """The schema level: ``PRAGMA user_version`` of a SQLite file; a server at
        the newest Alembic revision reports :data:`schema.SCHEMA_VERSION`."""
        with self._lock:
            return schema_level(self)

    @contextmanager
    def transaction(self) -> Iterator[Self]:
        """Group several calls into one commit (all or nothing), e.g. registering
        the patients of a batch; the calls inside join it."""
        with self._tx():
            yield self

    @contextmanager
    def _tx(self) -> Iterator[Db]:
        """One write transaction (re-entrant: nested calls join the outer one)."""
        with self._lock:
            if self._db is None:
                raise StoreError("the clinic database is closed")
            outer = self._depth == 0
            if outer:
                self._conn.eyescreen_write = True  # type: ignore[attr-defined]  # read by the SQLite begin hook
                try:
                    self._end_read()
                    self._trans = self._conn.begin()
                    if self.dialect == "postgresql":   # writers take turns, as SQLite's BEGIN IMMEDIATE makes them
                        self._conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})")
                except (sa.exc.DBAPIError, sa.exc.PendingRollbackError) as exc:
                    raise driver_error(exc, self._conn) from None
                finally:
                    self._conn.eyescreen_write = False  # type: ignore[attr-defined]  # our own flag on the SQLAlchemy connection (engine.begin reads it)
            self._depth += 1
            try:
                yield self._db
            except BaseException:
                self._depth -= 1
                if outer:
                    try:
                        self._trans.rollback()  # type: ignore[union-attr]  # set above or inside a transaction; mypy cannot see it
                    except sa.exc.DBAPIError:   # the connection is gone: nothing to roll back
                        log.warning("could not roll back on %s", self.where)
                raise
            self._depth -= 1
            if outer:
                try:
                    if self.dialect == "postgresql":   # other workstations' windows hear of it at commit
                        self._conn.exec_driver_sql(f"NOTIFY {CHANGE_CHANNEL}")
                    self._trans.commit()  # type: ignore[union-attr]  # set above or inside a transaction; mypy cannot see it
                except (sa.exc.DBAPIError, sa.exc.PendingRollbackError) as exc:
                    raise driver_error(exc, self._conn) from None

    def watch_changes(self, on_change: Callable[[], None]) -> "ChangeWatcher":
        """Call ``on_change()`` (on a background thread) whenever another connection
        or workstation commits a change; stop the returned watcher when done."""
        from .notify import ChangeWatcher

        return ChangeWatcher(self.url, on_change)

    def _end_read(self) -> None:
        """End a read transaction a statement began outside ``_tx`` (or a broken one)."""
        if self._conn.in_transaction():
            try:
                self._conn.commit()
            except (sa.exc.DBAPIError, sa.exc.PendingRollbackError):
                self._conn.rollback()

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._lock:
            if self._db is None:
                raise StoreError("the clinic database is closed")
            try:
                rows = self._db.execute(sql, params).fetchall()
            except BaseException:
                if self._depth == 0 and self._conn.in_transaction():
                    try:   # a failed read must not leave an aborted transaction behind
                        self._conn.rollback()
                    except sa.exc.DBAPIError:
                        pass
                raise
            if self._depth == 0:
                try:
                    self._end_read()
                except (sa.exc.DBAPIError, sa.exc.PendingRollbackError) as exc:
                    raise driver_error(exc, self._conn) from None
            return rows

    def _meta(self, key: str) -> str | None:
        """A value the store keeps in ``store_meta`` (None when unset): the one read of
        that table, for the repair watermark, the applied operating point and the
        applied photo-quality threshold."""
        rows = self._query("SELECT value FROM store_meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def _meta_int(self, key: str, default: int = 0) -> int:
        """An integer the store keeps in ``store_meta`` (``default`` when unset)."""
        value = self._meta(key)
        return int(value) if value is not None else default

    def _set_meta(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO store_meta (key, value) VALUES (?, ?) "
                       "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))

    _person: "Person | None" = None
    _acting: threading.local | None = None

    @property
    def person(self) -> "Person | None":
        """The signed-in person every change is made as (:mod:`.accounts`); None: nobody,
        which a database without accounts allows and one with accounts refuses. A
        thread inside :meth:`acting_as` sees its own person instead."""
        acting = self._acting
        return getattr(acting, "person", self._person) if acting is not None else self._person

    @person.setter
    def person(self, value: "Person | None") -> None:
        self._person = value

    @contextmanager
    def acting_as(self, person: "Person | None") -> Iterator[None]:
        """Make this thread's changes as ``person`` whoever signs in meanwhile: a batch
        keeps running under the person who started it while the window switches person."""
        if self._acting is None:
            self._acting = threading.local()
        previous = getattr(self._acting, "person", _UNSET)
        self._acting.person = person
        try:
            yield
        finally:
            if previous is _UNSET:
                del self._acting.person
            else:
                self._acting.person = previous

    def _who(self, user: str | None) -> str:
        """Whom a change names (``created_by``, the audit's user): the signed-in person,
        else ``user``, else the operating-system user (a database without accounts)."""
        return self.person.name if self.person is not None else (user or default_user())

    def _has_accounts(self) -> bool:
        """Whether accounts have started on this database (the first admin exists)."""
        return bool(self._query("SELECT 1 FROM people LIMIT 1"))

    def require(self, action: "Action") -> None:
        """Refuse ``action`` unless the signed-in person's roles allow it (:data:`roles.PERMISSIONS`);
        a database without accounts allows everything, as before accounts existed."""
        from .accounts import check_allowed

        check_allowed(self, action)

    def _audit(self, db: Db, user: str | None, action: str, entity: str,
               details: dict[str, Any] | None = None) -> None:
        """Chain one audit entry (:mod:`.chain`) in the caller's transaction: the signed-in
        person when there is one, else ``user`` or the operating-system user."""
        from .chain import BEFORE_ACCOUNTS, append

        signed_in = self.person is not None
        append(db, self.dialect, {
            "at": self._now(),
            "user": self._who(user),
            "action": action, "entity": entity,
            "details": json.dumps(details or {}, sort_keys=True, default=str),
            "workstation": socket.gethostname() or "unknown",
            "era": "" if signed_in or self._has_accounts() else BEFORE_ACCOUNTS,
        })
