"""Start-up under a desktop launcher: there is no console, so an error while the
window is being built must reach the log file and a dialog, not vanish."""

from __future__ import annotations

import argparse
import logging
import sys
import threading

import pytest

from eyescreen_desktop.gui import app as app_module
from eyescreen_desktop.gui.messages import Messages


@pytest.fixture
def restored_hooks_and_logging(monkeypatch):
    """run() installs process-wide hooks and a log file handler: undo both."""
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def test_an_error_while_the_window_is_built_is_logged_and_said(qtbot, tmp_path, monkeypatch,
                                                               restored_hooks_and_logging):
    before = sys.excepthook
    during: dict[str, object] = {}

    class BrokenWindow:
        def __init__(self, *args, **kwargs):
            during["hook"] = sys.excepthook
            raise RuntimeError("the queue view could not be built")

    said: list[tuple[str, str]] = []
    monkeypatch.setattr(app_module, "MainWindow", BrokenWindow)
    monkeypatch.setattr(app_module.QMessageBox, "critical", lambda parent, title, text: said.append((title, text)))
    data = tmp_path / "data"
    rc = app_module.run(argparse.Namespace(data_dir=data, model=None, smoke=False, verbose=False))

    assert rc == 1
    log_file = data / "logs" / app_module.LOG_FILE
    logged = log_file.read_text(encoding="utf-8")
    assert "could not open its window" in logged and "RuntimeError: the queue view could not be built" in logged
    assert said and said[0][0] == "EyeScreen cannot start" and str(log_file) in said[0][1]
    # the crash hook was already EyeScreen's while the window was being built
    assert during["hook"] is not before


def test_the_start_up_crash_hook_logs_errors_raised_in_qt_callbacks(qtbot, tmp_path, monkeypatch,
                                                                   restored_hooks_and_logging):
    """Qt hands an exception raised in a slot or event handler to sys.excepthook;
    during start-up that is the hook installed before the window exists."""
    during: dict[str, object] = {}

    class WindowWhoseSlotFails:
        def __init__(self, *args, **kwargs):
            during["hook"] = sys.excepthook
            raise SystemExit(5)  # stop run() here, after the hook was seen

    monkeypatch.setattr(app_module, "MainWindow", WindowWhoseSlotFails)
    shown: list[str] = []
    monkeypatch.setattr(Messages, "_open_box", lambda self, level, title, text, detail: shown.append(detail))
    data = tmp_path / "data"
    with pytest.raises(SystemExit):
        app_module.run(argparse.Namespace(data_dir=data, model=None, smoke=False, verbose=False))
    try:
        raise ValueError("settings key broken")
    except ValueError:
        during["hook"](*sys.exc_info())
    logged = (data / "logs" / app_module.LOG_FILE).read_text(encoding="utf-8")
    assert "ValueError: settings key broken" in logged
    assert shown and "settings key broken" in shown[0]
