"""The main window: shown before the model is loaded, a photograph screened
through the window lands the patient in the right queue, drag and drop,
keyboard shortcuts, reopening a visit from the queues, clear messages, the
crash hook, settings, and the real launch (window on screen fast, no
TensorFlow on the GUI thread)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import QApplication

from eyescreen_desktop.core.records import Eye, Queue, Status
from eyescreen_desktop.gui.app import build_window, install_crash_handler, qt_message_handler
from eyescreen_desktop.domain.eyes import eye_from_name
from eyescreen_desktop.gui.settings import Settings

WAIT_MS = 60_000
ROOT = Path(__file__).resolve().parents[2]


def _start(qtbot, win, model_dir):
    with qtbot.waitSignal(win.engine.modelReady, timeout=WAIT_MS):
        win.start(model_dir)


def _enter_patient(qtbot, win, patient_id, name=""):
    qtbot.keyClicks(win.patient_panel.id_edit, patient_id)
    if name:
        qtbot.keyClicks(win.patient_panel.name_edit, name)


def _screen(qtbot, win, paths):
    with qtbot.waitSignal(win.engine.encounterSaved, timeout=WAIT_MS) as saved:
        assert win.screen_paths(paths) is not None
    return saved.args[1]


def test_window_is_usable_while_the_model_loads(qtbot, window, urgent_model_dir):
    assert "EyeScreen" in window.windowTitle()
    window.start(urgent_model_dir)
    assert window.model_status.text().startswith("Loading model")
    assert window.isVisible() and window.patient_panel.isEnabled()
    qtbot.waitUntil(lambda: window.engine.ready, timeout=WAIT_MS)
    assert window.model_status.text() == "Model: fixed-urgent 1.0.0"


def test_gradable_photo_puts_the_patient_in_urgent(qtbot, window, urgent_model_dir, good_photo):
    _start(qtbot, window, urgent_model_dir)
    _enter_patient(qtbot, window, "P100", "Ada Lovelace")
    summary = _screen(qtbot, window, [good_photo])
    assert summary.queue is Queue.URGENT and summary.patient.name == "Ada Lovelace"
    view = window.result_view
    assert view.banner.text().startswith("URGENT REFERRAL") and view.banner.property("queue") == "urgent"
    assert summary.due_date.strftime("%d %B %Y") in view.detail.text()
    left = view.cards[Eye.LEFT]                       # P001_L.jpg: the eye comes from the name
    assert left.shown.result.status is Status.OK and left.verdict.text() == "Signs of sight-threatening retinopathy"
    assert "above this clinic's urgent referral threshold" in left.detail.text() and not left.photo.pixmap().isNull()
    qtbot.waitUntil(lambda: window.queues.tabs.tabText(0) == "Urgent (1)", timeout=WAIT_MS)  # read off the GUI thread
    assert window.queues.select(summary.encounter_id) and window.queues.current_queue() is Queue.URGENT
    assert window.queues.tabs.tabText(0).startswith("Urgent (1)")
    assert window.patient_panel.id_edit.isReadOnly()   # fixed for this visit


def test_ungradable_photo_puts_the_patient_in_review_with_retake_advice(qtbot, window, urgent_model_dir,
                                                                        blurred_photo):
    _start(qtbot, window, urgent_model_dir)
    _enter_patient(qtbot, window, "P900")
    summary = _screen(qtbot, window, [blurred_photo])
    assert summary.queue is Queue.REVIEW
    card = window.result_view.cards[Eye.RIGHT]
    assert card.verdict.text() == "Cannot be graded" and "out of focus" in card.detail.text()
    assert "retake" in card.advice.text().lower()
    assert window.result_view.banner.text().startswith("REVIEW NEEDED")
    assert [s.patient.patient_id for s in window.store.encounters(queue=Queue.REVIEW)] == ["P900"]
    assert window.store.encounters(queue=Queue.ANNUAL) == []


def test_heat_map_toggle_changes_the_picture(qtbot, window, urgent_model_dir, good_photo):
    _start(qtbot, window, urgent_model_dir)
    _enter_patient(qtbot, window, "P101")
    _screen(qtbot, window, [good_photo])
    card = window.result_view.cards[Eye.LEFT]
    plain = card.photo.pixmap().toImage()
    assert window.result_view.heatmap_box.isEnabled()
    window.actions["heatmap"].trigger()
    assert window.result_view.heatmap_box.isChecked()
    assert card.photo.pixmap().toImage() != plain
    window.result_view.set_heatmap(False)
    assert card.photo.pixmap().toImage() == plain


def test_dropped_files_are_screened(qtbot, window, urgent_model_dir, good_photo):
    _start(qtbot, window, urgent_model_dir)
    _enter_patient(qtbot, window, "P102")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(good_photo))])
    enter = QDragEnterEvent(QPoint(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.engine.encounterSaved, timeout=WAIT_MS) as saved:
        QApplication.sendEvent(window, drop)
    assert saved.args[1].patient.patient_id == "P102"


def test_photo_without_a_patient_asks_who_it_is(qtbot, window, good_photo):
    assert window.screen_paths([good_photo]) is None
    assert window.messages.history[-1].title == "Who is this?"
    assert "patient ID" in window.messages.history[-1].text
    assert not window.engine.busy


def test_keyboard_shortcuts(qtbot, window, urgent_model_dir, good_photo):
    shortcuts = {k: window.actions[k].shortcut() for k in ("open", "right", "left", "next")}
    assert shortcuts["open"] == QKeySequence(QKeySequence.StandardKey.Open)
    assert shortcuts["right"] == QKeySequence("F5") and shortcuts["left"] == QKeySequence("F6")
    assert shortcuts["next"] == QKeySequence("Ctrl+N")
    _start(qtbot, window, urgent_model_dir)
    _enter_patient(qtbot, window, "P103")
    _screen(qtbot, window, [good_photo])
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
    qtbot.keyClick(window.result_view, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert window.next_box is not None            # one eye only: warned first (issue 12 item 3)
    window.next_anyway_button.click()
    assert window.patient_panel.patient() is None and window.encounter_id is None
    assert window.result_view.results() == [] and not window.patient_panel.id_edit.isReadOnly()


def test_visit_reopened_from_the_queues_takes_more_photos(qtbot, window, urgent_model_dir, good_photo,
                                                          blurred_photo):
    _start(qtbot, window, urgent_model_dir)
    _enter_patient(qtbot, window, "P104", "Grace Hopper")
    first = _screen(qtbot, window, [blurred_photo])
    window.next_patient()
    with qtbot.waitSignal(window.encounterOpened, timeout=WAIT_MS):   # read and decoded off the GUI thread
        window.queues.encounterActivated.emit(first.encounter_id)
    assert window.patient_panel.patient().name == "Grace Hopper" and window.patient_panel.id_edit.isReadOnly()
    assert window.result_view.cards[Eye.RIGHT].verdict.text() == "Cannot be graded"
    second = _screen(qtbot, window, [good_photo])
    assert second.encounter_id == first.encounter_id and second.queue is Queue.URGENT
    assert len(window.store.encounters()) == 1


def test_missing_model_is_said_and_the_window_stays_usable(qtbot, window, tmp_path):
    with qtbot.waitSignal(window.engine.modelFailed, timeout=WAIT_MS):
        window.start(tmp_path / "no-model")
    assert window.model_status.text().startswith("Model not loaded")
    message = window.messages.history[-1]
    assert message.level == "error" and "no-model" in message.text and "--model" in message.text
    assert window.patient_panel.isEnabled()


def test_uncaught_exception_is_logged_and_shown(window, caplog, monkeypatch):
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    hook = install_crash_handler(window.messages, Path("/tmp/eyescreen.log"))
    try:
        raise ZeroDivisionError("boom")
    except ZeroDivisionError:
        with caplog.at_level(logging.CRITICAL):
            hook(*sys.exc_info())
    assert "boom" in caplog.text
    shown = window.messages.history[-1]
    assert shown.title == "Unexpected problem" and "/tmp/eyescreen.log" in shown.text


def test_qt_messages_go_to_the_python_log(caplog):
    from PySide6.QtCore import QtMsgType

    with caplog.at_level(logging.WARNING, logger="qt"):
        qt_message_handler(QtMsgType.QtWarningMsg, SimpleNamespace(file="x.cpp", line=3), "a qt warning")
    assert caplog.records[-1].name == "qt" and "a qt warning" in caplog.text


def test_settings_are_typed_with_defaults_and_geometry_is_kept_apart(qtbot, tmp_path, data_dir):
    settings = Settings(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    assert settings.protocol == "icdr-ada" and settings.page_size == "A4" and settings.show_heatmap is False
    settings.page_size = "Letter"
    settings.show_heatmap = True
    again = Settings(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    assert again.page_size == "Letter" and again.show_heatmap is True
    with pytest.raises(ValueError):
        again.page_size = "A3"
    win, store = build_window(data_dir, dialogs=False)
    qtbot.addWidget(win)
    win.show()
    win.resize(700, 500)
    saved = win.saveGeometry()
    win.close()
    store.close()
    prefs = data_dir / "settings.ini"
    assert (data_dir / "window.ini").is_file()
    assert not prefs.exists() or "geometry" not in prefs.read_text()
    win2, store2 = build_window(data_dir, dialogs=False)
    qtbot.addWidget(win2)
    assert win2.window_state.geometry() == saved   # restored from window.ini on the next start
    win2.close()
    store2.close()


def test_eye_from_name():
    assert eye_from_name(Path("P001_R.jpg")) is Eye.RIGHT and eye_from_name(Path("x-OS.png")) is Eye.LEFT
    assert eye_from_name(Path("left.jpg")) is Eye.LEFT and eye_from_name(Path("fundus.jpg")) is Eye.UNKNOWN


def test_launch_shows_the_window_then_loads_the_model_without_tensorflow(tmp_path, urgent_onnx_model_dir):
    """The real ``eyescreen gui`` process: window painted, then the model loaded, with
    no TensorFlow. How fast is measured by `eyescreen bench` (window_shown_s), not here."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run([sys.executable, "-m", "eyescreen_desktop", "gui", "--data-dir", str(tmp_path / "d"),
                          "--model", str(urgent_onnx_model_dir), "--smoke"],
                         capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    fields = dict(part.split("=", 1) for line in out.stdout.split("\n") for part in line.split(" ", 1)[:1] if "=" in part)
    assert float(fields["window_shown_at"]) <= float(fields["model_done_at"])   # shown first, model after
    assert "tensorflow_loaded=False" in out.stdout
    assert "reportlab_loaded=False" in out.stdout   # the grading tab (slips) is built when first shown
    assert "gc_automatic=False" in out.stdout   # cycles collected on the GUI thread only (gc_collector)
    assert "Model: fixed-urgent 1.0.0" in out.stdout
    assert (tmp_path / "d" / "logs" / "eyescreen.log").is_file()


def test_patient_on_record_is_found_and_filled_in(qtbot, window):
    import datetime as dt

    from eyescreen_desktop.core.records import Patient

    window.store.upsert_patient(Patient("P777", "Katherine Johnson", dt.date(1951, 8, 26), "female", "type 2", 7))
    panel = window.patient_panel
    qtbot.keyClicks(panel.search_edit, "johnson")
    qtbot.waitUntil(lambda: panel.matches.count() == 1 and panel.matches.isVisible())
    assert "P777" in panel.matches.item(0).text()
    panel.matches.itemClicked.emit(panel.matches.item(0))
    patient = panel.patient()
    assert patient == Patient("P777", "Katherine Johnson", dt.date(1951, 8, 26), "female", "type 2", 7)
    qtbot.keyClicks(panel.search_edit, "nobody")
    with qtbot.waitSignal(panel.searched):   # answered off the GUI thread (issue 20, defect 6)
        panel.search()
    assert "No patient found" in panel.matches.item(0).text()


def test_settings_dialog_writes_the_slip_header(qtbot, window, urgent_model_dir):
    from eyescreen_desktop.gui.settings_dialog import SettingsDialog

    _start(qtbot, window, urgent_model_dir)
    dialog = SettingsDialog(window.settings, window.engine.card, window)
    qtbot.addWidget(dialog)
    # the card's only point is its shipped default, offered once in words (issue 24)
    assert [dialog.operating_point.itemData(i) for i in range(dialog.operating_point.count())] == [""]
    assert dialog.operating_point.itemText(0).startswith("shipped")
    dialog.clinic_name.setText("Riverside Diabetes Clinic")
    dialog.page_size.setCurrentText("Letter")
    dialog.protocol.setCurrentIndex(dialog.protocol.findData("nhs-dess"))
    dialog.accept()
    assert window.settings.protocol == "nhs-dess"
    slip = window.settings.slip_settings()
    assert slip.clinic_name == "Riverside Diabetes Clinic" and slip.page_size == "Letter"


def test_dropped_folder_goes_to_the_batch_panel(qtbot, window, good_photo):
    assert window.batch_panel is not None   # the tab after Queues (Screening, Eye check, Queues, Batch)
    assert window.tabs.indexOf(window.batch_panel) == window.tabs.indexOf(window.queues) + 1
    _enter_patient(qtbot, window, "P105")
    assert window.screen_paths([good_photo.parent]) is None          # a folder is not one patient's eyes
    assert window.tabs.currentWidget() is window.batch_panel
    assert window.batch_panel.folder_edit.text() == str(good_photo.parent)
    assert not window.engine.busy                                    # nothing started by itself


def test_tabs_nobody_sees_at_start_are_built_when_first_shown_with_their_rows(qtbot, window):
    """Grading and Quality assurance are built on first show (the window paints sooner);
    the built tab takes the placeholder's place, title, tip and enabled state, and
    reads its rows when it opens."""
    from tests.core.grading_fixtures import screened

    tabs = window.tabs
    assert window.lazy_tabs.built("grading") is None and window.lazy_tabs.built("qa") is None
    titles = [tabs.tabText(i) for i in range(tabs.count())]
    index = tabs.indexOf(window.tab_page("grading"))
    tabs.setTabEnabled(index, False)          # as gui.access does for someone who may not grade
    tabs.setTabEnabled(index, True)
    screened(window.store, "P003", 2, 0)
    window.actions["grading"].trigger()       # View > Grading (Ctrl+number)
    panel = window.lazy_tabs.built("grading")
    assert panel is window.grading and tabs.currentWidget() is panel and tabs.indexOf(panel) == index
    assert [tabs.tabText(i) for i in range(tabs.count())] == titles
    qtbot.waitUntil(lambda: panel.worklist.count() == 1)
    assert "P003" in panel.worklist.item(0).text()
    qa_index = tabs.indexOf(window.tab_page("qa"))
    tabs.setTabEnabled(qa_index, False)
    qa = window.qa_view                       # asked for by code: built, not shown, still disabled
    assert tabs.indexOf(qa) == qa_index and not tabs.isTabEnabled(qa_index) and tabs.currentWidget() is panel


def test_the_sign_in_page_is_built_only_when_the_window_first_locks(qtbot, window):
    """A database without accounts never builds the sign-in page (one less page before
    the first paint); the window's pages are the desk alone until then."""
    access = window.access
    assert access._lock_page is None and not access.locked
    assert window.centralWidget() is access.pages and access.pages.count() == 1
    page = access.lock_page                   # built on demand (gui.access.lock), once
    assert access.pages.count() == 2 and access.lock_page is page and not access.locked
