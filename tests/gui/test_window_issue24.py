"""Issue 24, the window: tab shortcuts, a 1024x700 screen, birth dates, the
settings in the clinic's words, and the smaller window defects (eye crops,
Help's camera, the last folder, an interrupted batch, "Mark referred")."""

from __future__ import annotations

import re

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence


def _plain(text: str) -> str:
    return text.replace("&", "").rstrip("…")


# ---------------------------------------------------------------------- item 7: tabs, menu and shortcuts


def test_every_view_entry_and_its_shortcut_open_the_tab_it_names(qtbot, window):
    view_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&View")
    entries = [a for a in view_menu.actions() if re.fullmatch(r"Ctrl\+\d", a.shortcut().toString())]
    titles = [window.tabs.tabText(i) for i in range(window.tabs.count())]
    assert [_plain(a.text()) for a in entries] == titles    # one entry per tab, in the tabs' order
    for number, action in enumerate(entries, start=1):
        assert action.shortcut() == QKeySequence(f"Ctrl+{number}")
        window.tabs.setCurrentIndex((number % len(titles)))   # somewhere else first
        action.trigger()
        assert window.tabs.tabText(window.tabs.currentIndex()) == _plain(action.text())
        window.tabs.setCurrentIndex((number % len(titles)))
        qtbot.keyClick(window, Qt.Key.Key_0 + number, Qt.KeyboardModifier.ControlModifier)
        assert window.tabs.tabText(window.tabs.currentIndex()) == _plain(action.text())


def test_the_guide_names_the_keys_the_tabs_really_have(qtbot, window):
    window.actions["guide"].trigger()
    guide = window.help_dialog.text.toPlainText()
    for key, action in window.actions.items():
        if re.fullmatch(r"Ctrl\+\d", action.shortcut().toString()):
            title = _plain(action.text())
            for mentioned in re.findall(rf"{title} \((Ctrl\+\d)\)", guide):
                assert mentioned == action.shortcut().toString(), (key, guide)
    assert re.search(r"Queues \(Ctrl\+\d\)", guide)


# ---------------------------------------------------------------------- item 11: Help says where the camera is


def test_the_guide_says_where_the_camera_really_is(qtbot, window):
    window.resize(1024, 700)
    window.actions["guide"].trigger()
    guide = " ".join(window.help_dialog.text.toPlainText().split())
    camera = window.capture_panel.mapTo(window, window.capture_panel.rect().topLeft())
    patient = window.patient_panel.mapTo(window, window.patient_panel.rect().bottomLeft())
    tabs = window.tabs.mapTo(window, window.tabs.rect().topLeft())
    assert camera.x() < tabs.x() and camera.y() > patient.y()     # left column, under the patient form
    assert "top left" not in guide
    assert "on the left, under the patient form" in guide
