"""Issue 24 item 3 in the window: a photograph of the other eye (camera F6 with a
right eye on the camera) or of another patient (``P002_R.jpg`` opened for P904)
is asked about before it is stored, and the answer is in the audit log.
Real photographs, a real SQLite file, the fixed-output model of conftest.py."""

from __future__ import annotations

import shutil

import cv2
import pytest

from eyescreen_desktop.core.records import Eye, Status
from eyescreen_desktop.gui.photo_fit_dialog import PhotoFitDialog
from tests.conftest import FUNDUS_DR

WAIT_MS = 60_000
RIGHT_PHOTO = FUNDUS_DR / "images" / "P287_R.jpg"     # held-out patient: a right eye, disc on the right
SIZE = (640, 428)
FRAMES = 40


@pytest.fixture
def window(annual_window):
    """The window with the fixed annual model loaded (tests/gui/conftest.py)."""
    return annual_window


@pytest.fixture(scope="module")
def right_eye_camera(tmp_path_factory):
    """A short MJPG video of a real right-eye photograph: the camera shows a right eye."""
    path = tmp_path_factory.mktemp("video") / "camera.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, SIZE)
    frame = cv2.resize(cv2.imread(str(RIGHT_PHOTO)), SIZE, interpolation=cv2.INTER_AREA)
    for i in range(FRAMES):
        writer.write(cv2.convertScaleAbs(frame, alpha=1.0, beta=i))
    writer.release()
    return path


@pytest.fixture
def other_patients_file(tmp_path):
    """A real right-eye photograph of patient P002 as the camera names it (the issue's ``P002_R.jpg``)."""
    path = tmp_path / "P002_R.jpg"
    shutil.copy(RIGHT_PHOTO, path)
    return path


def _question(qtbot, win) -> PhotoFitDialog:
    qtbot.waitUntil(lambda: win.photo_guard.dialog is not None and win.photo_guard.dialog.isVisible(),
                    timeout=WAIT_MS)
    return win.photo_guard.dialog


def _answers(win, patient_id):
    return [e.details for e in win.store.audit(f"patient:{patient_id}") if e.action == "photograph check answered"]


def test_another_patients_file_is_asked_about_and_not_stored_when_cancelled(qtbot, window, other_patients_file):
    qtbot.keyClicks(window.patient_panel.id_edit, "P904")
    assert window.screen_paths([other_patients_file]) is None     # held, not screened
    box = _question(qtbot, window)
    assert "P002" in box.text() and "P904" in box.text()
    assert box.change_button is None                      # the side agrees: only store anyway / do not store
    box.cancel_button.click()
    qtbot.waitUntil(lambda: window.photo_guard.dialog is None, timeout=WAIT_MS)
    assert window.store.encounters() == [] and not window.engine.busy
    assert window.result_view.cards[Eye.RIGHT].shown is None
    [answer] = _answers(window, "P904")
    assert answer["answer"] == "cancel" and answer["warnings"] == ["other_patient"]
    assert answer["name_patient"] == "P002" and answer["stored_as"] == ""


def test_another_patients_file_stored_anyway_is_stored_and_the_answer_kept(qtbot, window, other_patients_file):
    qtbot.keyClicks(window.patient_panel.id_edit, "P904")
    window.screen_paths([other_patients_file])
    box = _question(qtbot, window)
    with qtbot.waitSignal(window.engine.encounterSaved, timeout=WAIT_MS) as saved:
        box.anyway_button.click()
    summary = saved.args[1]
    assert summary.patient.patient_id == "P904" and [e.eye for e in summary.eyes] == [Eye.RIGHT]
    assert summary.eyes[0].status is Status.OK                  # the real photograph, graded
    [answer] = _answers(window, "P904")
    assert answer["answer"] == "store anyway" and answer["stored_as"] == "R"


def test_f6_with_a_right_eye_on_the_camera_asks_and_stores_it_as_the_right_eye(qtbot, window, right_eye_camera):
    panel = window.capture_panel
    qtbot.keyClicks(window.patient_panel.id_edit, "CAM1")
    panel.open_source(str(right_eye_camera))
    qtbot.waitUntil(lambda: window.actions["left"].isEnabled(), timeout=WAIT_MS)
    window.actions["left"].trigger()                                          # F6: capture the left eye
    box = _question(qtbot, window)
    assert "looks like the right eye" in box.text() and "filed as the left eye" in box.text()
    assert box.defaultButton() is box.change_button                           # Enter files it as the right eye
    assert window.store.encounters() == []                                    # nothing stored before the answer
    with qtbot.waitSignal(window.engine.encounterSaved, timeout=WAIT_MS) as saved:
        box.change_button.click()
    assert [e.eye for e in saved.args[1].eyes] == [Eye.RIGHT]
    [answer] = _answers(window, "CAM1")
    assert answer["answer"] == "change eye" and answer["warnings"] == ["other_eye"]
    assert answer["filed_eye"] == "L" and answer["stored_as"] == "R" and answer["confidence"] >= 0.8
    panel.stop()


def test_a_file_named_for_the_other_eye_is_asked_about(qtbot, window, tmp_path):
    wrong = tmp_path / "P287_L.jpg"                      # a right-eye photograph saved as the left eye
    shutil.copy(RIGHT_PHOTO, wrong)
    qtbot.keyClicks(window.patient_panel.id_edit, "P287")
    assert window.screen_paths([wrong]) is None
    box = _question(qtbot, window)
    assert "looks like the right eye" in box.text() and box.fit.warnings == ("other_eye",)
    with qtbot.waitSignal(window.engine.encounterSaved, timeout=WAIT_MS) as saved:
        box.anyway_button.click()                          # the nurse knows better: stored as filed
    assert [e.eye for e in saved.args[1].eyes] == [Eye.LEFT]
    assert _answers(window, "P287")[0]["answer"] == "store anyway"


def test_photographs_that_fit_go_straight_on_without_a_question(qtbot, window):
    qtbot.keyClicks(window.patient_panel.id_edit, "P287")
    with qtbot.waitSignal(window.engine.encounterSaved, timeout=WAIT_MS):
        assert window.screen_paths([RIGHT_PHOTO]) is not None
    assert window.photo_guard.dialog is None and _answers(window, "P287") == []


def test_a_patients_two_eyes_are_both_checked_at_once_on_the_gui_thread(qtbot, window, monkeypatch):
    """Two photographs (a patient's eyes) are checked at once, so a doubtful one is asked
    about straight away; only a larger drop leaves all but its first to the background."""
    import threading

    from eyescreen_desktop.gui import photo_fit_dialog

    checked_on: list[bool] = []
    real = photo_fit_dialog._checked
    monkeypatch.setattr(photo_fit_dialog, "_checked", lambda *a: (
        checked_on.append(threading.current_thread() is threading.main_thread()), real(*a))[1])
    qtbot.keyClicks(window.patient_panel.id_edit, "P287")
    left = FUNDUS_DR / "images" / "P287_L.jpg"
    with qtbot.waitSignal(window.engine.encounterSaved, timeout=WAIT_MS):
        assert window.screen_paths([RIGHT_PHOTO, left]) is not None
    assert checked_on == [True, True] and not window.photo_guard.checking


def test_the_camera_folder_notes_a_photograph_named_for_the_other_eye(tmp_path, urgent_model_dir):
    """The camera folder cannot ask: the warning goes into the result (results, encounter)."""
    from eyescreen_desktop.core.classifier import Classifier
    from eyescreen_desktop.core.store import ClinicStore
    from eyescreen_desktop.gui.batch_jobs import hot_folder_job
    from eyescreen_desktop.gui.worker import BatchContext

    camera = tmp_path / "camera"
    camera.mkdir()
    wrong = camera / "P287_L.jpg"                        # a right-eye photograph written under the left eye's name
    shutil.copy(RIGHT_PHOTO, wrong)
    with ClinicStore(tmp_path / "clinic.sqlite3") as store:
        ctx = BatchContext(Classifier.load(urgent_model_dir, backend="keras"), store, lambda: False,
                           lambda *_args: None, lambda _result: None)
        outcome = hot_folder_job(camera, [wrong])(ctx)
        [(name, patient_id, result)] = outcome.files
        assert (name, patient_id, result.eye) == ("P287_L.jpg", "P287", Eye.LEFT)
        assert "looks like the right eye" in result.message
        [summary] = store.encounters()
        stored = store.encounter_summary(summary.encounter_id).eyes
        assert any("looks like the right eye" in e.message for e in stored)


def test_with_both_doubts_enter_does_not_store(qtbot, tmp_path):
    """A left-eye photograph named P002_R.jpg for patient P904: both warnings, and the
    default answer is not to store it (the side is no help when the patient is wrong)."""
    from eyescreen_desktop.core.imageio import read_image
    from eyescreen_desktop.core.photo_fit import check_photo

    fit = check_photo(read_image(FUNDUS_DR / "images" / "P287_L.jpg", max_side=512), Eye.RIGHT, "P904",
                      "P002_R.jpg")
    assert fit.warnings == ("other_eye", "other_patient")
    box = PhotoFitDialog(fit)
    qtbot.addWidget(box)
    assert box.defaultButton() is box.cancel_button and box.change_button is not None
    assert "left eye" in box.change_button.text()


def test_a_large_drop_is_checked_off_the_gui_thread_and_every_photograph_is_filed_or_asked(
        qtbot, window, tmp_path, other_patients_file, monkeypatch):
    """Each check decodes its photograph: of a drop larger than a patient's two eyes only
    the first is checked on the GUI thread; the rest go to the background helper, pass into a second request, and a doubtful one
    among them (another patient's file) is still asked about, never filed silently."""
    import threading

    from eyescreen_desktop.gui import photo_fit_dialog

    checked_on: list[bool] = []
    real = photo_fit_dialog._checked
    monkeypatch.setattr(photo_fit_dialog, "_checked", lambda *a: (
        checked_on.append(threading.current_thread() is threading.main_thread()), real(*a))[1])
    files = []
    right = cv2.imread(str(RIGHT_PHOTO))
    for i in range(4):   # four right-eye photographs of this patient (other bytes each), a folder each
        folder = tmp_path / f"r{i}"
        folder.mkdir()
        cv2.imwrite(str(folder / "P904_R.jpg"), right, [cv2.IMWRITE_JPEG_QUALITY, 90 - i])
        files.append(folder / "P904_R.jpg")
    qtbot.keyClicks(window.patient_panel.id_edit, "P904")
    saved = []
    window.engine.encounterSaved.connect(lambda _rid, summary: saved.append(summary))
    assert window.screen_paths([*files, other_patients_file]) is not None
    box = _question(qtbot, window)                                  # P002's file, checked in the background
    assert "P002" in box.text()
    assert len(checked_on) == 5 and checked_on.count(True) == 1      # one on the GUI thread, four off it
    qtbot.waitUntil(lambda: not window.photo_guard.checking and not window._requests, timeout=WAIT_MS)
    stored = window.store.encounter_summary(saved[-1].encounter_id)
    assert len([e for e in stored.eyes + stored.retaken if e.eye is Eye.RIGHT]) == 4


def test_the_checks_are_prepared_off_the_gui_thread_when_the_window_starts(qtbot, window, monkeypatch):
    """The laterality card is read, and the checks' first-time work done, on the background
    helper: the first photographs dropped are not checked at a cold start on the GUI thread."""
    import threading

    from eyescreen_desktop.core import laterality, photo_fit
    from eyescreen_desktop.gui.worker import wait_for_background

    wait_for_background()                          # the fixture's own start-up preparation is over
    monkeypatch.setattr(laterality, "_DEFAULT", None)
    read_on: list[bool] = []
    checked_on: list[bool] = []
    real_load, real_check = laterality.LateralityModel.load.__func__, photo_fit.check_photo
    monkeypatch.setattr(laterality.LateralityModel, "load", classmethod(lambda cls, path=None: (
        read_on.append(threading.current_thread() is threading.main_thread()), real_load(cls, path))[1]))
    monkeypatch.setattr(photo_fit, "check_photo", lambda *a: (
        checked_on.append(threading.current_thread() is threading.main_thread()), real_check(*a))[1])
    window.photo_guard.prepare()
    qtbot.waitUntil(lambda: checked_on != [], timeout=WAIT_MS)
    assert read_on == [False] and checked_on == [False]
    assert laterality._DEFAULT is not None          # the first real check finds the card read
