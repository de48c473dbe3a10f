"""The clinic database while it opens: the window is painted first.

Opening the store imports SQLAlchemy and Alembic, brings the schema up to date
(after a backup) and repairs unqueued encounters: seconds on a busy clinic
laptop, and more with years of visits. ``eyescreen gui`` therefore shows its
window first and opens the store on the background helper, the status bar
saying so. Until then the window holds an :class:`OpeningStore`, which stands
for the store: every attribute is the opened store's. The window asks nothing
of it before :meth:`start`'s callback (the queues wait for it); a thread that
asks earlier (the worker saving a result, a camera-folder scan) waits until
the store is open, and one that asks before the opening even started opens it
there, so nothing can wait for an opening that never comes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class OpeningStore:
    """A ``ClinicStore`` being opened by ``open_store()`` (which may raise
    ``StoreError`` or ``OSError``, said to staff as they are)."""

    def __init__(self, open_store: Callable[[], Any]) -> None:
        self._open_store = open_store
        self._lock = threading.Lock()     # held while the store opens: askers wait on it
        self._store: Any = None
        self._error = ""
        self._finished = False

    @property
    def opening(self) -> bool:
        """True until the store is open (or could not be opened)."""
        return not self._finished

    def start(self, done: Callable[[str], None]) -> None:
        """Open the store on the background helper; ``done(error)`` then runs on
        the GUI thread, ``error`` empty when the store is open."""
        from .worker import run_in_background

        run_in_background(self._open, done, done)

    def _open(self) -> str:
        with self._lock:
            if not self._finished:
                try:
                    self._store = self._open_store()
                except Exception as exc:   # said to staff by start()'s callback, logged here
                    from ..core.store import StoreError

                    known = isinstance(exc, (StoreError, OSError))
                    log.error("the clinic database could not be opened: %s", exc, exc_info=not known)
                    self._error = str(exc) if known else f"The clinic database could not be opened: {exc}"
                finally:
                    self._finished = True
            return self._error

    def close(self) -> None:
        """Close the store if it was opened (waits for an opening in progress; never opens one)."""
        with self._lock:
            self._finished = True
            self._error = self._error or "the clinic database is closed"
            if self._store is not None:
                self._store.close()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if self._open():
            from ..core.store import StoreError

            raise StoreError(self._error)
        return getattr(self._store, name)
