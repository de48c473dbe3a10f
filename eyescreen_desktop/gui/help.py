"""Help > Quick guide and Help > Keyboard shortcuts.

A nurse on the first morning should not need a manual: one page says how a
screening day goes, in the order it happens, and the shortcut list is built
from the window's own actions, so it can never disagree with the keys that
actually work.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from html import escape

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout, QWidget

GUIDE = """
<h2>A screening day with EyeScreen</h2>
<ol>
<li><b>Who is it?</b> Find the patient (Ctrl+F: ID, name or birth date; accents and case do not matter)
or type a new patient ID. The ID is fixed from the first photograph on; press Ctrl+N for the next patient.</li>
<li><b>Photograph both eyes.</b> Choose the camera in the {camera_place}, then press F5 for the right eye and
F6 for the left eye: the next picture from the camera is taken. Or open (Ctrl+O) or drop photographs;
files named ..._R / ..._L tell the eye. If a photograph shows the wrong eye, press
"This is the right eye" / "This is the left eye" under it, or drag it to the other eye.</li>
<li><b>Read the banner.</b> It says what to do: urgent or routine referral, review (retake or examine
in person) or annual screening. It says "NO REFERRAL" only when both eyes are graded, or the missing
eye's reason is recorded (Record why… under the empty eye).</li>
<li><b>Give the patient their document</b> (Ctrl+P): the referral slip, the result letter for annual
screening, or the review slip. Printing or saving it as PDF is recorded in the queues.</li>
<li><b>Next patient</b> (Ctrl+N). EyeScreen warns if an eye is still missing.</li>
</ol>
<h3>Queues ({queues_key})</h3>
<p>Urgent, routine, annual and review, most pressing first; overdue rows are red. Open a visit, print its
document, mark it referred or closed; a clinician can move a patient to another queue with a reason.</p>
<h3>A whole folder, or the camera's folder ({batch_key})</h3>
<p>"Screen folder" screens every photograph in a folder; "Start watching" screens each new photograph the
camera saves. Cancel keeps what was screened; screening the same folder again finishes the rest.
Quitting during a batch asks first, then finishes the photograph in hand.</p>
<p><i>EyeScreen is a screening aid, not a diagnosis. A clinician decides.</i></p>
"""


CAMERA_PLACE = "Camera box on the left, under the patient form"
"""Where the desk camera sits in the window (main_window puts the capture panel under the
patient panel, in the left column): the guide says it in these words."""


def guide_html(tab_shortcut: Callable[[str], str]) -> str:
    """The quick guide with the keys the window's tabs really have (``tab_shortcut(key)``
    gives "Ctrl+3" for the tab ``key``, from the window's one list of tabs)."""
    return GUIDE.format(camera_place=CAMERA_PLACE, queues_key=tab_shortcut("queues") or "its tab",
                        batch_key=tab_shortcut("batch") or "its tab")


def shortcut_rows(actions: Mapping[str, QAction]) -> list[tuple[str, str]]:
    """(key, what it does) for every action that has a shortcut, as the window defines them."""
    rows = []
    for action in actions.values():
        key = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        if key:
            rows.append((key, action.text().replace("&", "").rstrip("…")))
    return rows


def shortcuts_html(actions: Mapping[str, QAction]) -> str:
    """The shortcut list as an HTML table."""
    cells = "".join(f"<tr><td><b>{escape(key)}</b></td><td>{escape(what)}</td></tr>"
                    for key, what in shortcut_rows(actions))
    return f"<h2>Keyboard shortcuts</h2><table cellpadding='4'>{cells}</table>"


class HelpDialog(QDialog):
    """A page of help text (the guide or the shortcut list), non-modal."""

    def __init__(self, title: str, html: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(title)
        self.text = QTextBrowser()
        self.text.setHtml(html)
        self.text.setOpenExternalLinks(False)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addWidget(buttons)
        self.resize(640, 560)
