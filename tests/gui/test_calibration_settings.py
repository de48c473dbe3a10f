"""Settings > "Calibrate on this clinic's graded photographs", end to end in the window:
labels CSV chosen, calibrated on the worker thread with the shipped model on real
photographs, result shown, saved, used for desk screening; a point calibrated for
other weights is refused and nothing is screened."""

from __future__ import annotations

import csv
import gc
import json
from pathlib import Path

import pytest
from PySide6.QtCore import QCoreApplication, QEvent

from eyescreen_desktop.core.paths import default_model_dir
from eyescreen_desktop.gui.app import build_window
from tests.conftest import FUNDUS_DR, read_labels

WAIT_MS = 120_000
MODEL = default_model_dir()
pytestmark = pytest.mark.skipif(not (MODEL / "model_card.json").is_file(), reason="no shipped model")


@pytest.fixture
def window(qtbot, data_dir):
    win, store = build_window(data_dir, dialogs=False)
    win.show()  # not qtbot.addWidget: pytest-qt would close it before this teardown, while still busy
    with qtbot.waitSignal(win.engine.modelReady, timeout=WAIT_MS):
        win.start(MODEL)
    yield win
    qtbot.waitUntil(lambda: not win.engine.busy, timeout=WAIT_MS)  # a busy window refuses to close
    win.close()
    assert win.engine.stop()
    win.deleteLater()
    # Delete the window and collect its Python cycles here, on the GUI thread: left to a garbage
    # collection that happens to run on the next window's worker thread, they crash the process.
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    gc.collect()
    store.close()


def _labels(folder: Path) -> Path:
    rows = read_labels(FUNDUS_DR)
    picked = [r for g in "01234" for r in [r for r in rows if r["icdr_grade"] == g][:5]]
    path = folder / "clinic-camera" / "labels.csv"
    path.parent.mkdir(parents=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "patient", "eye", "icdr_grade"])
        w.writerows([FUNDUS_DR / "images" / r["file"], r["patient"], r["eye"], r["icdr_grade"]] for r in picked)
    return path


def test_calibrate_in_settings_then_screen_with_the_clinics_point(qtbot, window, tmp_path):
    from eyescreen_desktop.gui.settings_dialog import SettingsDialog

    settings_dialog = SettingsDialog(window.settings, window.engine.card, window, engine=window.engine,
                                     calibration_folder=tmp_path / "calibration")
    qtbot.addWidget(settings_dialog)
    field = settings_dialog.site_operating_point
    assert "model card's operating point" in field.summary.text() and field.calibrate.isEnabled()
    dialog = field.open_calibration()
    dialog.add_labels([_labels(tmp_path)])
    dialog.min_eyes.setValue(20)
    with qtbot.waitSignal(window.engine.batchDone, timeout=WAIT_MS):
        assert dialog.start() is not None
    assert dialog.use_button.isEnabled(), dialog.status.text()
    assert "referable threshold" in dialog.result.toPlainText() and "clinic-camera" in dialog.result.toPlainText()
    # issue 24: in words and a table, not a wrapped monospace dump
    assert "Referable eyes found (sensitivity)" in dialog.result.toPlainText() and "<table" in dialog.result.toHtml()
    assert "Expected referral rate" in dialog.result.toPlainText() and "ref sens" not in dialog.result.toPlainText()
    op_path = dialog.result_path
    assert op_path.is_file() and op_path.with_suffix(".pdf").is_file()
    dialog.use_button.click()
    thresholds = json.loads(op_path.read_text())["thresholds"]
    assert field.path == str(op_path) and f"referable \u2265 {thresholds['referable']:.4f}" in field.summary.text()
    settings_dialog.accept()
    assert window.settings.site_operating_point == str(op_path)

    qtbot.keyClicks(window.patient_panel.id_edit, "P001")          # P001_L.jpg: this patient's photograph
    with qtbot.waitSignal(window.engine.encounterSaved, timeout=WAIT_MS) as saved:
        assert window.screen_paths([FUNDUS_DR / "images" / "P001_L.jpg"]) is not None
    op = saved.args[1].operating_point
    assert (op.referable, op.urgent) == (thresholds["referable"], thresholds["urgent"])


def test_a_point_calibrated_for_other_weights_is_refused(qtbot, window, tmp_path):
    from eyescreen_desktop.core.calibration import OP_FORMAT
    from eyescreen_desktop.gui.settings_dialog import SettingsDialog

    other = tmp_path / "other-model.json"
    other.write_text(json.dumps({"format": OP_FORMAT, "name": "other", "thresholds": {"referable": 0.1, "urgent": 0.05},
                                 "model": {"name": "x", "version": "9", "weights_sha256": "0" * 64}}))
    dialog = SettingsDialog(window.settings, window.engine.card, window, engine=window.engine)
    qtbot.addWidget(dialog)
    dialog.site_operating_point.set_path(str(other))
    assert "Refused" in dialog.site_operating_point.summary.text()
    assert "calibrate again with this model" in dialog.site_operating_point.summary.toolTip()
    dialog.accept()
    qtbot.keyClicks(window.patient_panel.id_edit, "P301")
    with qtbot.waitSignal(window.messages.shown, timeout=5000) as said:
        assert window.screen_paths([FUNDUS_DR / "images" / "P001_L.jpg"]) is None
    level, title, text = said.args
    assert title == "Operating point refused" and "calibrate again with this model" in text
    assert not window.engine.busy


def test_heat_map_shown_only_for_the_referred_eye_and_only_on_the_retina(qtbot, window, tmp_path):
    from eyescreen_desktop.core.heatmap import NO_AREA_TEXT
    from eyescreen_desktop.core.records import Eye, Queue

    right, left = tmp_path / "P400_R.jpg", tmp_path / "P400_L.jpg"
    right.symlink_to(FUNDUS_DR.parent / "idrid" / "images" / "IDRiD_001.jpg")   # ICDR 3
    left.symlink_to(FUNDUS_DR / "images" / "P001_L.jpg")                         # ICDR 0
    qtbot.keyClicks(window.patient_panel.id_edit, "P400")
    with qtbot.waitSignal(window.engine.encounterSaved, timeout=WAIT_MS):
        assert window.screen_paths([right, left]) is not None
    view = window.result_view
    qtbot.waitUntil(lambda: all(view.cards[e].shown is not None for e in (Eye.RIGHT, Eye.LEFT)), timeout=WAIT_MS)
    sick, healthy = view.cards[Eye.RIGHT], view.cards[Eye.LEFT]
    assert sick.shown.result.queue is not Queue.ANNUAL and sick.shown.result.heatmap is not None
    assert healthy.shown.result.queue is Queue.ANNUAL and healthy.shown.result.heatmap is None
    view.set_heatmap(True)
    assert NO_AREA_TEXT in healthy.file.text() and NO_AREA_TEXT not in sick.file.text()
    window.grab().save(str(tmp_path / "window.png"))


def test_calibrating_on_too_few_eyes_says_so_and_saves_nothing(qtbot, window, tmp_path):
    from eyescreen_desktop.gui.calibration_dialog import CalibrationDialog

    dialog = CalibrationDialog(window.engine, tmp_path / "calibration", window)
    qtbot.addWidget(dialog)
    dialog.add_labels([_labels(tmp_path)])                        # 25 photographs, 100 required
    with qtbot.waitSignal(window.engine.failed, timeout=WAIT_MS):
        dialog.start()
    assert "at least 100 graded eyes" in dialog.status.text()
    assert not dialog.use_button.isEnabled() and dialog.run_button.isEnabled()
    assert not (tmp_path / "calibration").exists() or not any((tmp_path / "calibration").iterdir())


def _op_file(path: Path, card, referable: float, urgent: float, weights_sha256: str | None = None) -> Path:
    from eyescreen_desktop.core.calibration import OP_FORMAT

    path.write_text(json.dumps({"format": OP_FORMAT, "name": path.stem,
                                "thresholds": {"referable": referable, "urgent": urgent},
                                "model": {"name": card.name, "version": card.version,
                                          "weights_sha256": weights_sha256 or card.weights_sha256}}))
    return path


def test_folder_batches_use_the_clinics_point_and_refuse_another_models(qtbot, window, tmp_path):
    from eyescreen_desktop.core.records import Queue

    folder = tmp_path / "day"
    folder.mkdir()
    for name in ("P001_L.jpg", "P001_R.jpg"):
        (folder / name).symlink_to(FUNDUS_DR / "images" / name)
    card = window.engine.card
    window.settings.site_operating_point = str(_op_file(tmp_path / "refer-all.json", card, 0.0, 0.0))
    panel = window.batch_panel
    with qtbot.waitSignal(window.engine.batchDone, timeout=WAIT_MS) as done:
        assert panel.screen_folder(folder) is not None
    report = done.args[1]
    assert {e.queue for e in report.encounters} == {Queue.URGENT}      # thresholds 0: every eye referred
    assert report.encounters[0].operating_point.name == "refer-all"
    qtbot.waitUntil(lambda: not panel.running, timeout=WAIT_MS)
    window.settings.site_operating_point = str(_op_file(tmp_path / "other.json", card, 0.1, 0.05, "0" * 64))
    with qtbot.waitSignal(window.messages.shown, timeout=5000) as said:
        assert panel.screen_folder(folder) is None
    assert said.args[1] == "Operating point refused" and not window.engine.busy
