"""A Batch tab that cannot be imported is a defect said out loud, never a window that
quietly lacks the tab (issue 20, defect 7)."""

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
