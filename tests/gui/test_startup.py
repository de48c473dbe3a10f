"""Start-up under a desktop launcher: there is no console, so an error while the
window is being built must reach the log file and a dialog, not vanish."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import threading

import pytest

from eyescreen_desktop.core.records import Eye
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


# --------------------------------------------------------------------------- the window first (issue 20)


def _smoke_fields(out: str) -> dict[str, str]:
    return {key: value for line in out.splitlines() for key, _, value in
            (part.partition("=") for part in line.split(" ")) if value}


def test_the_window_is_painted_before_the_database_and_the_model_are_opened(tmp_path, urgent_onnx_model_dir):
    """The real ``eyescreen gui`` process over a clinic database: at the first paint
    neither SQLAlchemy nor Alembic nor ONNX Runtime is imported; the database opens
    after it (migrations on the background helper), and the queues show it. How
    fast is `eyescreen bench`'s window_shown_s / window_shown_full_s, not a test."""
    import os
    import subprocess
    from pathlib import Path

    from eyescreen_desktop.core.paths import data_paths
    from eyescreen_desktop.core.store import ClinicStore
    from tests.gui.clinic_fixtures import TODAY, add_encounter, graded_eye

    data = tmp_path / "data"
    with ClinicStore.open(data_paths(data).ensure()) as clinic:
        add_encounter(clinic, "P001", "On Record", (graded_eye(Eye.RIGHT, 4), graded_eye(Eye.LEFT, 0)),
                      dt.datetime.combine(TODAY, dt.time(9)))
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(data / "config")}
    out = subprocess.run([sys.executable, "-m", "eyescreen_desktop", "gui", "--data-dir", str(data),
                          "--model", str(urgent_onnx_model_dir), "--smoke"], capture_output=True, text=True,
                         check=False, timeout=120, env=env, cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr[-2000:]
    fields = _smoke_fields(out.stdout)
    assert (fields["sqlalchemy_loaded"], fields["alembic_loaded"], fields["onnxruntime_loaded"]) == \
        ("False", "False", "False"), out.stdout
    assert float(fields["window_shown_at"]) <= float(fields["store_open_at"]) and fields["opened"] == "True"
    assert float(fields["window_shown_at"]) <= float(fields["model_done_at"])
    assert "Model: fixed-urgent 1.0.0" in out.stdout


def test_a_database_that_cannot_be_opened_is_said_after_the_window_shows(qtbot, tmp_path, monkeypatch,
                                                                         restored_hooks_and_logging):
    """The store now opens after the first paint; a damaged database still ends
    start-up with "EyeScreen cannot start", the file named, exit status 1."""
    data = tmp_path / "data"
    (data).mkdir()
    (data / "clinic.sqlite3").write_bytes(b"this is not a database, " * 200)
    said: list[tuple[str, str]] = []
    monkeypatch.setattr(app_module.QMessageBox, "critical", lambda parent, title, text: said.append((title, text)))
    monkeypatch.setattr(Messages, "_open_box", lambda *args: None)   # "model not loaded" needs no box here
    rc = app_module.run(argparse.Namespace(data_dir=data, model=tmp_path / "no-model", smoke=False, verbose=False))
    assert rc == 1
    assert said and said[0][0] == "EyeScreen cannot start" and "clinic.sqlite3" in said[0][1]
    logged = (data / "logs" / app_module.LOG_FILE).read_text(encoding="utf-8")
    assert "EyeScreen cannot start" in logged and "clinic.sqlite3" in logged
