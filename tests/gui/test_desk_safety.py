"""Issue 12, items 1 and 2: the right patient's eye, from a live camera only.

A camera that stops sending must not let F5 or the toolbar store its last
picture (another patient's eye) under the next patient; a capture takes a
frame newer than the request; a failed camera is not reopened at the next
start. The patient is fixed when the first photograph is submitted, a click on
a search match cannot rewrite it, and the worker refuses a request whose
patient is not its encounter's."""

from __future__ import annotations

import uuid

import cv2
import pytest

from eyescreen_desktop.core.records import Eye, Patient
from eyescreen_desktop.core.screening import ScreenItem

WAIT_MS = 60_000
FRAMES = 6
SIZE = (640, 428)


@pytest.fixture(scope="module")
def video(tmp_path_factory, good_rgb):
    """A short MJPG video of a real fundus photograph: the camera."""
    path = tmp_path_factory.mktemp("video") / "camera.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, SIZE)
    frame = cv2.resize(cv2.cvtColor(good_rgb, cv2.COLOR_RGB2BGR), SIZE, interpolation=cv2.INTER_AREA)
    for i in range(FRAMES):
        writer.write(cv2.convertScaleAbs(frame, alpha=1.0, beta=i))
    writer.release()
    return path


def _start(qtbot, win, model_dir):
    with qtbot.waitSignal(win.engine.modelReady, timeout=WAIT_MS):
        win.start(model_dir)


def test_camera_that_stops_sending_cannot_be_captured_from(qtbot, window, video):
    panel = window.capture_panel
    panel.loop_files = False                      # the video ends: a camera that stops sending
    qtbot.keyClicks(window.patient_panel.id_edit, "NEXT1")
    with qtbot.waitSignal(panel.cameraFailed, timeout=WAIT_MS) as failed:
        panel.open_source(str(video))
    assert "stopped sending pictures" in failed.args[0]
    assert panel.frames_shown == 0 or panel.thread is None
    assert not panel.capture_right.isEnabled()
    assert not window.actions["right"].isEnabled() and not window.actions["left"].isEnabled()  # F5/F6 too
    assert panel.latest_frame() is None
    with qtbot.assertNotEmitted(panel.captured, wait=200):
        window.actions["right"].trigger()
        assert panel.capture(Eye.RIGHT) is False
    assert window.settings.camera_source == ""     # not reopened by itself at the next start
    assert not window.engine.busy


def test_shortcuts_follow_the_live_camera(qtbot, window, video):
    panel = window.capture_panel
    assert not window.actions["right"].isEnabled()
    panel.open_source(str(video))
    qtbot.waitUntil(lambda: window.actions["right"].isEnabled(), timeout=WAIT_MS)
    assert window.actions["left"].isEnabled() and panel.capture_right.isEnabled()
    assert window.settings.camera_source == str(video)
    panel.stop()
    assert not window.actions["right"].isEnabled()


def test_capture_takes_a_frame_newer_than_the_request(qtbot, window, video):
    panel = window.capture_panel
    qtbot.keyClicks(window.patient_panel.id_edit, "NEW1")
    panel.open_source(str(video))
    qtbot.waitUntil(lambda: panel.live, timeout=WAIT_MS)
    window.engine.screen_frame = lambda *args, **kwargs: 0   # keep it at the camera: no model here
    asked_at = panel.thread.frame_number()
    with qtbot.waitSignal(panel.captured, timeout=WAIT_MS) as captured:
        assert panel.capture(Eye.LEFT)
    assert captured.args[1] is Eye.LEFT
    assert panel.thread.frame_number() > asked_at
    assert window.patient_panel.locked                      # fixed from the capture on


def test_next_patient_drops_a_capture_not_yet_taken(qtbot, window, video):
    panel = window.capture_panel
    qtbot.keyClicks(window.patient_panel.id_edit, "OLD1")
    panel.open_source(str(video))
    qtbot.waitUntil(lambda: panel.live, timeout=WAIT_MS)
    panel._waiting.append((Eye.RIGHT, 10 ** 9))     # a capture still waiting for its frame
    window.next_patient()
    assert panel._waiting == []
    qtbot.keyClicks(window.patient_panel.id_edit, "NEW2")
    assert not window.patient_panel.locked


def test_patient_locks_when_the_first_photo_is_submitted(qtbot, window, urgent_model_dir, good_photo):
    qtbot.keyClicks(window.patient_panel.id_edit, "LOCK1")
    assert window.screen_paths([good_photo]) is not None
    assert window.patient_panel.locked                       # before any result came back
    _start(qtbot, window, urgent_model_dir)
    qtbot.waitUntil(lambda: not window.engine.busy, timeout=WAIT_MS)


def test_search_match_never_rewrites_a_locked_patient(qtbot, window):
    window.store.upsert_patient(Patient("OTHER1", "Someone Else"))
    panel = window.patient_panel
    qtbot.keyClicks(panel.id_edit, "LOCK2")
    panel.set_locked(True)
    qtbot.keyClicks(panel.search_edit, "Someone")
    with qtbot.waitSignal(panel.searched):   # answered off the GUI thread (issue 20, defect 6)
        panel.search()
    assert "OTHER1" in panel.matches.item(0).text()
    panel.matches.itemClicked.emit(panel.matches.item(0))
    assert panel.patient().patient_id == "LOCK2"
    assert "Ctrl+N" in panel.hint.text()


def test_worker_refuses_a_request_for_another_patient_of_the_visit(qtbot, window, urgent_model_dir,
                                                                   good_photo, blurred_photo):
    _start(qtbot, window, urgent_model_dir)
    engine, visit = window.engine, uuid.uuid4().hex
    with qtbot.waitSignal(engine.encounterSaved, timeout=WAIT_MS) as saved:
        engine.screen_files([ScreenItem(good_photo, Eye.LEFT)], Patient("FIRST"), visit=visit)
    first = saved.args[1]
    with qtbot.waitSignal(engine.failed, timeout=WAIT_MS) as failed:
        engine.screen_files([ScreenItem(blurred_photo, Eye.RIGHT)], Patient("SECOND"), visit=visit)
    assert "Refused" in failed.args[1] and "FIRST" in failed.args[1]
    with qtbot.waitSignal(engine.failed, timeout=WAIT_MS) as failed:   # a named encounter, too
        engine.screen_files([ScreenItem(blurred_photo, Eye.RIGHT)], Patient("SECOND"),
                            encounter_id=first.encounter_id)
    assert "Refused" in failed.args[1]
    qtbot.waitUntil(lambda: not engine.busy, timeout=WAIT_MS)
    assert len(window.store.encounter_summary(first.encounter_id).eyes) == 1
    assert window.store.get_patient("SECOND") is None
