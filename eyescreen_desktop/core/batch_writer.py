"""The batch's writer thread: a result's commit (a copy into the image store, a transaction
with fsync) runs beside the model, which goes on grading meanwhile, and the first failure
reaches the batch's own thread instead of vanishing with the writer."""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any, Callable

log = logging.getLogger(__name__)


class _Writer:
    """Runs calls in order on one background thread (at most ``depth`` waiting).
    The first failure stops the rest and is raised in the caller's thread, at
    its next ``put`` or on leaving the ``with`` block, which waits for the rest."""

    def __init__(self, depth: int):
        self._jobs: queue.Queue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = queue.Queue(max(1, depth))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="eyescreen-store-writer", daemon=True)

    def __enter__(self) -> "_Writer":
        self._thread.start()
        return self

    def put(self, fn: Callable[..., Any], *args: Any) -> None:
        self._raise()
        self._jobs.put((fn, args))

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        self._jobs.put(None)
        self._thread.join()
        if exc_type is None:
            self._raise()
        elif self._error is not None:
            log.error("saving a result failed as well: %s", self._error)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            if self._error is None:
                try:
                    job[0](*job[1])
                except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                    self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error
