"""The camera panel, fed from a generated video file (a fundus photograph
recorded as MJPG): live preview on its own thread, capture buttons, clear
messages for a camera that does not answer, and a capture screened through
the window into the right queue."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from eyescreen_desktop.core.records import Eye, Queue, Status
from eyescreen_desktop.gui.app import build_window
from eyescreen_desktop.gui.capture_panel import CapturePanel, parse_source
from tests.conftest import FUNDUS_DR

WAIT_MS = 60_000
FRAMES = 6
SIZE = (640, 428)   # the 1024x685 photograph scaled down, as a camera preview would be


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """A short MJPG video of a right eye's fundus photograph (slightly changing brightness):
    F5 captures the right eye, and the window questions a capture whose disc says the other."""
    path = tmp_path_factory.mktemp("video") / "fundus camera.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, SIZE)
    assert writer.isOpened()
    frame = cv2.resize(cv2.imread(str(FUNDUS_DR / "images" / "P001_R.jpg")), SIZE, interpolation=cv2.INTER_AREA)
    for i in range(FRAMES):
        writer.write(cv2.convertScaleAbs(frame, alpha=1.0, beta=i))
    writer.release()
    return path, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


@pytest.fixture
def panel(qtbot):
    widget = CapturePanel()
    qtbot.addWidget(widget)
    widget.show()
    yield widget
    widget.stop()


def test_video_file_plays_like_a_live_camera(qtbot, panel, video):
    path, expected = video
    assert not panel.capture_right.isEnabled()
    panel.open_source(str(path))
    qtbot.waitUntil(lambda: panel.frames_shown > 2 * FRAMES, timeout=WAIT_MS)   # it loops at the end
    assert panel.capture_right.isEnabled() and panel.capture_left.isEnabled()
    assert not panel.preview.pixmap().isNull()
    frame = panel.latest_frame()
    assert frame.shape == (SIZE[1], SIZE[0], 3) and frame.dtype == np.uint8
    assert np.abs(frame.astype(int) - expected.astype(int)).mean() < 12   # RGB order, MJPG loss only
    assert panel.chooser.currentData() == "other"


def test_capture_buttons_hand_on_the_newest_frame(qtbot, panel, video):
    panel.open_source(str(video[0]))
    qtbot.waitUntil(lambda: panel.capture_left.isEnabled(), timeout=WAIT_MS)
    with qtbot.waitSignal(panel.captured, timeout=WAIT_MS) as captured:
        panel.capture_left.click()
    rgb, eye = captured.args
    assert eye is Eye.LEFT and rgb.shape == (SIZE[1], SIZE[0], 3)
    panel.stop()
    assert panel.thread is None and not panel.capture_left.isEnabled()


def test_camera_that_does_not_answer_says_what_to_do(qtbot, panel, tmp_path):
    with qtbot.waitSignal(panel.problem, timeout=WAIT_MS) as problem:
        panel.open_source(str(tmp_path / "unplugged.avi"))
    assert "did not answer" in problem.args[0] and "choose another camera" in problem.args[0]
    assert "did not answer" in panel.preview.text() and not panel.capture_right.isEnabled()


def test_capture_without_a_picture_is_refused_clearly(qtbot, panel):
    with qtbot.waitSignal(panel.problem, timeout=WAIT_MS) as problem:
        assert panel.capture(Eye.RIGHT) is False
    assert "choose a camera" in problem.args[0]


def test_parse_source():
    assert parse_source(" 2 ") == 2 and parse_source("rtsp://cam/1") == "rtsp://cam/1"


def test_capture_is_screened_through_the_window(qtbot, data_dir, urgent_model_dir, video):
    window, store = build_window(data_dir, dialogs=False)
    qtbot.addWidget(window)
    window.show()
    try:
        with qtbot.waitSignal(window.engine.modelReady, timeout=WAIT_MS):
            window.start(urgent_model_dir)
        qtbot.keyClicks(window.patient_panel.id_edit, "CAM1")
        window.capture_panel.open_source(str(video[0]))
        qtbot.waitUntil(lambda: window.capture_panel.capture_right.isEnabled(), timeout=WAIT_MS)
        assert window.settings.camera_source == str(video[0])   # remembered for the next start
        with qtbot.waitSignal(window.engine.encounterSaved, timeout=WAIT_MS) as saved:
            window.actions["right"].trigger()                      # F5
        summary = saved.args[1]
        assert [e.eye for e in summary.eyes] == [Eye.RIGHT] and summary.eyes[0].status is Status.OK
        assert summary.queue is Queue.URGENT
        assert list((data_dir / "captures").glob("capture-*-R.jpg"))
        assert window.result_view.cards[Eye.RIGHT].shown is not None
    finally:
        window.close()
        store.close()
