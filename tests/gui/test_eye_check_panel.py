"""The "Eye check" mode on real pictures through the shipped external-eye
model: a close-up, a selfie (scikit-image's astronaut, also as a camera video),
and a picture without an eye, which gets a message and no slip."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PySide6.QtGui import QImage

from eyescreen_desktop.core.paths import project_root
from eyescreen_desktop.gui.eye_check_panel import EyeCheckEngine, EyeCheckPanel, draw_guide
from tests.conftest import SHARED

WAIT_MS = 60_000
MODEL = project_root() / "models" / "eyescreen-external"
CLOSE_UP = SHARED / "external-eye" / "images" / "cataract_cataract_0611.jpg"


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


@pytest.fixture
def panel(qtbot):
    engine = EyeCheckEngine()
    with qtbot.waitSignal(engine.ready, timeout=WAIT_MS):
        engine.start(MODEL)
    widget = EyeCheckPanel(engine, probe=None)
    qtbot.addWidget(widget)
    widget.show()
    yield widget
    widget.stop()
    engine.stop()


def _check(qtbot, panel, action):
    with qtbot.waitSignal(panel.engine.checked, timeout=WAIT_MS):
        action()
    qtbot.waitUntil(lambda: panel.headline.text() != "Checking…", timeout=WAIT_MS)


def test_a_close_up_shows_the_verdict_finding_probability_and_heat_map(qtbot, panel):
    _check(qtbot, panel, lambda: panel.open_file(CLOSE_UP))
    assert panel.headline.text() == "Go for an eye check-up"
    card = panel.eyes.itemAt(0).widget()
    assert "Possible cataract" in card.detail.text() and "%" in card.detail.text()
    assert not card.picture.pixmap().isNull()
    assert panel.print_button.isEnabled()
    with qtbot.waitSignal(panel.slipRequested) as slip:
        panel.print_button.click()
    assert slip.args[0].checkup is True


def test_a_selfie_shows_both_eyes_right_first(qtbot, panel, astronaut):
    _check(qtbot, panel, lambda: panel.check_image(astronaut))
    titles = [panel.eyes.itemAt(i).widget().check.box.side for i in range(panel.eyes.count())]
    assert titles == ["R", "L"]
    assert panel.headline.text() in ("Go for an eye check-up", "Your eye looks healthy")


def test_no_eye_gets_a_message_and_no_slip(qtbot, panel):
    from skimage import data

    _check(qtbot, panel, lambda: panel.check_image(data.rocket()))
    assert "No eye found" in panel.headline.text() and "closer" in panel.headline.text()
    assert not panel.print_button.isEnabled()


def test_camera_capture_is_checked(qtbot, panel, astronaut, tmp_path):
    path = tmp_path / "webcam.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (512, 512))
    for i in range(6):
        writer.write(cv2.convertScaleAbs(astronaut[..., ::-1], alpha=1.0, beta=i))
    writer.release()
    panel.camera.open_source(str(path))
    qtbot.waitUntil(panel.camera.capture_check.isEnabled, timeout=WAIT_MS)
    assert not panel.camera.capture_right.isVisible()
    with qtbot.waitSignal(panel.engine.checked, timeout=WAIT_MS) as got:
        panel.camera.capture_check.click()
    assert got.args[1].kind == "face" and len(got.args[1].eyes) == 2


@pytest.mark.parametrize("guide", ["face", "eye"])
def test_the_framing_guide_is_painted_on_a_copy(guide):
    image = QImage(320, 240, QImage.Format.Format_RGB888)
    image.fill(0)
    drawn = draw_guide(image, guide)
    assert drawn.size() == image.size() and drawn != image
    assert image.pixelColor(160, 120).red() == 0


# --------------------------------------------------------------------------- in the main window


@pytest.fixture
def window(qtbot, tmp_path, urgent_model_dir):
    from eyescreen_desktop.gui.app import build_window

    win, store = build_window(tmp_path / "data", dialogs=False)
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(win.eye_check.engine.ready, timeout=WAIT_MS):
        win.start(urgent_model_dir)
    yield win
    win.close()
    store.close()


def test_eye_check_tab_sits_next_to_screening_and_prints_the_slip(qtbot, window):
    from pypdf import PdfReader

    tabs = [window.tabs.tabText(i) for i in range(window.tabs.count())]
    assert tabs[:3] == ["Screening", "Eye check", "Queues"]
    window.tabs.setCurrentWidget(window.eye_check.panel)
    qtbot.keyClicks(window.patient_panel.id_edit, "PH-7")
    panel = window.eye_check.panel
    _check(qtbot, panel, lambda: panel.open_file(CLOSE_UP))
    with qtbot.waitSignal(window.eye_check.slipWritten, timeout=WAIT_MS) as written:
        panel.print_button.click()
    text = " ".join(p.extract_text() or "" for p in PdfReader(str(written.args[0])).pages)
    assert "Go for an eye check-up" in " ".join(text.split()) and "PH-7" in text


def test_the_eye_check_refuses_a_fundus_photograph_through_the_gate(qtbot, window):
    from tests.conftest import FUNDUS_DR

    panel = window.eye_check.panel
    _check(qtbot, panel, lambda: panel.open_file(FUNDUS_DR / "images" / "P001_L.jpg"))
    assert "fundus photograph" in panel.headline.text() and not panel.print_button.isEnabled()


# --------------------------------------------------------------------------- issue 20, defect 6: off the GUI thread


def test_an_opened_photograph_is_decoded_off_the_gui_thread(qtbot, panel, monkeypatch):
    import threading

    from eyescreen_desktop.gui import eye_check_panel

    threads, real = [], eye_check_panel.read_image
    monkeypatch.setattr(eye_check_panel, "read_image", lambda p: (threads.append(threading.current_thread()), real(p))[1])
    _check(qtbot, panel, lambda: panel.open_file(CLOSE_UP))
    assert threads and all(t is not threading.main_thread() for t in threads)
    assert panel.headline.text() == "Go for an eye check-up"


def test_an_unreadable_photograph_is_said(qtbot, panel, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a picture")
    panel.open_file(broken)
    qtbot.waitUntil(lambda: "broken.jpg" in panel.headline.text(), timeout=WAIT_MS)
    assert not panel.print_button.isEnabled()


def test_the_eye_check_slip_is_written_off_the_gui_thread(qtbot, window, monkeypatch):
    import threading

    from eyescreen_desktop.core.reports import eye_check

    threads, real = [], eye_check.write_eye_check_slip
    monkeypatch.setattr(eye_check, "write_eye_check_slip",
                        lambda *a, **k: (threads.append(threading.current_thread()), real(*a, **k))[1])
    panel = window.eye_check.panel
    _check(qtbot, panel, lambda: panel.open_file(CLOSE_UP))
    with qtbot.waitSignal(window.eye_check.slipWritten, timeout=WAIT_MS) as written:
        panel.print_button.click()
    assert written.args[0].is_file()
    assert threads and all(t is not threading.main_thread() for t in threads)
