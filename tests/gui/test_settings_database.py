"""Settings choose the clinic database and the shared image folder (issue 14): a
workstation is pointed at the clinic server once, in the window, not on every
command line. ``--database`` and the environment still win, in that order."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from eyescreen_desktop.core.store import ClinicStore
from eyescreen_desktop.gui.app import resolve_store
from eyescreen_desktop.gui.settings import open_settings
from eyescreen_desktop.gui.settings_dialog import SettingsDialog

ROOT = Path(__file__).resolve().parents[2]


def test_dialog_writes_the_database_and_image_folder(qtbot, tmp_path):
    settings, _ = open_settings(tmp_path / "d")
    dialog = SettingsDialog(settings)
    qtbot.addWidget(dialog)
    dialog.database.setText("  postgresql://eyescreen@server/clinic ")
    dialog.image_store.edit.setText(str(tmp_path / "share"))
    dialog.accept()
    again, _ = open_settings(tmp_path / "d")   # read back from the file, as at the next start
    assert again.database_url == "postgresql://eyescreen@server/clinic"
    assert again.image_store == str(tmp_path / "share")


def test_command_line_then_environment_then_settings(tmp_path, monkeypatch):
    settings, _ = open_settings(tmp_path / "d")
    settings.database_url, settings.image_store = "postgresql://a@settings/clinic", str(tmp_path / "share")
    monkeypatch.delenv("EYESCREEN_DATABASE_URL", raising=False)
    monkeypatch.delenv("EYESCREEN_IMAGE_STORE", raising=False)
    assert resolve_store(None, settings) == ("postgresql://a@settings/clinic", str(tmp_path / "share"))
    assert resolve_store("sqlite:///x.db", settings)[0] == "sqlite:///x.db"
    monkeypatch.setenv("EYESCREEN_DATABASE_URL", "postgresql://b@env/clinic")
    monkeypatch.setenv("EYESCREEN_IMAGE_STORE", str(tmp_path / "env-share"))
    assert resolve_store(None, settings) == ("postgresql://b@env/clinic", str(tmp_path / "env-share"))
    settings.database_url = settings.image_store = ""
    monkeypatch.delenv("EYESCREEN_DATABASE_URL")
    monkeypatch.delenv("EYESCREEN_IMAGE_STORE")
    assert resolve_store(None, settings) == (None, None)    # the data folder's own SQLite file and images


def test_the_window_opens_the_database_chosen_in_settings(tmp_path, urgent_onnx_model_dir):
    data, clinic, share = tmp_path / "d", tmp_path / "server" / "clinic.sqlite3", tmp_path / "share"
    clinic.parent.mkdir()
    share.mkdir()
    settings, _ = open_settings(data)
    settings.database_url, settings.image_store = f"sqlite:///{clinic}", str(share)
    settings.sync()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EYESCREEN_")}
    out = subprocess.run([sys.executable, "-m", "eyescreen_desktop", "gui", "--data-dir", str(data), "--model",
                          str(urgent_onnx_model_dir), "--smoke"], capture_output=True, text=True, timeout=120,
                         env={**env, "QT_QPA_PLATFORM": "offscreen"}, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert clinic.is_file() and not (data / "clinic.sqlite3").exists()   # the chosen database, not the default
    with ClinicStore(clinic, share) as store:
        assert store.url.endswith(str(clinic))
