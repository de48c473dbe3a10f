"""Issue 12, item 16: Help has a guide and the shortcut list; the open dialog
comes only after the patient ID; only cameras that open are listed."""

from __future__ import annotations

from PySide6.QtWidgets import QFileDialog

from eyescreen_desktop.gui.capture_panel import CapturePanel


def test_help_menu_has_a_guide_and_the_real_shortcuts(qtbot, window):
    help_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Help")
    titles = [a.text() for a in help_menu.actions()]
    assert "Quick &guide" in titles and "&Keyboard shortcuts" in titles
    window.actions["guide"].trigger()
    guide = window.help_dialog.text.toPlainText()
    assert "F5" in guide and "Next patient" in guide and "not a diagnosis" in guide
    window.help_dialog.close()
    window.actions["shortcuts"].trigger()
    listed = window.help_dialog.text.toPlainText()
    for key in ("F5", "F6", "Ctrl+N", "Ctrl+P", "F1"):
        assert key in listed
    assert "Capture right eye" in listed and "Next patient" in listed


def test_open_dialog_comes_after_the_patient_id(qtbot, window, monkeypatch):
    asked = []
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *a, **k: (asked.append(a), ([], ""))[1])
    window.open_files()
    assert asked == [] and window.messages.history[-1].title == "Who is this?"
    qtbot.keyClicks(window.patient_panel.id_edit, "P300")
    window.open_files()
    assert len(asked) == 1


def test_only_cameras_that_open_are_listed(qtbot):
    none = CapturePanel(probe=lambda: [])
    qtbot.addWidget(none)
    qtbot.waitUntil(lambda: none.cameras == [])
    texts = [none.chooser.itemText(i) for i in range(none.chooser.count())]
    assert not any(t.startswith("Camera ") for t in texts)
    assert any("No camera found" in t for t in texts)
    one = CapturePanel(probe=lambda: [1])
    qtbot.addWidget(one)
    qtbot.waitUntil(lambda: one.cameras == [1])
    assert [one.chooser.itemText(i) for i in range(one.chooser.count()) if "Camera" in one.chooser.itemText(i)] \
        == ["Camera 2"]
    assert one.chooser.findData("1") >= 0 and one.chooser.findData("0") < 0
