"""The one path by which the desktop app tells people something.

Log first, then show (qutebrowser's ``utils/message.py``): whatever staff see
is also in the log file the support contact asks for. Errors are written for
a nurse: they name the file and say what to do. Dialogs open window-modal with
``open()``, never ``exec()``, so the event loop (and the camera preview, and
the worker's signals) keeps running while a message is on screen.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from types import TracebackType

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QMessageBox, QWidget

log = logging.getLogger("eyescreen.messages")

ERROR, WARNING, INFO = "error", "warning", "info"
_LOG_LEVEL = {ERROR: logging.ERROR, WARNING: logging.WARNING, INFO: logging.INFO}
_ICON = {ERROR: QMessageBox.Icon.Critical, WARNING: QMessageBox.Icon.Warning, INFO: QMessageBox.Icon.Information}


@dataclass(frozen=True)
class Message:
    """One thing said to the user."""

    level: str
    title: str
    text: str


class Messages(QObject):
    """Says things to the user: logs them, then shows them.

    ``parent`` is the window dialogs belong to; ``shown(level, title, text)``
    fires for each message (the status bar echoes it; tests read ``history``).
    ``dialogs=False`` logs and records without opening any dialog (scripts)."""

    shown = Signal(str, str, str)

    def __init__(self, parent: QWidget | None = None, dialogs: bool = True):
        super().__init__(parent)
        self.window = parent
        self.dialogs = dialogs
        self.history: list[Message] = []
        self.box: QMessageBox | None = None  # the dialog on screen, if any

    def error(self, title: str, text: str, detail: str = "") -> None:
        """Something failed and the user must act: say what to do."""
        self._say(ERROR, title, text, detail)

    def warning(self, title: str, text: str, detail: str = "") -> None:
        """Something needs attention but nothing is lost."""
        self._say(WARNING, title, text, detail)

    def info(self, title: str, text: str) -> None:
        """Good to know; shown in the status bar only, never as a dialog."""
        log.info("%s: %s", title, text)
        self.history.append(Message(INFO, title, text))
        self.shown.emit(INFO, title, text)

    def logged(self, level: str, title: str, text: str) -> None:
        """Log, record and echo a message that the caller shows in its own dialog
        (one with its own buttons): one message on screen, never a second box."""
        log.log(_LOG_LEVEL[level], "%s: %s", title, text)
        self.history.append(Message(level, title, text))
        self.shown.emit(level, title, text)

    def _say(self, level: str, title: str, text: str, detail: str) -> None:
        log.log(_LOG_LEVEL[level], "%s: %s%s", title, text, f"\n{detail}" if detail else "")
        self.history.append(Message(level, title, text))
        self.shown.emit(level, title, text)
        if self.dialogs:
            self._open_box(level, title, text, detail)

    def _open_box(self, level: str, title: str, text: str, detail: str) -> None:
        box = QMessageBox(_ICON[level], title, text, QMessageBox.StandardButton.Ok, self.window)
        box.setTextFormat(Qt.TextFormat.PlainText)
        if detail:
            box.setDetailedText(detail)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.finished.connect(self._box_closed)
        self.box = box
        box.open()

    def _box_closed(self) -> None:
        self.box = None

    def crash(self, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None,
              log_file: str = "") -> None:
        """An exception nobody caught: log it in full and show the crash dialog,
        so the app never vanishes without a word."""
        detail = "".join(traceback.format_exception(exc_type, exc, tb))
        log.critical("unexpected error: %s", exc, exc_info=(exc_type, exc, tb))
        where = f" The details are in {log_file}." if log_file else ""
        text = (f"EyeScreen hit an unexpected problem: {exc_type.__name__}: {exc}\n\n"
                "Results already shown are saved. You can keep working; if it happens again, "
                f"restart EyeScreen and tell your support contact.{where}")
        self.history.append(Message(ERROR, "Unexpected problem", text))
        self.shown.emit(ERROR, "Unexpected problem", text)
        if self.dialogs:
            self._open_box(ERROR, "Unexpected problem", text, detail)
