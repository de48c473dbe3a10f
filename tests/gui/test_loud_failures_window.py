"""Failures the window says out loud (issue 20, defect 7): a Batch tab that cannot be
imported is a defect raised, never a window that quietly lacks the tab; a damaged
learned gate is refused when the model loads, and the status says so."""

from __future__ import annotations

import sys

import pytest


def test_an_import_error_in_the_batch_panel_is_not_hidden(qtbot, data_dir, monkeypatch):
    import eyescreen_desktop.gui as gui
    from eyescreen_desktop.gui.app import build_window

    monkeypatch.delattr(gui, "batch_panel", raising=False)
    monkeypatch.setitem(sys.modules, "eyescreen_desktop.gui.batch_panel", None)   # its import fails
    with pytest.raises(ImportError, match="batch_panel"):
        build_window(data_dir, dialogs=False)


def test_a_damaged_gate_is_said_at_start_and_nothing_is_graded(qtbot, qapp, tmp_path, monkeypatch):
    """The window's worker refuses a damaged learned gate when it loads the model: the
    status says so, and a photograph is answered with that reason, never graded by
    the hand-made rules alone."""
    import shutil

    from eyescreen_desktop.core import screening
    from eyescreen_desktop.core.gate import default_gate_dir
    from eyescreen_desktop.core.paths import default_model_dir
    from eyescreen_desktop.core.store import ClinicStore
    from eyescreen_desktop.gui.worker import ScreeningEngine

    damaged = tmp_path / "gate"
    shutil.copytree(default_gate_dir(), damaged)
    (damaged / "heads.npz").write_bytes(b"not the gate's heads")
    monkeypatch.setattr("eyescreen_desktop.core.gate.default_gate_dir", lambda: damaged)
    screening.default_gate.cache_clear()
    try:
        with ClinicStore(tmp_path / "clinic.sqlite3") as store:
            engine = ScreeningEngine(store, tmp_path / "captures")
            with qtbot.waitSignal(engine.modelFailed, timeout=60_000) as failed:
                engine.start(default_model_dir())
            assert "learned gate" in failed.args[0] and "damaged" in failed.args[0]
            assert not engine.ready
            assert engine.stop()
    finally:
        screening.default_gate.cache_clear()
