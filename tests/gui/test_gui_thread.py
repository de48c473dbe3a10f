"""Issue 12, item 13: the GUI thread only paints. Photographs of a reopened
visit are decoded, and patient documents built and rasterised, on the one
background helper (``worker.run_in_background``)."""

from __future__ import annotations

import threading


from eyescreen_desktop.core.records import Eye
from eyescreen_desktop.gui import main_window
from eyescreen_desktop.gui.worker import run_in_background

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
