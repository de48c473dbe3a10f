"""The four clinic queues (urgent, routine, annual, review) and what staff do with them.

Each tab is a table of one queue, most pressing first, with overdue patients
in red. The buttons under the tables are the coordinator's daily work: open
the encounter, print the referral slip, mark the patient referred or closed,
and, for a clinician, move a patient to another queue with a reason. Every
change goes through the store, which writes who did it to the audit log.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QModelIndex, Qt, Signal, Slot
from PySide6.QtGui import QColor, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ..core.records import EncounterSummary, Queue
from ..core.store.names import default_user
from .queue_models import Column, QueueTableModel

log = logging.getLogger(__name__)

RESIZE_PRECISION_ROWS = 50
TAB_ORDER: tuple[Queue, ...] = (Queue.URGENT, Queue.ROUTINE, Queue.ANNUAL, Queue.REVIEW)
TAB_NAMES = {Queue.URGENT: "Urgent", Queue.ROUTINE: "Routine", Queue.ANNUAL: "Annual", Queue.REVIEW: "Review"}
STATE_FILTERS: tuple[tuple[str, str | None], ...] = (
    ("Open (still to do)", "open"), ("Referred", "referred"), ("Closed", "closed"), ("All", None))


def tab_title(queue: Queue, count: int) -> str:
    """"Urgent (3)": the tab title with the number of open encounters."""
    return f"{TAB_NAMES[queue]} ({count})"


def open_document(store: Any, encounter_id: str, settings: Any, parent: QWidget,
                  printed: Callable[[str], None], saved: Callable[[str, str], None]) -> QDialog:
    """The patient's document dialog for an encounter, read and built off the GUI
    thread, with printing and saving recorded through ``printed`` / ``saved``."""
    from ..core.reports import resolve_images  # reportlab and pdfium only when a document is wanted
    from .slip_dialog import SlipDialog

    dialog = SlipDialog(lambda: resolve_images(store.encounter_summary(encounter_id), store.image_file),
                        settings, parent)
    dialog.printed.connect(printed)
    dialog.saved.connect(saved)
    return dialog


class OverrideDialog(QDialog):
    """A clinician moves a patient to another queue. The reason is required:
    OK stays disabled until one is typed, and it goes to the audit log."""

    def __init__(self, summary: EncounterSummary, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.summary = summary
        self.setWindowTitle("Change queue")
        self.queue_box = QComboBox()
        for queue in TAB_ORDER:
            if queue is not summary.queue:
                self.queue_box.addItem(queue.label, queue)
        self.reason_edit = QPlainTextEdit()
        self.reason_edit.setPlaceholderText("Why? e.g. 'Examined at slit lamp: no retinopathy' (required)")
        self.reason_edit.setTabChangesFocus(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setText("Change queue")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.reason_edit.textChanged.connect(self._update_ok)
        patient = summary.patient
        form = QFormLayout(self)
        form.addRow("Patient:", QLabel(f"{patient.name} ({patient.patient_id})".strip()))
        form.addRow("Current queue:", QLabel(summary.queue.label))
        form.addRow("New queue:", self.queue_box)
        form.addRow("Reason:", self.reason_edit)
        form.addRow(self.buttons)
        self._update_ok()

    def _update_ok(self) -> None:
        self.ok_button.setEnabled(bool(self.reason()))

    def reason(self) -> str:
        """The typed reason, trimmed."""
        return self.reason_edit.toPlainText().strip()

    def chosen_queue(self) -> Queue:
        """The queue the clinician picked."""
        return self.queue_box.currentData()


class QueuesWidget(QWidget):
    """Tabs of the four queues with counts, and the actions on the selected patient.

    ``store`` is the ``ClinicStore``; ``user`` is who is recorded in the audit log
    (default: the login name); ``slip_settings`` returns the current slip settings
    when a slip is opened. ``encounterActivated(encounter_id)`` asks the main
    window to open that encounter; ``changed()`` fires after any write."""

    encounterActivated = Signal(str)
    changed = Signal()
    refreshed = Signal()   # a background refresh is on show
    changedElsewhere = Signal()   # another workstation committed a change (from the watcher's thread)

    def __init__(self, store: Any, parent: QWidget | None = None, *, user: str | None = None,
                 slip_settings: Callable[[], Any] | None = None,
                 today: Callable[[], Any] | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.user = user or default_user()
        self.may: Callable[[str], bool] = lambda _button: True   # the signed-in person's roles (gui.access)
        self._slip_settings = slip_settings or (lambda: None)
        extra = {"today": today} if today else {}
        opening = getattr(store, "opening", False)   # the window is painted before the database opens
        self.models = {q: QueueTableModel(store, q, parent=self, load=not opening, **extra) for q in TAB_ORDER}
        self.views: dict[Queue, QTableView] = {}
        self.captions: dict[Queue, QLabel] = {}
        self.tabs = QTabWidget()
        self.state_box = QComboBox()
        self.buttons: dict[str, QPushButton] = {}
        self.dialog: QDialog | None = None  # the override or slip dialog currently open
        self._ticket = 0                    # the latest background refresh
        self._changed_at = 0                # a write is on show from this refresh on: then `changed`
        self._today_value = today or dt.date.today
        self._build_ui()
        if opening:
            for caption in self.captions.values():
                caption.setText("Opening the clinic database…")
            self._update_buttons()
        else:
            self.refresh(reload=False)   # the models read their first page as they were made

    # ------------------------------------------------------------------ UI

    def _build_ui(self) -> None:
        for label, state in STATE_FILTERS:
            self.state_box.addItem(label, state)
        self.state_box.currentIndexChanged.connect(self._state_filter_changed)
        top = QHBoxLayout()
        top.addWidget(QLabel("Show:"))
        top.addWidget(self.state_box)
        hint = QLabel("Red rows are overdue. Double-click a patient to open the visit.")
        hint.setWordWrap(True)   # a narrow window wraps it rather than growing
        top.addWidget(hint, 1)
        for queue in TAB_ORDER:
            self.tabs.addTab(self._make_page(queue), TAB_NAMES[queue])
        self.tabs.currentChanged.connect(self._update_buttons)
        self.tabs.currentChanged.connect(self._fit_current)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.tabs, 1)
        layout.addLayout(self._make_buttons())

    def _make_page(self, queue: Queue) -> QWidget:
        """A tab: what the queue means (and how many wait), then its table."""
        page = QWidget()
        caption = QLabel()
        caption.setTextFormat(Qt.TextFormat.PlainText)
        self.captions[queue] = caption
        layout = QVBoxLayout(page)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(caption)
        layout.addWidget(self._make_view(queue), 1)
        return page

    def _make_view(self, queue: Queue) -> QTableView:
        view = QTableView()
        view.setModel(self.models[queue])
        view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        view.setAlternatingRowColors(True)
        view.setWordWrap(False)
        view.verticalHeader().setVisible(False)
        header = view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)   # fitted once per refresh, not per layout
        header.setResizeContentsPrecision(RESIZE_PRECISION_ROWS)
        header.setSectionResizeMode(Column.FINDING, QHeaderView.ResizeMode.Stretch)
        view.activated.connect(self._activated)
        view.selectionModel().selectionChanged.connect(self._update_buttons)
        self.views[queue] = view
        return view

    def _make_buttons(self) -> QGridLayout:
        """The actions in two rows (what to do with the visit; what became of it), so each
        button keeps its whole text on a 1024-px screen ("Open visi" was cut in one row)."""
        grid = QGridLayout()
        rows = ((("open", "&Open visit", self.open_selected, "Open this patient's encounter (Enter)"),
                 ("slip", "Patient's &document…", self.open_slip,
                  "Referral slip, review slip or result letter: preview, print or save"),
                 ("printed", "Mark slip &printed", self.mark_slip_printed, "Record that the slip was handed out"),
                 ("override", "Change &queue…", self.override_selected,
                  "Clinician: move to another queue (reason required)")),
                (("referred", "Mark &referred", self.mark_referred,
                  "The referral was sent (asks first, and records who)"),
                 ("closed", "Mark &closed", lambda: self.set_state("closed"), "Nothing more to do for this visit"),
                 ("reopen", "Re&open", lambda: self.set_state("open"), "Put the visit back on the to-do list"),
                 ("flag", "Flag for a &grader\u2026", self.flag_selected,
                  "Put this visit on the Grading tab's worklist (asks why; recorded)")))
        for r, row in enumerate(rows):
            for c, (key, text, slot, tip) in enumerate(row):
                button = QPushButton(text)
                button.setToolTip(tip)
                button.clicked.connect(slot)
                button.setSizePolicy(QSizePolicy.Policy.Minimum, QSizePolicy.Policy.Fixed)
                self.buttons[key] = button
                grid.addWidget(button, r, c)
        grid.setColumnStretch(len(rows[0]), 1)
        return grid

    # ------------------------------------------------------------------ reading

    @Slot()
    def refresh(self, reload: bool = True) -> None:
        """Reload every queue and the counts in the tab titles (``reload=False``:
        the models were just read, only the titles and buttons)."""
        selected = self.selected_encounter_id()
        for model in self.models.values():
            if reload:
                model.refresh()
        self._fit_current()
        counts = self.store.queue_counts(state="open")
        for i, queue in enumerate(TAB_ORDER):
            self._set_tab(i, queue, counts.get(queue, 0), self._overdue(queue))
        if selected:
            self.select(selected)
        self._update_buttons()

    def _overdue(self, queue: Queue) -> int:
        model = self.models[queue]
        return model.overdue_count() if model.state in ("open", None) else 0

    @Slot()
    def refresh_later(self) -> None:
        """Re-read every queue on the background helper, then show it: what the
        window does after a batch, a hot-folder job or a desk result, so the GUI
        thread never waits for the database while the worker holds it."""
        self._ticket += 1
        ticket, store, today = self._ticket, self.store, self._today_value()
        views = {q: (m.state, m.page_rows) for q, m in self.models.items()}

        def load() -> tuple[int, dict[Queue, tuple[int, list[Any], int]], dict[Queue, int]]:
            pages = {q: (store.queue_view_count(q, state), store.queue_view_page(q, state, 0, rows),
                         store.queue_view_overdue(q, state, today) if state in ("open", None) else 0)
                     for q, (state, rows) in views.items()}
            return ticket, pages, store.queue_counts(state="open")

        from .worker import run_in_background
        run_in_background(load, self._refreshed)

    @Slot(object)
    def _refreshed(self, loaded: tuple[int, dict[Queue, tuple[int, list[Any], int]], dict[Queue, int]]) -> None:
        ticket, pages, counts = loaded
        if ticket != self._ticket:
            return   # a newer refresh is on its way
        selected = self.selected_encounter_id()
        for queue, (total, first, _overdue) in pages.items():
            self.models[queue].set_rows(total, first)
        self._fit_current()
        for i, queue in enumerate(TAB_ORDER):
            self._set_tab(i, queue, counts.get(queue, 0), pages[queue][2])
        if selected:
            self.select(selected)
        self._update_buttons()
        self.refreshed.emit()
        if self._changed_at and ticket >= self._changed_at:
            self._changed_at = 0
            self.changed.emit()

    def _fit_current(self) -> None:
        """Fit the columns of the table on show (the others when their tab is chosen)."""
        self._fit_columns(self.views[self.current_queue()])

    @staticmethod
    def _fit_columns(view: QTableView) -> None:
        """Columns as wide as the first rows need (the finding takes the rest)."""
        for column in Column:
            if column is not Column.FINDING:
                view.resizeColumnToContents(column)

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt's name
        """Re-read the queues whenever they come into view: another screen (batch,
        hot folder, a CLI run on the same database) may have changed them."""
        super().showEvent(event)
        self.refresh_later()

    def _set_tab(self, index: int, queue: Queue, count: int, overdue: int) -> None:
        self.tabs.setTabText(index, tab_title(queue, count))
        model = self.models[queue]
        tip = f"{count} open" + (f", {overdue} overdue" if overdue else "") + f": {queue.label}"
        self.tabs.setTabToolTip(index, tip)
        shown = "" if model.state == "open" else f" Showing {model.total} {self.state_box.currentText().lower()}."
        self.captions[queue].setText(f"{queue.label}. {tip.split(':')[0]}.{shown}")
        self.tabs.tabBar().setTabTextColor(index, QColor(170, 0, 0) if overdue else QColor())

    def current_queue(self) -> Queue:
        """The queue of the tab on show."""
        return TAB_ORDER[self.tabs.currentIndex()]

    def show_queue(self, queue: Queue) -> None:
        """Bring a queue's tab to the front."""
        self.tabs.setCurrentIndex(TAB_ORDER.index(queue))

    def selected_summary(self) -> EncounterSummary | None:
        """The encounter selected in the tab on show, as listed."""
        queue = self.current_queue()
        rows = self.views[queue].selectionModel().selectedRows()
        return self.models[queue].summary(rows[0].row()) if rows else None

    def selected_encounter_id(self) -> str | None:
        """The ID of the encounter selected in the tab on show, if any."""
        summary = self.selected_summary()
        return summary.encounter_id if summary else None

    def select(self, encounter_id: str) -> bool:
        """Select an encounter in whichever queue holds it; False if not on show."""
        for queue, model in self.models.items():
            row = model.row_of(encounter_id)
            if row >= 0:
                self.show_queue(queue)
                self.views[queue].selectRow(row)
                return True
        return False

    # ------------------------------------------------------------------ actions

    def _activated(self, index: QModelIndex) -> None:
        self.encounterActivated.emit(self.models[self.current_queue()].summary(index.row()).encounter_id)

    @Slot()
    def open_selected(self) -> None:
        """Ask the main window to open the selected encounter."""
        if encounter_id := self.selected_encounter_id():
            self.encounterActivated.emit(encounter_id)

    def mark_slip_printed(self, encounter_id: str | bool | None = None) -> None:
        """Record that the patient's document was printed (audited); the selected
        encounter's when no ID is given (a button's ``clicked(bool)`` gives none)."""
        target = encounter_id if isinstance(encounter_id, str) and encounter_id else self.selected_encounter_id()
        if target:
            self._write(lambda: self.store.mark_slip_printed(target, self.user))

    def set_state(self, state: str) -> None:
        """Mark the selected encounter open / referred / closed (audited)."""
        if (summary := self.selected_summary()) is not None:   # refused if changed elsewhere since shown
            self._write(lambda: self.store.set_state(summary.encounter_id, state, self.user,
                                                     expected_version=summary.version))

    @Slot()
    def override_selected(self) -> None:
        """Open the change-queue dialog for the selected encounter (non-blocking)."""
        target = self.selected_encounter_id()
        if not target:
            return
        shown = self.store.encounter_summary(target)
        dialog = OverrideDialog(shown, self)
        dialog.accepted.connect(lambda: self._override(target, dialog.chosen_queue(), dialog.reason(), shown.version))
        self._show_dialog(dialog)

    def _override(self, encounter_id: str, queue: Queue, reason: str, version: int) -> None:
        """Save the clinician's choice (read from the dialog here, on the GUI thread)."""
        user = self.user
        self._write(lambda: self.store.override_queue(encounter_id, queue, reason, user, expected_version=version))

    @Slot()
    def open_slip(self) -> None:
        """Open the selected patient's document (referral slip, review slip or result
        letter); printing or saving it as PDF records it."""
        target = self.selected_encounter_id()
        if target:
            self._show_dialog(open_document(self.store, target, self._slip_settings(), self,
                                            self.mark_slip_printed, self.mark_slip_saved))

    @Slot(str, str)
    def mark_slip_saved(self, encounter_id: str, path: str = "") -> None:
        """Record that the patient's document was saved as PDF (audited): it counts as issued."""
        self._write(lambda: self.store.mark_slip_saved(encounter_id, path, self.user))

    @Slot()
    def mark_referred(self) -> None:
        """Mark the selected patient referred, after a confirmation that names who is
        recorded as doing it (a stray click must not take a patient off the to-do list);
        without a printed or saved slip the store records "referred without a slip"."""
        summary = self.selected_summary()
        if summary is None:
            return
        who = f"{summary.patient.patient_id}" + (f" ({summary.patient.name})" if summary.patient.name else "")
        recorded = f"\n\nThis is recorded as done by {self.user}."
        if summary.slip_issued_at is not None:
            title, text, accept = ("Mark referred?", f"Mark {who} referred: the referral has been sent?{recorded}",
                                   "Mark referred")
        else:
            title, text, accept = ("No slip yet", f"No slip was printed or saved for {who}. Mark the patient "
                                   f"referred anyway? It will show as 'referred without a slip'.{recorded}",
                                   "Mark referred without a slip")
        box = QMessageBox(QMessageBox.Icon.Question, title, text, QMessageBox.StandardButton.NoButton, self)
        self.referred_anyway = self.confirm_referred = box.addButton(accept, QMessageBox.ButtonRole.AcceptRole)
        box.setDefaultButton(box.addButton("Cancel", QMessageBox.ButtonRole.RejectRole))
        confirm = self.confirm_referred
        box.buttonClicked.connect(lambda button: self._write(
            lambda: self.store.mark_referred(summary.encounter_id, self.user, summary.version))
            if button is confirm
            else None)
        self._show_dialog(box)

    @Slot()
    def flag_selected(self) -> None:
        """Ask why a grader should look at the selected visit, then put it on the grading
        worklist (``ClinicStore.flag_for_grader``, audited under who is recorded)."""
        summary = self.selected_summary()
        if summary is None:
            return
        dialog = QInputDialog(self)
        dialog.setWindowTitle("Flag for a grader")
        dialog.setLabelText(f"Why should a grader look at {summary.patient.patient_id}'s visit? "
                            f"(recorded as flagged by {self.user})")
        dialog.setOkButtonText("Flag for a grader")
        dialog.textValueSelected.connect(lambda reason: self._write(
            lambda: self.store.flag_for_grader(summary.encounter_id, reason, self.user)))
        self._show_dialog(dialog)

    def _show_dialog(self, dialog: QDialog) -> None:
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.finished.connect(lambda _result: setattr(self, "dialog", None))
        self.dialog = dialog
        dialog.open()

    def follow_other_workstations(self) -> Any:
        """Refresh when another window or workstation changes the clinic database
        (LISTEN/NOTIFY on a server, polling on SQLite; within about two seconds).
        Returns the watcher; stop it when the window closes."""
        self.changedElsewhere.connect(self.refresh_later, Qt.ConnectionType.QueuedConnection)
        return self.store.watch_changes(self.changedElsewhere.emit)

    def _write(self, change: Callable[[], Any]) -> None:
        """Run one store change on the background helper, then re-read the queues
        there too (``changed`` fires once the change is on show). A batch may hold
        SQLite's write lock, and a writer waits up to 10 s for it: the window must
        not wait with it. A refusal or failure is logged and shown."""
        from .worker import run_in_background

        def work() -> str:
            from ..core.store import QueueConflict

            try:
                change()
            except QueueConflict as exc:   # another workstation was first: say so and show what it did
                log.warning("queue change refused: %s", exc)
                return str(exc)
            return ""

        run_in_background(work, self._written, self._not_written)

    @Slot(object)
    def _written(self, refused: str) -> None:
        if refused:
            box = QMessageBox(QMessageBox.Icon.Warning, "Changed on another workstation", refused, parent=self)
            box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            box.open()
        self.refresh_later()
        if not refused:
            self._changed_at = self._ticket

    @Slot(str)
    def _not_written(self, message: str) -> None:
        box = QMessageBox(QMessageBox.Icon.Warning, "Not saved", f"The change was not saved: {message}",
                          parent=self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    def _state_filter_changed(self) -> None:
        for model in self.models.values():
            model.set_state(self.state_box.currentData())
        self.refresh()

    def _update_buttons(self) -> None:
        summary = self.selected_summary()
        for key, button in self.buttons.items():
            button.setEnabled(summary is not None and self.may(key))
        if summary is not None:
            self.buttons["referred"].setEnabled(summary.state != "referred" and self.may("referred"))
            self.buttons["closed"].setEnabled(summary.state != "closed" and self.may("closed"))
            self.buttons["reopen"].setEnabled(summary.state != "open" and self.may("reopen"))
