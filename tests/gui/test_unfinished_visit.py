"""Issue 24 items 1 and 4 at the desk: an eye that could not be photographed never
gives "no referral", and the missing-eye warning says what the banner and the
queue say, once (no second box left over the next patient). Real photographs,
a real SQLite file and the fixed-output models of conftest.py, with dialogs on."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QApplication, QMessageBox

from eyescreen_desktop.core.records import Eye, Queue
from eyescreen_desktop.gui.app import build_window

WAIT_MS = 60_000


def _window(qtbot, data_dir, model_dir):
    win, store = build_window(data_dir, dialogs=True)
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(win.engine.modelReady, timeout=WAIT_MS):
        win.start(model_dir)
    return win, store


@pytest.fixture
def urgent_window(qtbot, data_dir, urgent_model_dir):
    win, store = _window(qtbot, data_dir, urgent_model_dir)
    yield win
    win.close()
    store.close()


@pytest.fixture
def annual_window(qtbot, data_dir, annual_model_dir):
    win, store = _window(qtbot, data_dir, annual_model_dir)
    yield win
    win.close()
    store.close()


def _screen(qtbot, win, paths, patient_id):
    qtbot.keyClicks(win.patient_panel.id_edit, patient_id)
    with qtbot.waitSignal(win.engine.encounterSaved, timeout=WAIT_MS) as saved:
        assert win.screen_paths(paths) is not None
    return saved.args[1]


def _open_boxes() -> list[QMessageBox]:
    return [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]


def test_the_warning_says_what_the_banner_says_and_leaves_no_second_box(qtbot, urgent_window, good_photo):
    win = urgent_window
    summary = _screen(qtbot, win, [good_photo], "WARN1")          # the left eye only, urgent by the model
    assert summary.queue is Queue.URGENT and not summary.complete
    banner = win.result_view.banner.text()
    assert banner.startswith("URGENT REFERRAL")
    win.next_patient()
    box = win.next_box
    assert box is not None and _open_boxes() == [box]            # one message, not two
    text = box.text()
    assert "stays in review" not in text and "URGENT REFERRAL" in text and "right eye" in text
    win.next_anyway_button.click()
    qtbot.waitUntil(lambda: not _open_boxes())                    # nothing left over the next patient
    assert win.patient_panel.patient() is None
    assert any("right eye" in m.text for m in win.messages.history)   # still logged for the record


def test_a_one_eyed_review_visit_is_warned_as_review(qtbot, annual_window, good_photo):
    win = annual_window
    _screen(qtbot, win, [good_photo], "WARN2")
    win.next_patient()
    assert _open_boxes() == [win.next_box] and "stays in review" in win.next_box.text()
    win.next_box.reject()
    qtbot.waitUntil(lambda: not _open_boxes())


def test_an_eye_that_could_not_be_photographed_is_review_with_an_exam_in_person(qtbot, annual_window,
                                                                                 good_photo):
    win = annual_window
    _screen(qtbot, win, [good_photo], "UNEX1")
    win.result_view.cards[Eye.RIGHT].missing_button.click()
    dialog = win.missing_dialog
    dialog.reason_box.setCurrentIndex(dialog.reason_box.findData("not_photographable"))
    with qtbot.waitSignal(win.engine.encounterSaved, timeout=WAIT_MS) as saved:
        dialog.accept()
    summary = saved.args[1]
    assert summary.queue is Queue.REVIEW and summary.complete
    banner = win.result_view.banner.text()
    assert "NO REFERRAL" not in banner and banner.startswith("REVIEW NEEDED")
    assert "examine it in person (slit-lamp or dilated fundus examination)" in banner
    win.actions["slip"].trigger()
    qtbot.waitUntil(lambda: win.slip_dialog.preview_count >= 1, timeout=WAIT_MS)
    assert win.slip_dialog.document.kind == "review"
    win.slip_dialog.close()
    win.next_patient()                                              # complete: no warning
    assert win.next_box is None and win.patient_panel.patient() is None
