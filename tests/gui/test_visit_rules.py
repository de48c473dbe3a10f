"""Issue 12 in the window, items 3, 4, 7, 8 and 15: one eye never gives a green
verdict, why an eye was not photographed is recorded, staff say which eye a
photograph shows (buttons or drag), a clinician's change of queue shows with
its reason after a retake, every patient gets their document, and the patient
search folds accents and case. Real photographs, a real SQLite file and the
fixed-output models of conftest.py."""

from __future__ import annotations

import shutil

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from eyescreen_desktop.core.records import Eye, Patient, Queue
from eyescreen_desktop.gui.result_view import photo_mime
from tests.conftest import FUNDUS_DR

WAIT_MS = 60_000
RIGHT_PHOTO = FUNDUS_DR / "images" / "P001_R.jpg"


@pytest.fixture
def window(annual_window):
    """The window with the fixed annual model loaded (tests/gui/conftest.py)."""
    return annual_window


def _screen(qtbot, win, paths, patient_id=""):
    if patient_id:
        qtbot.keyClicks(win.patient_panel.id_edit, patient_id)
    with qtbot.waitSignal(win.engine.encounterSaved, timeout=WAIT_MS) as saved:
        assert win.screen_paths(paths) is not None
    return saved.args[1]


def _saved_after(qtbot, win, action):
    with qtbot.waitSignal(win.engine.encounterSaved, timeout=WAIT_MS) as saved:
        action()
    return saved.args[1]


def test_one_graded_eye_says_the_other_is_needed_never_annual(qtbot, window, good_photo):
    summary = _screen(qtbot, window, [good_photo], "ONE1")            # P001_L.jpg: the left eye, grade 0
    banner = window.result_view.banner.text()
    assert "NO REFERRAL" not in banner and "RIGHT EYE IS STILL NEEDED" in banner
    assert summary.queue is Queue.REVIEW and not summary.complete
    assert window.store.encounters(queue=Queue.ANNUAL) == []
    assert "Still to photograph: right eye" in window.result_view.detail.text()
    window.next_patient()                                            # warned, not cleared
    assert window.next_box is not None and window.patient_panel.patient().patient_id == "ONE1"
    assert "right eye" in window.next_box.text()


def test_a_recorded_reason_completes_a_one_eyed_visit(qtbot, window, good_photo):
    _screen(qtbot, window, [good_photo], "ONE2")
    card = window.result_view.cards[Eye.RIGHT]
    assert card.missing_button.isVisible()
    card.missing_button.click()
    dialog = window.missing_dialog
    dialog.reason_box.setCurrentIndex(dialog.reason_box.findData("prosthesis"))
    summary = _saved_after(qtbot, window, dialog.accept)
    assert summary.complete and summary.queue is Queue.ANNUAL
    assert [(m.eye, m.reason) for m in summary.missing_eyes] == [(Eye.RIGHT, "prosthesis")]
    assert window.result_view.banner.text().startswith("NO REFERRAL: ANNUAL SCREENING")
    assert "prosthetic eye" in card.photo.text() and "prosthetic eye" in window.result_view.detail.text()
    entry = window.store.audit(f"encounter:{summary.encounter_id}")
    assert "missing eye recorded" in [e.action for e in entry]
    window.next_patient()                                            # complete: no question
    assert window.next_box is None and window.patient_panel.patient() is None


def test_other_reason_needs_a_note(qtbot, window, good_photo):
    _screen(qtbot, window, [good_photo], "ONE3")
    window.result_view.cards[Eye.RIGHT].missing_button.click()
    dialog = window.missing_dialog
    dialog.reason_box.setCurrentIndex(dialog.reason_box.findData("other"))
    ok = dialog.buttons.buttons()[0]
    assert not ok.isEnabled()
    dialog.note_edit.setText("eye patch after surgery")
    assert ok.isEnabled()


def _unknown_copy(tmp_path, source, name):
    path = tmp_path / name
    shutil.copy(source, path)
    return path


def test_staff_set_the_side_of_a_photo_of_unknown_side(qtbot, window, tmp_path):
    photo = _unknown_copy(tmp_path, RIGHT_PHOTO, "camera-0001.jpg")
    summary = _screen(qtbot, window, [photo], "SIDE1")
    view = window.result_view
    assert view.unknown_card.isVisible() and view.cards[Eye.RIGHT].shown is None   # not put in a free slot
    assert "SAY WHICH EYE" in view.banner.text() and summary.queue is Queue.REVIEW
    button = view.unknown_card.side_buttons[Eye.RIGHT]
    assert button.isVisible()
    summary = _saved_after(qtbot, window, button.click)
    assert [e.eye for e in summary.eyes] == [Eye.RIGHT]
    assert view.cards[Eye.RIGHT].shown is not None and not view.unknown_card.isVisible()
    assert not view.cards[Eye.RIGHT].photo.pixmap().isNull()        # moved without decoding again
    assert "eye side set" in [e.action for e in window.store.audit(f"encounter:{summary.encounter_id}")]


def test_a_photo_dragged_to_the_other_eye_moves_there(qtbot, window, good_photo):
    summary = _screen(qtbot, window, [good_photo], "SIDE2")          # named _L: on the left card
    view = window.result_view
    sha = summary.eyes[0].sha256
    target = view.cards[Eye.RIGHT]
    mime = photo_mime(sha)
    enter = QDragEnterEvent(QPoint(20, 20), Qt.DropAction.MoveAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(target, enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(20, 20), Qt.DropAction.MoveAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    summary = _saved_after(qtbot, window, lambda: QApplication.sendEvent(target, drop))
    assert [e.eye for e in summary.eyes] == [Eye.RIGHT]
    assert target.shown is not None and view.cards[Eye.LEFT].shown is None
    assert "LEFT EYE IS STILL NEEDED" in view.banner.text()


def test_unknown_photos_never_replace_another_and_titles_reset(qtbot, window, tmp_path, good_photo):
    first = _unknown_copy(tmp_path, RIGHT_PHOTO, "cam-1.jpg")
    second = _unknown_copy(tmp_path, FUNDUS_DR / "images" / "P003_L.jpg", "cam-2.jpg")
    _screen(qtbot, window, [good_photo], "SIDE3")
    _screen(qtbot, window, [first])
    summary = _screen(qtbot, window, [second])
    view = window.result_view
    assert view.cards[Eye.LEFT].shown.result.path.endswith(good_photo.name)   # nothing replaced
    assert len(view.unknown) == 2 and "1 of 2" in view.unknown_card.title.text()
    assert len(summary.eyes) == 3
    window.start_next_patient()
    assert view.cards[Eye.RIGHT].title.text() == "Right eye (OD)" and not view.unknown_card.isVisible()


def test_override_and_reason_show_after_a_retake(qtbot, window, blurred_photo, good_photo, tmp_path):
    first = _screen(qtbot, window, [blurred_photo, good_photo], "OVR1")      # right ungradable, left grade 0
    assert first.queue is Queue.REVIEW and "Retake" in window.result_view.detail.text()
    window.store.override_queue(first.encounter_id, Queue.ROUTINE, "Haemorrhages seen at the slit lamp", "dr.a")
    window.start_next_patient()
    with qtbot.waitSignal(window.encounterOpened, timeout=WAIT_MS):
        window.open_encounter(first.encounter_id)
    retake = _unknown_copy(tmp_path, RIGHT_PHOTO, "right.jpg")   # a right eye; the name gives no patient ID
    summary = _screen(qtbot, window, [retake])
    assert summary.overridden and summary.queue is Queue.ROUTINE
    view = window.result_view
    assert "changed by a clinician" in view.banner.text() and view.banner.text().startswith("ROUTINE")
    assert "Haemorrhages seen at the slit lamp" in view.detail.text()
    assert "Retake" not in view.detail.text() and "retake" not in view.banner.text().lower()
    assert view.cards[Eye.RIGHT].verdict.text() != "Cannot be graded"         # the current photograph


def test_an_annual_patient_gets_a_result_letter_from_the_window(qtbot, window, good_photo):
    summary = _screen(qtbot, window, [good_photo, RIGHT_PHOTO], "P001")     # P001_R.jpg: this patient's
    assert summary.queue is Queue.ANNUAL and summary.complete
    assert window.result_view.slip_button.isEnabled()
    window.actions["slip"].trigger()
    dialog = window.slip_dialog
    qtbot.waitUntil(lambda: dialog.preview_count >= 1, timeout=WAIT_MS)
    assert dialog.document.kind == "letter" and dialog.windowTitle().startswith("Result letter")


def test_patient_search_folds_accents_and_case(qtbot, window):
    window.store.upsert_patient(Patient("P001", "Zoë Ñúñez"))
    panel = window.patient_panel
    qtbot.keyClicks(panel.search_edit, "nunez")
    with qtbot.waitSignal(panel.searched):   # answered off the GUI thread (issue 20, defect 6)
        panel.search()
    assert panel.matches.count() == 1 and "Zoë Ñúñez" in panel.matches.item(0).text()
