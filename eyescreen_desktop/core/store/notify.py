"""Other workstations' changes, seen within a couple of seconds.

A :class:`ChangeWatcher` calls its callback (on its own thread) whenever another
connection committed a change to the clinic database: on PostgreSQL every write
transaction of the store sends ``NOTIFY eyescreen_changes`` (delivered at commit)
and the watcher ``LISTEN``s on a connection of its own; on SQLite the watcher
polls ``PRAGMA data_version``, which moves whenever another connection commits.
The window's queues subscribe and refresh; Qt-free, the GUI marshals the call
to its own thread.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from typing import Callable

import sqlalchemy as sa

from .engine import sqlite_file

log = logging.getLogger(__name__)

CHANNEL = "eyescreen_changes"
POLL_S = 1.0
"""How often the watcher looks (seconds): changes show within about twice this."""


class ChangeWatcher:
    """Calls ``on_change()`` after other connections commit; :meth:`stop` ends it."""

    def __init__(self, url: str, on_change: Callable[[], None], poll_s: float = POLL_S):
        self.url, self.on_change, self.poll_s = url, on_change, poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="eyescreen-change-watcher", daemon=True)
        self._ready = threading.Event()
        self._thread.start()
        self._ready.wait(10)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5 * self.poll_s)

    def _run(self) -> None:
        try:
            if (path := sqlite_file(self.url)) is not None:
                self._poll_sqlite(str(path))
            else:
                self._listen_postgresql()
        except Exception:  # noqa: BLE001 - a watcher never takes the window down; the user can refresh
            log.exception("watching %s for other workstations' changes stopped", sa.engine.make_url(self.url))
        finally:
            self._ready.set()

    def _poll_sqlite(self, path: str) -> None:
        conn = sqlite3.connect(path, check_same_thread=False)
        try:
            seen = conn.execute("PRAGMA data_version").fetchone()[0]
            self._ready.set()
            while not self._stop.wait(self.poll_s):
                now = conn.execute("PRAGMA data_version").fetchone()[0]
                if now != seen:
                    seen = now
                    self.on_change()
        finally:
            conn.close()

    def _listen_postgresql(self) -> None:
        import psycopg

        url = sa.engine.make_url(self.url).set(drivername="postgresql")
        with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            self._ready.set()
            while not self._stop.is_set():
                if any(True for _ in conn.notifies(timeout=self.poll_s, stop_after=1)):
                    self.on_change()
