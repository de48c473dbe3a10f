"""A screening day on a 1024x700 screen, run by test_small_screen.py in a fresh
process (so QT_SCALE_FACTOR=1.5 can be set before Qt starts): the window is kept
at 1024x700 logical pixels through a patient search, a photograph of unknown side,
a selfie eye check, the queues, the batch tab, the patient's document and the
settings; after each step it measures whether the window grew, whether any
visible button or label is cut, and saves a screenshot.

Usage: python -m tests.gui.small_screen OUT_DIR MODEL_DIR [PREFIX]
Writes OUT_DIR/PREFIX-<step>.png and OUT_DIR/PREFIX-report.json. The pictures in
docs/images/small-screen-*.png come from ``python -m tests.gui.small_screen docs/images
MODEL small-screen`` (with QT_QPA_PLATFORM=offscreen).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from PySide6.QtCore import QEventLoop, QTimer  # noqa: E402 - Qt after the platform is chosen above
from PySide6.QtWidgets import QAbstractButton, QComboBox, QLabel, QWidget  # noqa: E402 - Qt after the platform is chosen above

SCREEN = (1024, 700)
PHOTOS = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "fundus-dr" / "images"
WAIT_MS = 120_000
COMBO_CHROME = 30   # a combo box's frame and arrow, beside its text


def wait_for(signal: Any, timeout_ms: int = WAIT_MS) -> tuple:
    """Run the event loop until ``signal`` fires; its arguments."""
    loop, got = QEventLoop(), []
    signal.connect(lambda *args: (got.append(args), loop.quit()))
    QTimer.singleShot(timeout_ms, loop.quit)
    loop.exec()
    if not got:
        raise TimeoutError(f"no {signal} within {timeout_ms} ms")
    return got[0]


def settle(ms: int = 80) -> None:
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def cut_buttons(root: QWidget) -> list[dict[str, Any]]:
    """Visible buttons narrower than their own text needs ("Open visi")."""
    cut = []
    for button in root.findChildren(QAbstractButton):
        if not button.isVisible() or not button.text() or root.window() is not button.window():
            continue
        if button.sizeHint().width() > button.width() + 1:
            cut.append({"text": button.text(), "width": button.width(), "needs": button.sizeHint().width()})
    for box in root.findChildren(QComboBox):   # the chosen entry must read whole too
        if not box.isVisible() or not box.currentText() or root.window() is not box.window():
            continue
        needs = box.fontMetrics().horizontalAdvance(box.currentText()) + COMBO_CHROME
        if box.iconSize().width() and not box.itemIcon(box.currentIndex()).isNull():
            needs += box.iconSize().width() + 4
        if needs > box.width():
            cut.append({"text": box.currentText(), "width": box.width(), "needs": needs})
    return cut


def cut_labels(root: QWidget) -> list[dict[str, Any]]:
    """Visible labels given less room than their text needs (wrapped text overlapping)."""
    cut = []
    for label in root.findChildren(QLabel):
        if not label.isVisible() or not label.text() or label.pixmap() is not None and not label.pixmap().isNull():
            continue
        if root.window() is not label.window():
            continue
        margins = label.contentsMargins()
        if label.wordWrap():
            needs = label.heightForWidth(label.width())
            if needs > label.height() + 1:
                cut.append({"text": label.text()[:60], "height": label.height(), "needs": needs})
        elif label.minimumSizeHint().width() > label.width() + margins.left() + margins.right() + 1:
            cut.append({"text": label.text()[:60], "width": label.width(), "needs": label.minimumSizeHint().width()})
    return cut


class Day:
    """The steps, each measured and photographed."""

    def __init__(self, window: Any, out: Path, prefix: str):
        self.window, self.out, self.prefix = window, out, prefix
        self.report: dict[str, Any] = {"scale": os.environ.get("QT_SCALE_FACTOR", "1"), "steps": {}}

    def measure(self, step: str, shown: QWidget | None = None) -> None:
        settle()
        shown = shown or self.window
        self.report["steps"][step] = {
            "window": [self.window.width(), self.window.height()],
            "shown": [shown.width(), shown.height()],
            "cut_buttons": cut_buttons(shown),
            "cut_labels": cut_labels(shown),
        }
        shown.grab().save(str(self.out / f"{self.prefix}-{step}.png"))


def run(out: Path, model: Path, prefix: str) -> dict[str, Any]:
    import cv2
    from skimage import data

    from eyescreen_desktop.core.records import Patient
    from eyescreen_desktop.gui.app import build_window, make_application
    from eyescreen_desktop.gui.settings_dialog import SettingsDialog

    app = make_application()
    tmp = Path(tempfile.mkdtemp(prefix="eyescreen-small-"))
    window, store = build_window(tmp / "data", dialogs=False)
    day = Day(window, out, prefix)
    try:
        window.show()
        settle()
        day.report["first_launch"] = [window.width(), window.height()]   # no saved geometry yet
        window.resize(*SCREEN)
        window.start(model)
        wait_for(window.engine.modelReady)
        day.measure("empty")
        for i in range(12):
            store.upsert_patient(Patient(f"P9{i:02d}", f"Patient number {i} with a long family name",
                                         dt.date(1950 + i, 1 + i % 12, 3)))
        window.patient_panel.search_edit.setText("Patient")
        window.patient_panel.search()
        day.measure("search")
        window.patient_panel.search_edit.clear()
        window.patient_panel.search()
        unknown = tmp / "IMG_0042.jpg"
        unknown.write_bytes((PHOTOS / "P004_R.jpg").read_bytes())
        window.patient_panel.set_patient(Patient("P004", "Ibn al-Haytham", dt.date(1955, 7, 1), "male",
                                                 "type 2", 15))
        window.screen_paths([PHOTOS / "P004_L.jpg", unknown])
        wait_for(window.engine.encounterSaved)
        day.measure("side-unknown")
        encounter = window.encounter_id
        window.tabs.setCurrentWidget(window.eye_check.panel)
        panel = window.eye_check.panel
        if panel.engine.worker.model is None:
            wait_for(panel.engine.ready)
        panel.check_image(data.astronaut())
        wait_for(panel.engine.checked)
        day.measure("eye-check")
        window.tabs.setCurrentWidget(window.queues)
        window.queues.refresh()
        settle(300)
        window.queues.select(encounter)
        day.measure("queues")
        if window.batch_panel is not None:
            window.tabs.setCurrentWidget(window.batch_panel)
            day.measure("batch")
        window.open_slip(encounter)
        wait_for(window.slip_dialog.ready)
        day.measure("document", window.slip_dialog)
        window.slip_dialog.close()
        dialog = SettingsDialog(window.settings, window.engine.card, window, engine=window.engine,
                                calibration_folder=tmp / "calibration")
        dialog.show()
        day.measure("settings", dialog)
        dialog.close()
        cv2.setNumThreads(1)
    finally:
        window.close()
        store.close()
        app.processEvents()
    return day.report


def main() -> int:
    out, model = Path(sys.argv[1]), Path(sys.argv[2])
    prefix = sys.argv[3] if len(sys.argv) > 3 else "small-screen"
    out.mkdir(parents=True, exist_ok=True)
    report = run(out, model, prefix)
    (out / f"{prefix}-report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
