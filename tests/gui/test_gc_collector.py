"""Cycles holding Qt objects are collected on the GUI thread, never on a worker:
the automatic collector, left on, runs on whichever thread allocates."""

from __future__ import annotations

import gc
import threading

from PySide6.QtCore import QObject, QThread

from eyescreen_desktop.gui import gc_collector


class _Cycle:
    """A reference cycle that owns a QObject, like a slot's closure over a widget;
    records the thread its finaliser runs on."""

    def __init__(self, died_on: list[str]) -> None:
        self.me = self
        self.qobject = QObject()
        self.died_on = died_on

    def __del__(self) -> None:
        self.died_on.append(threading.current_thread().name)


class _Worker(QThread):
    """Makes a cycle, drops it, then allocates enough to cross generation 0's threshold."""

    def __init__(self, died_on: list[str]) -> None:
        super().__init__()
        self.died_on = died_on

    def run(self) -> None:
        threading.current_thread().name = "model-worker"
        _Cycle(self.died_on)
        kept = [[] for _ in range(20 * gc.get_threshold()[0])]   # would trigger a collection here
        del kept


def test_a_cycle_dropped_on_a_worker_thread_is_collected_on_the_gui_thread(qtbot,
                                                                           gui_thread_garbage_collection):
    assert not gc.isenabled()
    gc.collect()   # start from an empty generation 0
    died_on: list[str] = []
    worker = _Worker(died_on)
    worker.start()
    assert worker.wait(30_000)
    assert died_on == []                                    # nothing collected it on the worker
    # the GUI timer did (a tick is 0.1 s now: a generous wait, so a busy machine cannot fail it)
    qtbot.waitUntil(lambda: died_on != [], timeout=max(3 * gc_collector.INTERVAL_MS, 10_000))
    assert died_on == [threading.current_thread().name] == [threading.main_thread().name]


def test_each_tick_collects_young_cycles_and_stop_hands_collection_back(gui_thread_garbage_collection):
    collector = gui_thread_garbage_collection
    died_on: list[str] = []
    _Cycle(died_on)
    collector.collect()
    assert died_on == [threading.main_thread().name]
    collector.stop()
    assert gc.isenabled()
    gc_collector.install_garbage_collector(collector.parent())  # the same collector, started again
    assert not gc.isenabled()


def test_freezing_the_start_up_objects_keeps_them_out_of_later_collections(gui_thread_garbage_collection,
                                                                         monkeypatch):
    """Once the model is loaded the window freezes what start-up made (gc.freeze): a full
    collection then walks only what came after. Once per process, and only while the
    GUI-thread collector runs."""
    monkeypatch.setattr(gc_collector, "_frozen", False)
    long_lived = [[i] for i in range(1000)]   # lists: always tracked by the collector
    before = gc.get_freeze_count()
    gc_collector.freeze_startup()
    assert gc.get_freeze_count() >= before + len(long_lived)
    assert not any(d is long_lived[0] for d in gc.get_objects())   # no longer seen by any collection
    frozen = gc.get_freeze_count()
    made_later = [[i] for i in range(1000)]
    gc_collector.freeze_startup()                                      # the second call does nothing
    assert gc.get_freeze_count() == frozen and any(d is made_later[0] for d in gc.get_objects())


def test_freezing_is_left_alone_where_python_collects_by_itself(monkeypatch):
    monkeypatch.setattr(gc_collector, "_frozen", False)
    enabled = gc.isenabled()
    gc.enable()
    try:
        before = gc.get_freeze_count()
        gc_collector.freeze_startup()
        assert gc.get_freeze_count() == before and not gc_collector._frozen
    finally:
        if not enabled:
            gc.disable()
