"""Qt table model of one clinic queue, read from the clinic database.

A screening coordinator works down a queue by due date: who must be seen
first, what was found, whether the slip went out. The model is a thin, read-only
view over the clinic database read lazily (``store.queue_views``): it counts the
queue with one query, holds the first page of rows, and reads the next page
only when the view scrolls to it (Qt's ``canFetchMore`` / ``fetchMore``), so a
queue of 100,000 encounters opens as fast as one of ten. Every change goes
through the store, which writes the audit log, and the model is simply
refreshed afterwards.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from enum import IntEnum
from typing import Any, Protocol

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush, QColor, QFont

from ..core.store.names import PAGE_ROWS
from ..core.records import EncounterSummary, Eye, EyeResult, Queue, Status

Index = QModelIndex | QPersistentModelIndex

EncounterIdRole = Qt.ItemDataRole.UserRole + 1
"""Role giving the row's encounter ID (same for every column)."""
OverdueRole = Qt.ItemDataRole.UserRole + 2
"""Role giving True when the row is overdue."""

OVERDUE_BACKGROUND = QColor(255, 205, 205)
OVERDUE_FOREGROUND = QColor(120, 0, 0)
STATE_WORDS = {"open": "Open", "referred": "Referred", "closed": "Closed"}
_SHORT_FINDINGS = (  # long clinical words -> the abbreviations clinic staff use
    ("non-proliferative diabetic retinopathy", "NPDR"),
    ("proliferative diabetic retinopathy", "PDR"),
    ("diabetic retinopathy", "DR"),
)


_ROLES = frozenset({Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.BackgroundRole,
                    Qt.ItemDataRole.ForegroundRole, Qt.ItemDataRole.FontRole, EncounterIdRole, OverdueRole})


class Column(IntEnum):
    """The columns, in display order."""

    PATIENT_ID = 0
    NAME = 1
    DUE = 2
    FINDING = 3
    STATE = 4
    SLIP = 5


HEADERS = {
    Column.PATIENT_ID: "Patient ID",
    Column.NAME: "Name",
    Column.DUE: "Due by",
    Column.FINDING: "Finding (right eye / left eye)",
    Column.STATE: "State",
    Column.SLIP: "Slip or letter issued",
}


class EncounterSource(Protocol):
    """The part of ``ClinicStore`` this model reads (its public paging API,
    ``store.queue_views``)."""

    def encounter_summaries(self, encounter_ids: Any, heatmaps: bool = False) -> list[EncounterSummary]: ...

    def queue_view_count(self, queue: Queue | None, state: str | None) -> int: ...

    def queue_view_page(self, queue: Queue | None, state: str | None, offset: int,
                        limit: int = ...) -> list[EncounterSummary]: ...

    def queue_view_position(self, queue: Queue | None, state: str | None, encounter_id: str) -> int: ...


def is_overdue(summary: EncounterSummary, today: dt.date) -> bool:
    """An open encounter past its due date. Referred and closed ones are done
    as far as the screening clinic is concerned, so they are never flagged."""
    return summary.state == "open" and summary.due_date < today


def slip_text(summary: EncounterSummary) -> str:
    """Whether the patient's document was issued: printed and/or saved as PDF, and
    when; "No" otherwise ("No, referred without" when marked referred without one)."""
    done = [f"printed {summary.slip_printed_at:%Y-%m-%d}"] if summary.slip_printed_at else []
    if summary.slip_saved_at:
        done.append(f"saved as PDF {summary.slip_saved_at:%Y-%m-%d}")
    if done:
        return "Yes, " + ", ".join(done)
    return "No, referred without" if summary.referred_without_slip else "No"


def eye_words(eye: EyeResult, short: bool = True) -> str:
    """One eye's finding in words: the protocol's finding, or why it was not graded."""
    if eye.status is Status.OK and eye.decision is not None:
        words = eye.decision.finding
        if short:
            for long, abbreviation in _SHORT_FINDINGS:
                words = words.replace(long, abbreviation)
        return words
    if eye.decision is not None:
        return eye.decision.finding
    return Status(eye.status).label


def finding_text(summary: EncounterSummary, short: bool = True) -> str:
    """Both eyes in one line, right eye first as on a clinical form."""
    order = {Eye.RIGHT: 0, Eye.LEFT: 1, Eye.UNKNOWN: 2}
    eyes = sorted(summary.eyes, key=lambda e: order[e.eye])
    tags = {Eye.RIGHT: "R", Eye.LEFT: "L", Eye.UNKNOWN: "?"}
    missing = [f"{tags[m.eye]}: not photographed ({m.words})" for m in summary.missing_eyes]
    if not summary.complete:   # say what keeps the visit open: the eye with no photograph and no reason
        present = {e.eye for e in eyes} | {m.eye for m in summary.missing_eyes}
        missing += [f"{tags[side]}: no photograph" for side in (Eye.RIGHT, Eye.LEFT) if side not in present]
    if not eyes and not missing:
        return "no photograph"
    return " · ".join([f"{tags[e.eye]}: {eye_words(e, short)}" for e in eyes] + missing)


def due_text(summary: EncounterSummary, today: dt.date) -> str:
    """The due date, with how late or how soon it is."""
    days = (summary.due_date - today).days
    date = summary.due_date.isoformat()
    if is_overdue(summary, today):
        return f"{date}  OVERDUE by {-days} day{'s' if days != -1 else ''}"
    if summary.state == "open" and days == 0:
        return f"{date}  today"
    return date


class QueueTableModel(QAbstractTableModel):
    """One queue's encounters (optionally of one state), sorted by due date, read
    a page at a time as the view scrolls.

    ``state=None`` shows every state. ``today`` is injectable so tests and
    screenshots decide what "overdue" means; ``page_rows`` is the page size;
    ``load=False`` starts empty, for :meth:`set_rows` to fill from a background read."""

    def __init__(self, store: EncounterSource, queue: Queue, state: str | None = "open",
                 parent: QObject | None = None, today: Callable[[], dt.date] = dt.date.today,
                 page_rows: int = PAGE_ROWS, load: bool = True) -> None:
        super().__init__(parent)
        self._store = store
        self.queue = queue
        self._state = state
        self._today = today
        self._page_rows = max(1, page_rows)
        self._rows: list[EncounterSummary] = []
        self._total = 0
        self._changing = False
        self._bold = QFont()
        self._bold.setBold(True)
        if load:   # else empty until set_rows (a background read: the store may still be opening)
            self.refresh()

    # ------------------------------------------------------------------ reading

    def refresh(self) -> None:
        """Count the queue again and read its first page (after any change)."""
        total = self._store.queue_view_count(self.queue, self._state)
        first = self._store.queue_view_page(self.queue, self._state, 0, self._page_rows) if total else []
        self.beginResetModel()
        self._rows, self._total = list(first), max(total, len(first))
        self._changing = True   # views asked from within modelReset must not insert rows mid-reset
        try:
            self.endResetModel()
        finally:
            self._changing = False

    def set_rows(self, total: int, first: list[EncounterSummary]) -> None:
        """Show a count and first page read elsewhere (a background refresh)."""
        self.beginResetModel()
        self._rows, self._total = list(first), max(total, len(first))
        self._changing = True
        try:
            self.endResetModel()
        finally:
            self._changing = False

    @property
    def page_rows(self) -> int:
        return self._page_rows

    @property
    def state(self) -> str | None:
        return self._state

    @property
    def total(self) -> int:
        """Encounters in the view, read or not yet."""
        return self._total

    def set_state(self, state: str | None) -> None:
        """Show only encounters in ``state`` (None: all), and reload."""
        self._state = state
        self.refresh()

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:  # noqa: B008, N802 - Qt's API
        return not parent.isValid() and not self._changing and len(self._rows) < self._total

    def fetchMore(self, parent: Index = QModelIndex()) -> None:  # noqa: B008, N802 - Qt's API: Qt's own default parent
        """Read the next page (the view asks when it scrolls near the end)."""
        if not self.canFetchMore(parent):
            return
        more = self._store.queue_view_page(self.queue, self._state, len(self._rows), self._page_rows)
        if not more:
            self._total = len(self._rows)   # rows left the queue since it was counted
            return
        self._changing = True   # a view asking again from within the insertion must wait for it
        try:
            self.beginInsertRows(QModelIndex(), len(self._rows), len(self._rows) + len(more) - 1)
            self._rows.extend(more)
            self.endInsertRows()
        finally:
            self._changing = False

    def summary(self, row: int) -> EncounterSummary:
        """The encounter shown on ``row``."""
        return self._rows[row]

    def row_of(self, encounter_id: str) -> int:
        """Row of an encounter (reading the pages up to it), or -1 when it is not in this view."""
        row = self._store.queue_view_position(self.queue, self._state, encounter_id)
        if row < 0:
            return -1
        while row >= len(self._rows) and self.canFetchMore():
            self.fetchMore()
        if row < len(self._rows) and self._rows[row].encounter_id == encounter_id:
            return row
        return next((i for i, s in enumerate(self._rows) if s.encounter_id == encounter_id), -1)

    def overdue_count(self) -> int:
        """Rows past their due date (counted by query, read or not)."""
        return self._store.queue_view_overdue(self.queue, self._state, self._today())

    # ------------------------------------------------------------------ Qt model API

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's default
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's API: Qt's own default parent
        return 0 if parent.isValid() else len(Column)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole \
                and 0 <= section < len(Column):
            return HEADERS[Column(section)]
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role not in _ROLES or not index.isValid() or not (0 <= index.row() < len(self._rows)):
            return None   # views ask for many roles per cell: answer the unused ones at once
        summary = self._rows[index.row()]
        column = Column(index.column())
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(summary, column)
        if role == EncounterIdRole:
            return summary.encounter_id
        overdue = is_overdue(summary, self._today())
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(summary, overdue)
        if role == Qt.ItemDataRole.BackgroundRole and overdue:
            return QBrush(OVERDUE_BACKGROUND)
        if role == Qt.ItemDataRole.ForegroundRole and overdue:
            return QBrush(OVERDUE_FOREGROUND)
        if role == Qt.ItemDataRole.FontRole and overdue and column is Column.DUE:
            return self._bold
        if role == OverdueRole:
            return overdue
        return None

    def _display(self, summary: EncounterSummary, column: Column) -> str:
        if column is Column.PATIENT_ID:
            return summary.patient.patient_id
        if column is Column.NAME:
            return summary.patient.name
        if column is Column.DUE:
            return due_text(summary, self._today())
        if column is Column.FINDING:
            return finding_text(summary)
        if column is Column.STATE:
            words = STATE_WORDS.get(summary.state, summary.state)
            if summary.state == "referred" and summary.referred_without_slip:
                words += " without a slip"
            return f"{words} (queue changed)" if summary.override_reason else words
        return slip_text(summary)

    def _tooltip(self, summary: EncounterSummary, overdue: bool) -> str:
        lines = []
        if overdue:
            late = (self._today() - summary.due_date).days
            lines.append(f"OVERDUE: should have been seen by {summary.due_date.isoformat()} "
                         f"({late} day{'s' if late != 1 else ''} ago).")
        lines.append(f"{summary.queue.label}: {summary.action}.")
        lines.append(finding_text(summary, short=False))
        if summary.override_reason:
            lines.append(f"Queue changed by a clinician: {summary.override_reason}")
        lines.append(f"Screened {summary.started_at:%Y-%m-%d %H:%M}.")
        return "\n".join(lines)
