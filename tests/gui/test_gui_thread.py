"""Issue 12, item 13: the GUI thread only paints. Photographs of a reopened
visit are decoded, and patient documents built and rasterised, on the one
background helper (``worker.run_in_background``)."""

from __future__ import annotations

import threading


from eyescreen_desktop.core.records import Eye
from eyescreen_desktop.gui import main_window
from eyescreen_desktop.gui.worker import run_in_background

from .clinic_fixtures import filled_store, store  # noqa: F401 - fixtures

WAIT_MS = 60_000


def _screen(qtbot, win, model_dir, patient_id, paths):
    if not win.engine.ready:
        with qtbot.waitSignal(win.engine.modelReady, timeout=WAIT_MS):
            win.start(model_dir)
    qtbot.keyClicks(win.patient_panel.id_edit, patient_id)
    with qtbot.waitSignal(win.engine.encounterSaved, timeout=WAIT_MS) as saved:
        win.screen_paths(paths)
    return saved.args[1]


def test_background_helper_runs_off_the_gui_thread_and_answers_on_it(qtbot):
    where = []
    with qtbot.waitCallback(timeout=WAIT_MS) as done:
        run_in_background(lambda: where.append(threading.current_thread()) or 42,
                          lambda value: done((value, threading.current_thread())))
    value, answered_on = done.args[0]
    assert value == 42 and where[0] is not threading.main_thread() and answered_on is threading.main_thread()
    with qtbot.waitCallback(timeout=WAIT_MS) as failed:
        run_in_background(lambda: 1 / 0, lambda _v: None, failed)
    assert "ZeroDivisionError" in failed.args[0]


def test_reopening_a_visit_decodes_its_photos_off_the_gui_thread(qtbot, window, urgent_model_dir, good_photo,
                                                                  monkeypatch):
    summary = _screen(qtbot, window, urgent_model_dir, "T100", [good_photo])
    window.next_patient()
    threads, real = [], main_window.display_photo
    monkeypatch.setattr(main_window, "display_photo", lambda r: (threads.append(threading.current_thread()), real(r))[1])
    with qtbot.waitSignal(window.encounterOpened, timeout=WAIT_MS):
        window.queues.encounterActivated.emit(summary.encounter_id)
        assert window.result_view.banner.text() == "Opening the visit…"
    assert threads and all(t is not threading.main_thread() for t in threads)
    card = window.result_view.cards[Eye.LEFT]
    assert card.shown is not None and not card.photo.pixmap().isNull()
    assert window.patient_panel.patient().patient_id == "T100" and window.patient_panel.locked


def test_next_patient_while_a_visit_opens_ignores_the_late_answer(qtbot, window, urgent_model_dir, good_photo):
    summary = _screen(qtbot, window, urgent_model_dir, "T101", [good_photo])
    window.next_patient()
    window.queues.encounterActivated.emit(summary.encounter_id)
    window.next_patient()                                   # the nurse moved on before it was read
    with qtbot.assertNotEmitted(window.encounterOpened, wait=1500):
        pass
    assert window.patient_panel.patient() is None and window.result_view.results() == []


def test_queues_are_re_read_off_the_gui_thread_after_a_result(qtbot, window, urgent_model_dir, good_photo,
                                                              monkeypatch):
    threads, real = [], window.store.queue_view_page
    monkeypatch.setattr(window.store, "queue_view_page", lambda *a, **k: (threads.append(threading.current_thread()),
                                                                          real(*a, **k))[1])
    with qtbot.waitSignal(window.queues.refreshed, timeout=WAIT_MS):
        summary = _screen(qtbot, window, urgent_model_dir, "T102", [good_photo])
    assert threads and all(t is not threading.main_thread() for t in threads)
    assert window.queues.models[summary.queue].row_of(summary.encounter_id) == 0


# --------------------------------------------------------------------------- issue 20, defect 6: no database wait on the GUI thread


HELD_S = 20   # a held call gives up after this long, so a failing test ends instead of hanging


class _HeldStore:
    """The clinic store with some calls held, as a batch holding SQLite's write lock
    holds every other writer: a held call waits until the GUI thread releases it
    (from a timer, so only an event loop that keeps running can), then goes on."""

    def __init__(self, store, held: tuple[str, ...]):
        self._store, self._held = store, held
        self.waiting = threading.Event()     # a held call is waiting
        self.release = threading.Event()     # set on the GUI thread
        self.released: list[bool] = []       # per held call: released by the GUI thread in time
        self.threads: list[threading.Thread] = []

    def __getattr__(self, name):
        value = getattr(self._store, name)
        if name not in self._held:
            return value

        def held(*args, **kwargs):
            self.threads.append(threading.current_thread())
            self.waiting.set()
            self.released.append(self.release.wait(HELD_S))
            return value(*args, **kwargs)

        return held


def _release_when_waiting(qtbot, held: _HeldStore):
    """A GUI-thread timer that lets the held call go on once it waits."""
    from PySide6.QtCore import QTimer

    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(lambda: held.release.set() if held.waiting.is_set() else None)
    timer.start()
    return timer


def test_a_queue_change_waiting_for_the_database_does_not_freeze_the_window(qtbot, filled_store):
    """'Mark closed' while a batch holds the database: the write waits off the GUI
    thread, the window keeps processing events, and the change then shows."""
    from PySide6.QtCore import Qt

    from eyescreen_desktop.core.records import Queue
    from eyescreen_desktop.gui.queues import QueuesWidget

    from .clinic_fixtures import TODAY

    clinic, ids = filled_store
    held = _HeldStore(clinic, ("set_state",))
    widget = QueuesWidget(held, user="nurse.ada", today=lambda: TODAY)
    qtbot.addWidget(widget)
    assert widget.select(ids["P002"])
    timer = _release_when_waiting(qtbot, held)
    with qtbot.waitSignal(widget.changed, timeout=WAIT_MS):
        qtbot.mouseClick(widget.buttons["closed"], Qt.MouseButton.LeftButton)
    timer.stop()
    assert held.released == [True]                       # the GUI thread ran its timer while the write waited
    assert held.threads[0] is not threading.main_thread()
    assert clinic.encounter_summary(ids["P002"]).state == "closed"
    assert widget.models[Queue.URGENT].row_of(ids["P002"]) == -1   # and the queues show it


def test_a_refused_queue_change_is_said_and_the_queues_re_read(qtbot, filled_store, monkeypatch):
    """Another workstation changed the visit first: the refusal (raised off the GUI
    thread now) is still shown, and nothing is reported as changed."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QMessageBox

    from eyescreen_desktop.gui.queues import QueuesWidget

    from .clinic_fixtures import TODAY

    clinic, ids = filled_store
    widget = QueuesWidget(clinic, user="nurse.ada", today=lambda: TODAY)
    qtbot.addWidget(widget)
    assert widget.select(ids["P002"])
    clinic.set_state(ids["P002"], "referred", "elsewhere")      # the row on show is now out of date
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "open", lambda box: shown.append(box.windowTitle()))
    with qtbot.assertNotEmitted(widget.changed), qtbot.waitSignal(widget.refreshed, timeout=WAIT_MS):
        qtbot.mouseClick(widget.buttons["closed"], Qt.MouseButton.LeftButton)
    assert shown == ["Changed on another workstation"]
    assert clinic.encounter_summary(ids["P002"]).state == "referred"


def test_another_workstations_change_is_read_off_the_gui_thread(qtbot, tmp_path, monkeypatch):
    """The watcher's refresh reads the queues on the background helper (it called
    the synchronous ``refresh`` before)."""
    import datetime as dt

    from eyescreen_desktop.core.records import Queue
    from eyescreen_desktop.core.store import ClinicStore
    from eyescreen_desktop.gui.queues import QueuesWidget

    from .clinic_fixtures import TODAY, add_encounter, graded_eye

    db = tmp_path / "clinic.sqlite3"
    with ClinicStore(db) as mine, ClinicStore(db) as theirs:
        widget = QueuesWidget(mine)
        qtbot.addWidget(widget)
        threads, real = [], mine.queue_view_page
        monkeypatch.setattr(mine, "queue_view_page",
                            lambda *a, **k: (threads.append(threading.current_thread()), real(*a, **k))[1])
        watcher = widget.follow_other_workstations()
        try:
            before = widget.models[Queue.URGENT].total
            add_encounter(theirs, "ELSEWHERE", "Other Room", (graded_eye(Eye.RIGHT, 4), graded_eye(Eye.LEFT, 0)),
                          dt.datetime.combine(TODAY, dt.time(9)))
            qtbot.waitUntil(lambda: widget.models[Queue.URGENT].total == before + 1, timeout=30_000)
        finally:
            watcher.stop()
    assert threads and all(t is not threading.main_thread() for t in threads)


def test_a_patient_search_waiting_for_the_database_does_not_freeze_the_window(qtbot, window):
    """The search box asks the database on the background helper; the answer
    then shows, and an answer to an older text is dropped."""
    import datetime as dt

    from eyescreen_desktop.core.records import Patient

    window.store.upsert_patient(Patient("P777", "Katherine Johnson", dt.date(1951, 8, 26)))
    panel = window.patient_panel
    held = _HeldStore(window.store, ("find_patients",))
    panel.store = held
    timer = _release_when_waiting(qtbot, held)
    qtbot.keyClicks(panel.search_edit, "johnson")
    with qtbot.waitSignal(panel.searched, timeout=WAIT_MS):
        panel.search()
    timer.stop()
    assert held.released and all(held.released)
    assert all(t is not threading.main_thread() for t in held.threads)
    assert panel.matches.count() == 1 and "P777" in panel.matches.item(0).text()
