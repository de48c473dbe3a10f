"""Issue 12, item 14: quitting during a batch asks first, says "Finishing…",
keeps the window responsive while the photograph in hand is finished, keeps
what was screened, and ends cleanly: no "Fatal Python error" at exit, over
several fresh processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtWidgets import QMessageBox

from eyescreen_desktop.core.records import Queue
from eyescreen_desktop.gui.app import build_window
from tests.conftest import FUNDUS_DR

WAIT_MS = 60_000
ROOT = Path(__file__).resolve().parents[2]
PHOTOS = 40


@pytest.fixture(scope="module")
def batch_folder(tmp_path_factory) -> Path:
    """Forty real photographs (twenty patients' two eyes), big enough to quit in the middle of."""
    folder = tmp_path_factory.mktemp("camp")
    sources = sorted((FUNDUS_DR / "images").glob("*.jpg"))[:PHOTOS]
    for path in sources:
        shutil.copy(path, folder / path.name)
    return folder


@pytest.fixture(scope="module")
def onnx_model(urgent_onnx_model_dir) -> Path:
    """The fixed-urgent model with its ONNX runtime: a fresh process loads it without TensorFlow."""
    return urgent_onnx_model_dir


def test_quitting_mid_batch_asks_then_finishes_and_keeps_the_work(qtbot, data_dir, urgent_model_dir, batch_folder):
    window, store = build_window(data_dir, dialogs=False)
    qtbot.addWidget(window)
    window.show()
    try:
        with qtbot.waitSignal(window.engine.modelReady, timeout=WAIT_MS):
            window.start(urgent_model_dir)
        with qtbot.waitSignal(window.engine.progress, timeout=WAIT_MS,
                              check_params_cb=lambda _rid, done, _total, _what: done >= 1):
            assert window.batch_panel.screen_folder(batch_folder) is not None
        window.close()
        assert window.isVisible() and window.quit_box is not None      # asked, not gone
        assert "still running" in window.quit_box.windowTitle() and "saved" in window.quit_box.text()
        keep = next(b for b in window.quit_box.buttons()
                    if window.quit_box.buttonRole(b) == QMessageBox.ButtonRole.RejectRole)
        keep.click()
        assert window.isVisible() and window.engine.busy
        window.close()
        window.quit_button.click()
        assert "finishing" in window.windowTitle() and not window.centralWidget().isEnabled()
        assert "Finishing" in window.batch_panel.status.text()
        qtbot.waitUntil(lambda: not window.isVisible(), timeout=WAIT_MS)
        assert not window.engine.thread.isRunning()
        screened = sum(store.queue_counts().values())
        assert 1 <= screened < PHOTOS // 2                              # stopped part-way, work kept
        assert store.queue_counts()[Queue.URGENT] == screened
    finally:
        window.close()
        store.close()


def test_quitting_mid_batch_in_a_fresh_process_ends_cleanly(tmp_path, onnx_model, batch_folder):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}
    for attempt in range(3):
        data = tmp_path / f"data{attempt}"
        out = subprocess.run([sys.executable, str(ROOT / "tests" / "gui" / "quit_mid_batch.py"), str(data),
                              str(onnx_model), str(batch_folder)],
                             capture_output=True, text=True, timeout=180, env=env, cwd=ROOT)
        assert "Fatal Python error" not in out.stderr, out.stderr[-3000:]
        assert out.returncode == 0, out.stderr[-3000:]
        assert "quit asked mid-batch" in out.stdout and "exit status 0" in out.stdout
