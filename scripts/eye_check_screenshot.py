"""Screenshot of the "Eye check" mode for docs/images (offscreen).

A video of scikit-image's astronaut plays as the webcam (framing guide on),
the frame is captured and checked with the shipped external-eye model.

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/eye_check_screenshot.py [OUT_PNG] [--photo FILE]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import cv2  # noqa: E402 - imported after the sys.path / environment set-up above
from PySide6.QtCore import QEventLoop, QTimer  # noqa: E402 - imported after the sys.path / environment set-up above
from PySide6.QtWidgets import QApplication, QRadioButton  # noqa: E402 - imported after the sys.path / environment set-up above

from eyescreen_desktop.core.paths import project_root  # noqa: E402 - imported after the sys.path / environment set-up above
from eyescreen_desktop.gui.eye_check_panel import EyeCheckEngine, EyeCheckPanel  # noqa: E402 - imported after the sys.path / environment set-up above
from eyescreen_desktop.gui.resources import stylesheet  # noqa: E402 - imported after the sys.path / environment set-up above


def wait(signal=None, ms: int = 30_000, until=None) -> None:
    loop = QEventLoop()
    if signal is not None:
        signal.connect(lambda *a: loop.quit())
    timer = QTimer()
    if until is not None:
        timer.timeout.connect(lambda: until() and loop.quit())
        timer.start(50)
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", nargs="?", type=Path, default=Path("docs/images/eye-check.png"))
    parser.add_argument("--photo", type=Path, help="check this photograph instead of the camera frame")
    parser.add_argument("--window", action="store_true", help="the whole main window on its Eye check tab")
    args = parser.parse_args()
    from skimage import data

    app = QApplication.instance() or QApplication([])
    app.setStyleSheet(stylesheet())
    shown: object
    if args.window:
        from eyescreen_desktop.gui.app import build_window

        window, _store = build_window(Path(tempfile.mkdtemp()) / "data", dialogs=False)
        window.resize(1440, 860)
        window.show()
        window.start(project_root() / "models" / "eyescreen-dr")
        engine, panel, shown = window.eye_check.engine, window.eye_check.panel, window
        wait(engine.ready)
        window.tabs.setCurrentWidget(panel)
    else:
        engine = EyeCheckEngine()
        engine.start(project_root() / "models" / "eyescreen-external")
        wait(engine.ready)
        panel = EyeCheckPanel(engine, probe=None)
        panel.resize(1280, 720)
        panel.show()
        shown = panel
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "webcam.avi"
        writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (512, 512))
        for _ in range(6):
            writer.write(data.astronaut()[..., ::-1])
        writer.release()
        panel.camera.open_source(str(video))
        wait(until=panel.camera.capture_check.isEnabled)
        if args.photo:
            panel.findChildren(QRadioButton)[1].setChecked(True)   # the one-eye guide
            wait(ms=200)
            panel.open_file(args.photo)
        else:
            panel.camera.capture_and_check()
        wait(engine.checked)
        wait(ms=300)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shown.grab().save(str(args.out))
        panel.stop()
    if args.window:
        window.shutdown()
    else:
        engine.stop()
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
