"""The queue model and the queues widget, on a real clinic database."""

from __future__ import annotations

import datetime as dt

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush

from eyescreen_desktop.core.records import Eye, Queue
from eyescreen_desktop.gui.queue_models import (
    OVERDUE_BACKGROUND,
    Column,
    EncounterIdRole,
    OverdueRole,
    QueueTableModel,
)
from eyescreen_desktop.gui.queues import OverrideDialog, QueuesWidget

from .clinic_fixtures import EXPECTED_OPEN, TODAY, filled_store, store  # noqa: F401 - fixtures


TODAY_START = dt.datetime.combine(TODAY, dt.time(9, 0))


def _cell(model: QueueTableModel, row: int, column: Column, role=Qt.ItemDataRole.DisplayRole):
    return model.data(model.index(row, column), role)


def _widget(qtbot, clinic) -> QueuesWidget:
    widget = QueuesWidget(clinic, user="nurse.ada", today=lambda: TODAY)
    qtbot.addWidget(widget)
    return widget


def _select(widget: QueuesWidget, encounter_id: str) -> None:
    assert widget.select(encounter_id)
    assert widget.selected_encounter_id() == encounter_id


# --------------------------------------------------------------------------- model


def test_models_pass_qtmodeltester(qtmodeltester, filled_store):
    clinic, _ = filled_store
    for queue in Queue:
        qtmodeltester.check(QueueTableModel(clinic, queue, today=lambda: TODAY))
    qtmodeltester.check(QueueTableModel(clinic, Queue.URGENT, state=None, today=lambda: TODAY))


def test_a_queue_shows_only_its_own_state(qtmodeltester, filled_store):
    """Open urgent visits are listed; none is closed yet, so the closed view is empty
    (and still a valid model)."""
    clinic, _ = filled_store
    open_urgent = QueueTableModel(clinic, Queue.URGENT, today=lambda: TODAY)
    closed = QueueTableModel(clinic, Queue.URGENT, state="closed", today=lambda: TODAY)
    qtmodeltester.check(closed)
    assert open_urgent.rowCount() == EXPECTED_OPEN[Queue.URGENT] and closed.rowCount() == 0


def test_urgent_rows_sorted_by_due_date_with_overdue_marked(filled_store):
    clinic, ids = filled_store
    model = QueueTableModel(clinic, Queue.URGENT, today=lambda: TODAY)
    patients = [_cell(model, r, Column.PATIENT_ID) for r in range(model.rowCount())]
    assert patients == ["P001", "P002", "P007"]
    assert _cell(model, 0, Column.DUE) == "2026-03-10  OVERDUE by 6 days"
    assert _cell(model, 0, Column.DUE, Qt.ItemDataRole.BackgroundRole) == QBrush(OVERDUE_BACKGROUND)
    assert "OVERDUE" in _cell(model, 0, Column.NAME, Qt.ItemDataRole.ToolTipRole)
    assert _cell(model, 0, Column.NAME, OverdueRole) is True
    assert _cell(model, 1, Column.DUE) == "2026-03-25"
    assert _cell(model, 1, Column.DUE, Qt.ItemDataRole.BackgroundRole) is None
    assert _cell(model, 1, Column.STATE, OverdueRole) is False
    assert _cell(model, 0, Column.SLIP, EncounterIdRole) == ids["P001"]
    assert model.overdue_count() == 1


def test_row_words_a_coordinator_reads(filled_store):
    clinic, _ = filled_store
    urgent = QueueTableModel(clinic, Queue.URGENT, today=lambda: TODAY)
    assert _cell(urgent, 0, Column.NAME) == "Zoë Ñúñez"
    assert _cell(urgent, 0, Column.FINDING) == "R: severe NPDR · L: mild NPDR"
    assert "severe non-proliferative diabetic retinopathy" in _cell(urgent, 0, Column.FINDING,
                                                                    Qt.ItemDataRole.ToolTipRole)
    assert _cell(urgent, 0, Column.STATE) == "Open"
    assert _cell(urgent, 0, Column.SLIP) == "No"
    review = QueueTableModel(clinic, Queue.REVIEW, today=lambda: TODAY)
    assert _cell(review, 0, Column.FINDING) == "R: could not be graded (blurred) · L: no DR"


def test_referred_and_closed_are_never_overdue(filled_store):
    clinic, ids = filled_store
    clinic.set_state(ids["P001"], "referred", "test")
    model = QueueTableModel(clinic, Queue.URGENT, state=None, today=lambda: TODAY)
    row = model.row_of(ids["P001"])
    assert _cell(model, row, Column.STATE) == "Referred without a slip"   # no slip was printed or saved
    assert _cell(model, row, Column.DUE) == "2026-03-10"
    assert model.overdue_count() == 0


# --------------------------------------------------------------------------- widget


def test_tabs_show_open_counts_in_clinic_order(qtbot, filled_store):
    widget = _widget(qtbot, filled_store[0])
    titles = [widget.tabs.tabText(i) for i in range(widget.tabs.count())]
    assert titles == [f"Urgent ({EXPECTED_OPEN[Queue.URGENT]})", f"Routine ({EXPECTED_OPEN[Queue.ROUTINE]})",
                      f"Annual ({EXPECTED_OPEN[Queue.ANNUAL]})", f"Review ({EXPECTED_OPEN[Queue.REVIEW]})"]
    assert "1 overdue" in widget.tabs.tabToolTip(0)


def test_actions_disabled_until_a_patient_is_selected(qtbot, filled_store):
    clinic, ids = filled_store
    widget = _widget(qtbot, clinic)
    assert not any(b.isEnabled() for b in widget.buttons.values())
    _select(widget, ids["P002"])
    assert widget.buttons["referred"].isEnabled() and not widget.buttons["reopen"].isEnabled()


def test_open_visit_emits_the_encounter(qtbot, filled_store):
    clinic, ids = filled_store
    widget = _widget(qtbot, clinic)
    _select(widget, ids["P003"])
    with qtbot.waitSignal(widget.encounterActivated) as signal:
        qtbot.mouseClick(widget.buttons["open"], Qt.MouseButton.LeftButton)
    assert signal.args == [ids["P003"]]
    view = widget.views[Queue.ROUTINE]
    with qtbot.waitSignal(widget.encounterActivated) as signal:
        view.activated.emit(view.model().index(0, Column.NAME))  # double-click / Enter
    assert signal.args == [ids["P003"]]


def test_mark_referred_leaves_the_open_list_and_is_audited(qtbot, filled_store):
    clinic, ids = filled_store
    widget = _widget(qtbot, clinic)
    _select(widget, ids["P001"])
    clinic.mark_slip_printed(ids["P001"], user="nurse.ada")      # the slip went out
    widget.refresh()
    qtbot.mouseClick(widget.buttons["referred"], Qt.MouseButton.LeftButton)
    assert clinic.encounter_summary(ids["P001"]).state == "open"       # asked first (issue 24), nothing written yet
    assert widget.dialog.windowTitle() == "Mark referred?" and "nurse.ada" in widget.dialog.text()
    with qtbot.waitSignal(widget.changed):
        widget.confirm_referred.click()
    assert widget.tabs.tabText(0) == "Urgent (2)"
    assert widget.models[Queue.URGENT].row_of(ids["P001"]) == -1
    assert clinic.encounter_summary(ids["P001"]).state == "referred"
    entry = clinic.audit(f"encounter:{ids['P001']}")[-1]
    assert (entry.action, entry.user, entry.details["state"]["to"]) == ("state changed", "nurse.ada", "referred")
    widget.state_box.setCurrentIndex(widget.state_box.findData("referred"))
    assert widget.select(ids["P001"])
    assert widget.buttons["reopen"].isEnabled() and not widget.buttons["referred"].isEnabled()


def test_mark_closed_and_slip_printed(qtbot, filled_store):
    clinic, ids = filled_store
    widget = _widget(qtbot, clinic)
    _select(widget, ids["P002"])
    with qtbot.waitSignal(widget.changed):
        qtbot.mouseClick(widget.buttons["printed"], Qt.MouseButton.LeftButton)
    row = widget.models[Queue.URGENT].row_of(ids["P002"])
    assert _cell(widget.models[Queue.URGENT], row, Column.SLIP).startswith("Yes, ")
    assert widget.selected_encounter_id() == ids["P002"]  # selection kept across the refresh
    with qtbot.waitSignal(widget.changed):
        qtbot.mouseClick(widget.buttons["closed"], Qt.MouseButton.LeftButton)
    assert clinic.encounter_summary(ids["P002"]).state == "closed"
    actions = [e.action for e in clinic.audit(f"encounter:{ids['P002']}")]
    assert actions[-2:] == ["slip printed", "state changed"]


def test_override_needs_a_reason_and_lands_in_the_audit_log(qtbot, filled_store):
    clinic, ids = filled_store
    widget = _widget(qtbot, clinic)
    _select(widget, ids["P005"])
    qtbot.mouseClick(widget.buttons["override"], Qt.MouseButton.LeftButton)
    dialog = widget.dialog
    assert isinstance(dialog, OverrideDialog)
    assert not dialog.ok_button.isEnabled()
    dialog.reason_edit.setPlainText("   ")
    assert not dialog.ok_button.isEnabled()
    dialog.queue_box.setCurrentIndex(dialog.queue_box.findData(Queue.ROUTINE))
    qtbot.keyClicks(dialog.reason_edit, "Slit lamp: clinically significant macular oedema")
    assert dialog.ok_button.isEnabled()
    with qtbot.waitSignal(widget.changed):
        qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    summary = clinic.encounter_summary(ids["P005"])
    assert summary.queue is Queue.ROUTINE
    assert summary.override_reason == "Slit lamp: clinically significant macular oedema"
    entry = clinic.audit(f"encounter:{ids['P005']}")[-1]
    assert (entry.action, entry.user) == ("queue overridden", "nurse.ada")
    assert entry.details["override_reason"]["to"] == summary.override_reason
    assert widget.tabs.tabText(1) == "Routine (2)" and widget.tabs.tabText(2) == "Annual (1)"
    row = widget.models[Queue.ROUTINE].row_of(ids["P005"])
    assert _cell(widget.models[Queue.ROUTINE], row, Column.STATE) == "Open (queue changed)"
    assert widget.selected_encounter_id() == ids["P005"]  # followed to its new queue


def test_override_dialog_offers_only_other_queues_and_cancel_changes_nothing(qtbot, filled_store):
    clinic, ids = filled_store
    widget = _widget(qtbot, clinic)
    _select(widget, ids["P001"])
    widget.override_selected()
    dialog = widget.dialog
    offered = {dialog.queue_box.itemData(i) for i in range(dialog.queue_box.count())}
    assert offered == {Queue.ROUTINE, Queue.ANNUAL, Queue.REVIEW}
    dialog.reason_edit.setPlainText("a reason")
    with qtbot.waitSignal(dialog.finished):
        dialog.reject()
    assert clinic.encounter_summary(ids["P001"]).queue is Queue.URGENT
    assert "queue overridden" not in [e.action for e in clinic.audit(f"encounter:{ids['P001']}")]


# --------------------------------------------------------------------------- lazy reading (issue 12, item 12)


def test_queue_is_read_page_by_page_as_it_scrolls(qtmodeltester, filled_store):
    clinic, ids = filled_store
    model = QueueTableModel(clinic, Queue.URGENT, today=lambda: TODAY, page_rows=2)
    assert model.rowCount() == 2 and model.total == 3 and model.canFetchMore()
    assert model.overdue_count() == 1                       # counted by query, rows read or not
    qtmodeltester.check(model)
    model.refresh()
    assert model.row_of(ids["P007"]) == 2                   # on the second page: read up to it
    assert model.rowCount() == 3 and not model.canFetchMore()
    assert model.row_of(ids["P004"]) == -1                  # annual, not in this view


class _CountingStore:
    """The real store, counting the encounter summaries the window reads."""

    def __init__(self, store):
        self._store, self.summaries, self.full_reads = store, 0, 0

    def __getattr__(self, name):
        return getattr(self._store, name)

    def encounter_summaries(self, ids, *args, **kwargs):
        self.summaries += len(ids)
        return self._store.encounter_summaries(ids, *args, **kwargs)

    def encounters(self, *args, **kwargs):
        self.full_reads += 1
        return self._store.encounters(*args, **kwargs)


def test_start_up_reads_one_page_per_queue_not_the_database(qtbot, store):
    from eyescreen_desktop import bench
    from eyescreen_desktop.core.store.queue_views import PAGE_ROWS

    bench.fill_clinic(store, 8 * PAGE_ROWS, today=TODAY)
    counting = _CountingStore(store)
    widget = _widget(qtbot, counting)
    assert counting.full_reads == 0
    assert counting.summaries <= len(Queue) * PAGE_ROWS
    urgent = widget.models[Queue.URGENT]
    assert urgent.rowCount() <= PAGE_ROWS < urgent.total
    assert widget.tabs.tabText(0) == f"Urgent ({urgent.total})"
    view = widget.views[Queue.URGENT]
    view.resize(600, 300)
    widget.show()
    view.scrollToBottom()
    qtbot.waitUntil(lambda: urgent.rowCount() > PAGE_ROWS)   # the view fetched the next page itself


def test_an_unfinished_visit_says_which_eye_has_no_photograph(store):
    from .clinic_fixtures import add_encounter, graded_eye

    eid = add_encounter(store, "P900", "One Eye", (graded_eye(Eye.RIGHT, 0),), TODAY_START)
    model = QueueTableModel(store, Queue.REVIEW, today=lambda: TODAY)
    row = model.row_of(eid)
    assert row >= 0                                            # one eye is review, never annual
    assert _cell(model, row, Column.FINDING) == "R: no DR · L: no photograph"


def test_the_queues_follow_another_workstations_changes(qtbot, tmp_path):
    """A second window's store (another connection) adds an urgent patient; this
    window's queues refresh on their own."""
    from eyescreen_desktop.core.store import ClinicStore
    from eyescreen_desktop.gui.queues import QueuesWidget
    from tests.gui.clinic_fixtures import TODAY, add_encounter, graded_eye

    db = tmp_path / "clinic.sqlite3"
    with ClinicStore(db) as mine, ClinicStore(db) as theirs:
        widget = QueuesWidget(mine)
        qtbot.addWidget(widget)
        watcher = widget.follow_other_workstations()
        try:
            before = widget.models[Queue.URGENT].total
            add_encounter(theirs, "ELSEWHERE", "Other Room", (graded_eye(Eye.RIGHT, 4), graded_eye(Eye.LEFT, 0)),
                          dt.datetime.combine(TODAY, dt.time(9)))
            qtbot.waitUntil(lambda: widget.models[Queue.URGENT].total == before + 1, timeout=30_000)
        finally:
            watcher.stop()


def test_flag_for_a_grader_by_keyboard_puts_an_annual_visit_on_the_grading_worklist(qtbot, filled_store):
    from PySide6.QtWidgets import QLineEdit

    from eyescreen_desktop.gui.grading_panel import GradingPanel

    clinic, ids = filled_store
    annual = ids["P004"]
    assert annual not in clinic.to_grade()                       # annual, no QA sample: not for a grader
    widget = _widget(qtbot, clinic)
    widget.show()
    widget.tabs.setCurrentIndex(widget.tabs.indexOf(widget.views[Queue.ANNUAL].parentWidget()))
    _select(widget, annual)
    assert widget.buttons["flag"].isEnabled() and widget.buttons["flag"].text() == "Flag for a &grader\u2026"
    qtbot.keyClick(widget.buttons["flag"], Qt.Key.Key_Space)      # the button in focus, by keyboard
    assert widget.dialog is not None and "P004" in widget.dialog.labelText()
    assert annual not in clinic.to_grade()                        # asked first: nothing recorded yet
    edit = widget.dialog.findChild(QLineEdit)
    with qtbot.waitSignal(widget.changed):
        qtbot.keyClicks(edit, "dot haemorrhages seen on the monitor")
        qtbot.keyClick(edit, Qt.Key.Key_Return)
    assert clinic.flagged_for_grader() == {annual: "dot haemorrhages seen on the monitor"}
    entry = clinic.audit(f"encounter:{annual}")[-1]
    assert (entry.action, entry.user) == ("flagged for a grader", "nurse.ada")
    panel = GradingPanel(clinic, grader="Dr Grey")
    qtbot.addWidget(panel)
    listed = [panel.worklist.item(i).data(Qt.ItemDataRole.UserRole) for i in range(panel.worklist.count())]
    assert annual in listed
    assert "haemorrhage" not in " ".join(panel.worklist.item(i).text() for i in range(panel.worklist.count()))
