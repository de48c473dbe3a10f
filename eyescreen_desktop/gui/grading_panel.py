"""The "Grading" tab: a second reader grades what EyeScreen decided, blind and by keyboard.

What needs a human grade (every referral and review not yet graded, the
quality-assurance sample of annual encounters, encounters waiting for
arbitration: ``ClinicStore.to_grade``) is listed most urgent first, then
oldest. The grader sees both eyes side by side (zoom with the wheel, pan by
dragging, red-free view with R) and, until they commit, nothing of what the AI
said nor why the encounter is listed (blind first read). Keys, about three per eye:

* 0-4: the ICDR grade of the eye in hand; U: ungradable; M: maculopathy yes/no;
* other findings, each a toggle: A signs of AMD, G glaucoma suspect, C cataract,
  V vein occlusion, O other;
* Enter: the next eye, and after the left eye, commit both (``record_grades``),
  which re-queues the encounter by the protocol (arbitration when grader and AI
  disagree at the decision level) and reveals what the AI had said.
* The outcome follows from the grades by the clinic's protocol (shown as the
  grader types). ``+`` raises it one step (annual, review, routine, urgent) and
  asks for the reason, Enter in the reason commits; ``-`` takes the raise back.
  It can never be lowered below the protocol's outcome.
* After the commit the encounter stays on show with what the AI said; H toggles
  the AI's heat map (never before the commit), Enter moves to the next encounter.

After the commit the patient's document is written again (with its "graded by"
line) into the documents folder, the earlier one kept as superseded
(``core.regrading``).

Until the accounts issue brings sign-in, the grader's name is typed once at the top
and every grade is audited under it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QKeyEvent, QPixmap, QResizeEvent, QWheelEvent
from PySide6.QtWidgets import (
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ..core.grading import FINDINGS, HumanGrade, OutcomeRaise, next_raise, protocol_outcome
from ..core.regrading import regenerate_document
from ..core.imageio import ImageReadError, read_image
from ..core.preprocess import model_square
from ..core.records import ICDR_GRADE_NAMES, Eye, EyeResult, Queue, Status
from ..domain.vocabulary import reason_words
from .result_view import overlay_heatmap

log = logging.getLogger(__name__)

SIDES = (Eye.RIGHT, Eye.LEFT)
HEATMAP_SIDE = 768   # px: the model's square the heat map is drawn over (it is in the model's frame)
FINDING_KEYS = {"a": "amd", "g": "glaucoma_suspect", "c": "cataract", "v": "vein_occlusion", "o": "other"}


def quality_words(photo: EyeResult) -> str:
    """The photo-quality verdict (the gate's, not a grade: shown during a blind read)."""
    if photo.status is Status.OK:
        return "Photo quality: gradable"
    reasons = reason_words(photo.quality.reasons if photo.quality else ())
    return "Photo quality: could not be graded by EyeScreen" + (f" ({reasons})" if reasons else "")


def _pixmap(rgb: np.ndarray) -> QPixmap:
    rgb = np.ascontiguousarray(rgb)
    h, w, _ = rgb.shape
    return QPixmap.fromImage(QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy())


class EyeView(QGraphicsView):
    """One eye at full resolution: fit to the view, wheel to zoom, drag to pan."""

    def __init__(self) -> None:
        super().__init__()
        self.setScene(QGraphicsScene(self))
        self.item = QGraphicsPixmapItem()
        self.scene().addItem(self.item)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)     # keys belong to the panel
        self.rgb: np.ndarray | None = None
        self.heatmap: np.ndarray | None = None   # shown only after the commit, when toggled on (H)
        self.zoomed = False          # the grader zoomed in: resizing no longer refits

    def show_photo(self, rgb: np.ndarray | None, red_free: bool) -> None:
        self.rgb, self.heatmap, self.zoomed = rgb, None, False
        self.redraw(red_free)

    def show_heatmap(self, heatmap: np.ndarray | None, red_free: bool) -> None:
        """Overlay the AI's heat map (None: the photograph alone). The map is in the
        model's frame, so it is drawn over the model's square of the photograph."""
        self.heatmap, self.zoomed = heatmap, False
        self.redraw(red_free)

    def redraw(self, red_free: bool) -> None:
        if self.rgb is None:
            self.item.setPixmap(QPixmap())
            return
        if self.heatmap is not None:
            shown = overlay_heatmap(model_square(self.rgb, HEATMAP_SIDE), self.heatmap)
        else:
            shown = np.repeat(self.rgb[:, :, 1:2], 3, axis=2) if red_free else self.rgb
        self.item.setPixmap(_pixmap(shown))
        self.scene().setSceneRect(self.item.boundingRect())
        if not self.zoomed:
            self.fitInView(self.item, Qt.AspectRatioMode.KeepAspectRatio)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if not self.zoomed and self.rgb is not None:
            self.fitInView(self.item, Qt.AspectRatioMode.KeepAspectRatio)

    def wheelEvent(self, event: QWheelEvent) -> None:
        factor = 1.25 if event.angleDelta().y() > 0 else 0.8
        self.zoomed = True
        self.scale(factor, factor)


class GradingPanel(QWidget):
    """The grading desk for one grader (see the module's note)."""

    committed = Signal(str)          # the encounter just graded

    def __init__(self, store: Any, grader: str = "", settings: Any = None, parent: QWidget | None = None,
                 documents_dir: Path | None = None, read_now: bool = True) -> None:
        """``settings`` (the window's): the quality-assurance share of annual encounters
        drawn at each refresh, and whether a single grader's decision stands.
        ``documents_dir``: where the patient's document is written again after a commit
        (None: not written). ``read_now`` False: the worklist is read at the first
        :meth:`refresh` (the window's, when the tab opens), not here."""
        super().__init__(parent)
        self.store, self.settings, self.documents_dir = store, settings, documents_dir
        self.outcome = QLabel()
        self.outcome.setWordWrap(True)
        self.reason_edit = QLineEdit()
        self.reason_edit.setPlaceholderText("why you raise the outcome (required), then Enter to commit")
        self.reason_edit.hide()
        self.reason_edit.returnPressed.connect(self._reason_entered)
        self._swallow_return = False   # the reason's Enter, which the line edit passes on to the panel too
        self.raise_to: Queue | None = None
        self.revealed_mode = False     # committed: the AI's reading (and heat map, H) may be shown
        self.heat_on = False
        self.grader_edit = QLineEdit(grader)
        self.grader_edit.setPlaceholderText("your name (asked once; every grade is audited under it)")
        self.counts = QLabel()
        self.worklist = QListWidget()
        self.worklist.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.views = {side: EyeView() for side in SIDES}
        self.entry = {side: QLabel() for side in SIDES}
        self.quality = {side: QLabel() for side in SIDES}
        self.help = QLabel("Keys: 0-4 grade \u00b7 U ungradable \u00b7 M maculopathy \u00b7 Enter next eye / commit "
                           "\u00b7 R red-free \u00b7 findings: A AMD, G glaucoma suspect, C cataract, V vein occlusion, "
                           "O other \u00b7 + raise the outcome (with a reason), - take the raise back")
        self.help.setWordWrap(True)
        self.revealed = QLabel()
        self.revealed.setWordWrap(True)
        self.red_free = False
        self.encounter: str | None = None
        self.summary: Any = None
        self.side = Eye.RIGHT
        self.grades: dict[Eye, int | None] = {}
        self.macula: dict[Eye, bool] = {}
        self.findings: dict[Eye, set[str]] = {}
        self._ticket = 0   # the latest background refresh
        self._build()
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.worklist.currentRowChanged.connect(self._open_row)
        if read_now and not getattr(self.store, "opening", False):   # else read when the tab opens
            self.refresh()

    def _build(self) -> None:
        top = QHBoxLayout()
        top.addWidget(QLabel("Grader:"))
        top.addWidget(self.grader_edit, 1)
        top.addWidget(self.counts)
        eyes = QHBoxLayout()
        for side in SIDES:
            column = QVBoxLayout()
            column.addWidget(QLabel(f"<b>{side.label.capitalize()}</b>"))
            column.addWidget(self.views[side], 1)
            column.addWidget(self.quality[side])
            column.addWidget(self.entry[side])
            eyes.addLayout(column, 1)
        right = QWidget()
        layout = QVBoxLayout(right)
        layout.addLayout(eyes, 1)
        layout.addWidget(self.outcome)
        layout.addWidget(self.reason_edit)
        layout.addWidget(self.help)
        layout.addWidget(self.revealed)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.worklist)
        splitter.addWidget(right)
        splitter.setSizes([220, 900])
        outer = QVBoxLayout(self)
        outer.addLayout(top)
        outer.addWidget(splitter, 1)

    # ------------------------------------------------------------------ the worklist

    def refresh(self) -> None:
        """Draw the quality-assurance sample of annual encounters not yet considered
        (the Settings' share, recorded), then read what needs grading, most urgent first."""
        self._show_worklist(self._worklist_reader()())

    def refresh_later(self) -> None:
        """:meth:`refresh` with the database work (the sample is written, the worklist
        read) on the background helper: what the window does when the tab opens, so it
        never waits for a database a batch may be writing to."""
        from .worker import run_in_background

        self._ticket += 1
        ticket, read = self._ticket, self._worklist_reader()
        run_in_background(lambda: (ticket, read()), self._worklist_read)

    def _worklist_reader(self) -> Any:
        """The database work of a refresh, as a function that touches no widget."""
        store, percent = self.store, int(getattr(self.settings, "qa_percent", 0) or 0)
        grader = self.grader_edit.text().strip() or None

        def read() -> tuple[list[str], list[Any]]:
            if percent > 0:
                store.draw_qa_sample(percent / 100.0, user=grader)
            ids = store.to_grade()
            return ids, store.encounter_summaries(ids)

        return read

    def _worklist_read(self, loaded: tuple[int, tuple[list[str], list[Any]]]) -> None:
        ticket, worklist = loaded
        if ticket == self._ticket:   # else a newer refresh is on its way
            self._show_worklist(worklist)

    def _show_worklist(self, worklist: tuple[list[str], list[Any]]) -> None:
        ids, summaries = worklist
        self.worklist.blockSignals(True)
        self.worklist.clear()
        for s in summaries:   # blind: no queue, no reason for being listed
            item = QListWidgetItem(f"{s.patient.patient_id}  \u00b7  {s.started_at:%Y-%m-%d}")
            item.setData(Qt.ItemDataRole.UserRole, s.encounter_id)
            self.worklist.addItem(item)
        self.worklist.blockSignals(False)
        self.counts.setText(f"{len(ids)} encounter(s) to grade")
        if ids:
            self.worklist.setCurrentRow(0)
            self._open_row(0)
        else:
            self._open(None)

    def _open_row(self, row: int) -> None:
        item = self.worklist.item(row)
        self._open(item.data(Qt.ItemDataRole.UserRole) if item is not None else None)

    def _open(self, encounter_id: str | None) -> None:
        self.encounter, self.side, self.grades, self.macula, self.findings = encounter_id, Eye.RIGHT, {}, {}, {}
        self.raise_to, self.revealed_mode, self.heat_on = None, False, False
        self.revealed.clear()          # the last encounter's reveal does not stay beside a blind read
        self.reason_edit.clear()
        self.reason_edit.hide()
        self.summary = self.store.encounter_summary(encounter_id) if encounter_id else None
        for side in SIDES:
            photo = self._photo(side)
            self.views[side].show_photo(self._read(photo) if photo else None, self.red_free)
            self.quality[side].setText(quality_words(photo) if photo else "")
        if self.summary is not None and self._photo(Eye.RIGHT) is None:
            self.side = Eye.LEFT
        self._show_entry()

    def _photo(self, side: Eye) -> EyeResult | None:
        if self.summary is None:
            return None
        return next((e for e in self.summary.eyes if e.eye is side), None)

    def _read(self, photo: EyeResult) -> np.ndarray | None:
        path = Path(photo.path) if photo.path and Path(photo.path).is_file() else self.store.image_file(photo.sha256)
        try:
            return read_image(path) if path is not None else None
        except ImageReadError as exc:
            log.warning("grading view: %s", exc)
            return None

    def _show_entry(self) -> None:
        for side in SIDES:
            if self._photo(side) is None:
                text = "no photograph"
            elif side not in self.grades:
                text = "grade: \u2013"
            else:
                g = self.grades[side]
                text = "ungradable" if g is None else f"ICDR {g}: {ICDR_GRADE_NAMES[g]}"
                text += " \u00b7 maculopathy " + ("yes" if self.macula.get(side) else "no")
                if self.findings.get(side):
                    text += " \u00b7 " + ", ".join(FINDINGS[f] for f in sorted(self.findings[side]))
            marker = "\u25b6 " if side is self.side and self.encounter else ""
            self.entry[side].setText(marker + text)
        self._show_outcome()

    def _readings(self, grader: str = "") -> dict[Eye, HumanGrade]:
        """The grades typed so far, as the grader's readings of each eye."""
        return {side: HumanGrade(self.encounter or "", side, grader or "grader", g,
                                 ("yes" if self.macula.get(side) else "no") if g is not None else "not_assessed",
                                 tuple(sorted(self.findings.get(side, ()))))
                for side, g in self.grades.items()}

    def protocol_queue(self) -> Queue | None:
        """The outcome the clinic's protocol gives the grader's grades, once every
        photographed eye is graded (None before: an eye still as the AI read it would
        reveal the AI's reading before the commit)."""
        if self.summary is None or any(self._photo(side) is not None and side not in self.grades for side in SIDES):
            return None
        return protocol_outcome(self.summary.eyes, self._readings(), self.summary.protocol_name,
                                self.summary.missing_eyes)

    def _show_outcome(self) -> None:
        queue = self.protocol_queue()
        if queue is None:
            self.outcome.setText("")
            return
        text = f"Your outcome by the protocol: <b>{queue.label}</b>"
        if self.raise_to is not None:
            text += f" \u2192 raised by you to <b>{self.raise_to.label}</b> (type the reason below)"
        self.outcome.setText(text)

    def _raise(self, up: bool) -> None:
        """``+``: one step more urgent than the protocol's outcome (or the raise so far); ``-``: no raise."""
        base = self.protocol_queue()
        if base is None:
            return
        if not up:
            self.raise_to = None
            self.reason_edit.hide()
            return
        step = next_raise(self.raise_to or base)
        if step is not None:
            self.raise_to = step
            self.reason_edit.show()
            self.reason_edit.setFocus()

    # ------------------------------------------------------------------ keys

    def _reason_entered(self) -> None:
        """Enter in the reason commits; the same key press then reaches the panel, and must not move on."""
        self._swallow_return = True
        self.commit()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key, text = event.key(), event.text().lower()
        if self._swallow_return and key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self._swallow_return = False
            return
        self._swallow_return = False
        if self.encounter is None or self.grader_edit.hasFocus():
            super().keyPressEvent(event)
            return
        if self.revealed_mode:      # committed: H the AI's heat map, R red-free, Enter the next encounter
            if text == "h":
                self.toggle_heatmap()
            elif text == "r":
                self.red_free = not self.red_free
                for view in self.views.values():
                    view.redraw(self.red_free)
            elif key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self.refresh()
            else:
                super().keyPressEvent(event)
            return
        if text in "01234" and text:
            self.grades[self.side] = int(text)
        elif text == "u":
            self.grades[self.side], self.macula[self.side] = None, False
        elif text == "m" and self.grades.get(self.side, -1) is not None and self.side in self.grades:
            self.macula[self.side] = not self.macula.get(self.side, False)
        elif text in FINDING_KEYS and self.side in self.grades:
            self.findings.setdefault(self.side, set()).symmetric_difference_update({FINDING_KEYS[text]})
        elif text == "r":
            self.red_free = not self.red_free
            for view in self.views.values():
                view.redraw(self.red_free)
        elif text in ("+", "-"):
            self._raise(text == "+")
        elif key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self._enter()
        else:
            super().keyPressEvent(event)
            return
        self._show_entry()

    def _enter(self) -> None:
        """Next eye; after the last photographed eye, commit."""
        if self.side not in self.grades:
            return
        if self.side is Eye.RIGHT and self._photo(Eye.LEFT) is not None:
            self.side = Eye.LEFT
            return
        self.commit()

    def commit(self) -> None:
        """Record the grades (audited under the grader's name), reveal the AI's, move on."""
        grader = self.grader_edit.text().strip()
        if not grader:
            self.revealed.setText("Type your name at the top first: every grade is recorded under it.")
            self.grader_edit.setFocus()
            return
        encounter, summary = self.encounter, self.summary
        if encounter is None or not self.grades:
            return
        grades = list(self._readings(grader).values())
        raises = []
        if self.raise_to is not None:
            reason = self.reason_edit.text().strip()
            if not reason:
                self.revealed.setText("Type why you raise the outcome: a raise is recorded with its reason.")
                self.reason_edit.setFocus()
                return
            raises = [OutcomeRaise(encounter, grader, self.raise_to, reason)]
        try:
            single = bool(getattr(self.settings, "single_grader_stands", False))
            state = self.store.record_grades(grades, user=grader, single_grader_stands=single,
                                             raises=raises).get(encounter)
        except ValueError as exc:
            self.revealed.setText(str(exc))
            return
        maps = any(self._heatmap(side) is not None for side in SIDES)
        self.revealed.setText(self._reveal(summary, state) + self._rewrite_document(encounter, grader)
                              + (" H: the AI's heat map." if maps else "") + " Enter: the next encounter.")
        self.revealed_mode = True
        self.committed.emit(encounter)
        self.setFocus()

    def _heatmap(self, side: Eye) -> np.ndarray | None:
        photo = self._photo(side)
        return None if photo is None or photo.heatmap is None else np.asarray(photo.heatmap, np.float32)

    def toggle_heatmap(self) -> None:
        """The AI's heat map over each eye, on and off: only after the commit (blind first read)."""
        if not self.revealed_mode:
            return
        self.heat_on = not self.heat_on
        for side in SIDES:
            self.views[side].show_heatmap(self._heatmap(side) if self.heat_on else None, self.red_free)

    def _rewrite_document(self, encounter: str, grader: str) -> str:
        """Write the patient's document again (the earlier one kept as superseded); words for the grader."""
        if self.documents_dir is None:
            return ""
        try:
            written = regenerate_document(self.store, encounter, self.documents_dir, user=grader)
        except Exception as exc:  # noqa: BLE001 - the grade is recorded; say the document failed, do not lose it
            log.exception("the document of encounter %s could not be written again", encounter)
            return f" The patient's document could not be written again ({exc}): write it from the Queues tab."
        kept = " (the earlier one kept as superseded)" if written.superseded else ""
        return f" Patient's document written again: {written.path.name}{kept}."

    @staticmethod
    def _reveal(summary: Any, state: Any) -> str:
        """What the AI had said, shown only after the grader committed."""
        ai = ", ".join(f"{e.eye.label}: {'ICDR ' + str(e.grade) if e.grade is not None else 'not graded'}"
                       for e in summary.eyes)
        words = {"final": "final", "arbitration_pending": "goes to arbitration by another grader (the more "
                 "urgent queue stands meanwhile)", "arbitrated": "arbitrated"}
        outcome = f"; your outcome {state.graded_queue.value}, {words[state.state]}" if state else ""
        return (f"Committed {summary.patient.patient_id}. The AI had said {ai} (queue "
                f"{(state.ai_queue.value if state else summary.queue.value)}){outcome}.")
