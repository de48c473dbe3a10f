"""Screenshots of the Grading and Quality assurance tabs for docs/images (offscreen).

A clinic database in a temporary folder with three screened patients (real
fundus-dr photographs; the AI results as the shipped model would store them, a
heat map on the urgent eye), graded by keyboard as a grader would: blind first,
then committed with the AI's heat map toggled on (H), then an outcome raised
with a reason (+).

The Quality assurance tab is shot on a simulated clinic's database
(scripts/simulated_clinic.py), when its data folder is given.

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/grading_screenshot.py [OUT_DIR] [QA_DATA_DIR SITE]
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QApplication

from eyescreen_desktop.core.paths import project_root
from eyescreen_desktop.core.records import Eye
from eyescreen_desktop.core.store import ClinicStore
from eyescreen_desktop.gui.grading_panel import GradingPanel
from eyescreen_desktop.gui.resources import stylesheet

sys.path.insert(0, str(project_root()))
from tests.core.grading_fixtures import MODEL, OP, ai_result, screened


def press(widget, text: str, key: int = 0) -> None:
    key = key or ord(text.upper())
    widget.keyPressEvent(QKeyEvent(QKeyEvent.Type.KeyPress, key, Qt.KeyboardModifier.NoModifier, text))
    QApplication.processEvents()


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else project_root() / "docs" / "images"
    app = QApplication.instance() or QApplication([])
    app.setStyleSheet(stylesheet())
    with tempfile.TemporaryDirectory() as tmp, ClinicStore(Path(tmp) / "clinic.sqlite3") as store:
        urgent = screened(store, "P214", 3, 1)
        yy, xx = np.mgrid[0:32, 0:32] / 31.0          # where the network saw signs: one blob off the disc
        heat = np.exp(-((xx - 0.42) ** 2 + (yy - 0.38) ** 2) / 0.012).astype(np.float32)
        store.save_result(urgent, replace(ai_result("P214", Eye.RIGHT, 3), heatmap=heat), MODEL, "icdr-ada", OP)
        screened(store, "P003", 2, 0)
        screened(store, "P004", None, 0)
        panel = GradingPanel(store, grader="Dr Grey")
        panel.resize(1280, 640)
        panel.show()
        panel.setFocus()
        QApplication.processEvents()
        press(panel, "3")
        press(panel, "m")
        QApplication.processEvents()
        panel.grab().save(str(out / "grading-blind.png"))
        press(panel, "\r", Qt.Key.Key_Return)
        press(panel, "1")
        press(panel, "\r", Qt.Key.Key_Return)
        press(panel, "h")
        QApplication.processEvents()
        panel.grab().save(str(out / "grading-committed.png"))
        press(panel, "\r", Qt.Key.Key_Return)          # the next encounter
        press(panel, "1")
        press(panel, "\r", Qt.Key.Key_Return)
        press(panel, "0")
        press(panel, "+")
        panel.reason_edit.setText("cotton-wool spots near the disc")
        QApplication.processEvents()
        panel.grab().save(str(out / "grading-raise.png"))
    print(f"wrote {out / 'grading-blind.png'}, {out / 'grading-committed.png'} and {out / 'grading-raise.png'}")
    if len(sys.argv) > 3:
        from eyescreen_desktop.gui.qa_view import QaView

        data = Path(sys.argv[2])
        with ClinicStore(data / "clinic.sqlite3", image_store=data / "images") as store:
            view = QaView(store, site=sys.argv[3])
            view.resize(1280, 760)
            view.show()
            view.refresh()
            view.split_by.setCurrentText("camera")
            QApplication.processEvents()
            view.grab().save(str(out / "qa-view.png"))
        print(f"wrote {out / 'qa-view.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
