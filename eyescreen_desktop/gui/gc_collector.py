"""Python's cyclic garbage collection, run only on the GUI thread.

The automatic collector runs on whichever thread happens to allocate when a
generation's count crosses its threshold: often the model worker. A cycle that
holds a Qt object (a widget's Python wrapper, a slot's closure over a window) is
then destroyed on that thread, which Qt does not allow; the window tests saw it
as "Fatal Python error" and segfaults. So the app turns the automatic collector
off and collects from a QTimer on the GUI thread instead: the young generation
ten times a second, the middle one every second, the whole heap rarely. This is
the ``GarbageCollector`` recipe qutebrowser, calibre and TortoiseHg use
(pydev.blogspot.com, "Should Python garbage collector be disabled?", 2014;
PySide bug PYSIDE-79), kept small. Garbage made between two ticks just waits for
the next one.

Each collection blocks the window for as long as it takes, and that grows with
what it has to look at: with ticks 2 s apart, the objects a folder batch's worker
made in those 2 s (result rows, the slips' reportlab objects) took 30-135 ms to
collect, the longest freezes of the window during a batch. Short ticks keep each
collection small. What the start-up made (modules, the model, the widgets) lives
as long as the app: once the model is loaded it is frozen (:func:`freeze_startup`),
so the rare full collection no longer walks it (about 100,000 objects, 150 ms).
"""

from __future__ import annotations

import gc
import logging
import time

from PySide6.QtCore import QCoreApplication, QObject, QTimer

log = logging.getLogger(__name__)

OBJECT_NAME = "eyescreen-garbage-collector"
INTERVAL_MS = 100    # generation 0 each tick: what was made in 0.1 s, a millisecond or so
GEN1_EVERY = 10      # ticks: every second
GEN2_EVERY = 3000    # ticks: a full collection every 5 min


class GarbageCollector(QObject):
    """Collects on the thread it lives on (the GUI thread) while started; Python's
    automatic collection is off meanwhile."""

    def __init__(self, parent: QObject, interval_ms: int = INTERVAL_MS) -> None:
        super().__init__(parent)
        self.setObjectName(OBJECT_NAME)
        self._ticks = 0
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.collect)

    def start(self) -> None:
        gc.disable()
        self._timer.start()

    def stop(self) -> None:
        """Collect everything here, now, then hand collection back to Python."""
        self._timer.stop()
        gc.collect()
        gc.enable()

    def collect(self) -> int:
        """One tick: generation 0, and every so often an older generation too."""
        self._ticks += 1
        generation = 2 if self._ticks % GEN2_EVERY == 0 else 1 if self._ticks % GEN1_EVERY == 0 else 0
        t0 = time.perf_counter()
        found = gc.collect(generation)
        if found:
            log.debug("gc generation %d: %d objects in %.1f ms", generation, found,
                      (time.perf_counter() - t0) * 1000)
        return found


def freeze_startup() -> None:
    """Once the window is up and its model loaded: collect the young garbage, then
    move every object still alive (modules, the model, the widgets: the app's
    lifetime) out of the collector's sight, so a full collection walks only what
    was made since. Only while the GUI-thread collector runs (never in a process
    that collects automatically); the first call of a process does it."""
    global _frozen
    if _frozen or gc.isenabled():
        return
    _frozen = True
    gc.collect(1)
    gc.freeze()


_frozen = False


def install_garbage_collector(app: QCoreApplication) -> GarbageCollector:
    """Start the app's collector (made once, a child of ``app``); call on the GUI thread."""
    found = app.findChild(QObject, OBJECT_NAME)
    collector = found if isinstance(found, GarbageCollector) else GarbageCollector(app)
    collector.start()
    return collector
