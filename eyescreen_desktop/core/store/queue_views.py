"""Queue views read page by page, so the window opens as fast on 100,000
encounters as on ten.

The queue tables show a few dozen rows at a time; reading every encounter of a
queue at start-up (as :meth:`ClinicStore.encounters` does, for reports) made
start-up grow with the database. These methods count from the ``queue_state_view``
index (schema migration ``_SCHEMA_QUEUE_VIEWS``), find a row's position without
reading the rows before it, and read one page of encounters in the queue's order
(most pressing due date first).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..records import EncounterSummary, Queue
from .names import PAGE_ROWS
from .results import ResultStore, queue_filter

_DUE = "COALESCE(q.override_due_date, q.due_date)"
_ORDER = f"{_DUE}, e.started_at, e.encounter_id"
_FROM = "FROM encounters e JOIN queue_state q USING (encounter_id)"


def _where(queue: Queue | None, state: str | None) -> tuple[str, list[Any]]:
    """The filter of one queue view (effective queue after any override, state)."""
    where, params = queue_filter(queue, state)
    return " AND ".join(where), params


class QueueViews(ResultStore):
    """Counts, pages and positions of one queue view (queue and state, None = all)."""

    def queue_view_count(self, queue: Queue | None, state: str | None) -> int:
        """How many encounters the view holds (from the index alone: every queued
        encounter exists, the foreign key sees to it)."""
        where, params = _where(queue, state)
        return int(self._query(f"SELECT COUNT(*) FROM queue_state q WHERE {where}", params)[0][0])

    def queue_view_overdue(self, queue: Queue | None, state: str | None, today: dt.date) -> int:
        """Open encounters of the view past their due date (referred and closed ones are done)."""
        where, params = _where(queue, state)
        sql = f"SELECT COUNT(*) FROM queue_state q WHERE {where} AND q.state = 'open' AND {_DUE} < ?"
        return int(self._query(sql, [*params, today.isoformat()])[0][0])

    def queue_view_ids(self, queue: Queue | None, state: str | None, offset: int,
                       limit: int = PAGE_ROWS) -> list[str]:
        """Encounter IDs of rows ``offset`` .. ``offset + limit`` of the view, in its order."""
        where, params = _where(queue, state)
        rows = self._query(f"SELECT e.encounter_id {_FROM} WHERE {where} ORDER BY {_ORDER} LIMIT ? OFFSET ?",
                           [*params, int(limit), int(offset)])
        return [r[0] for r in rows]

    def queue_view_page(self, queue: Queue | None, state: str | None, offset: int,
                        limit: int = PAGE_ROWS) -> list[EncounterSummary]:
        """One page of the view as summaries (no heat maps: a table does not show them)."""
        return self.encounter_summaries(self.queue_view_ids(queue, state, offset, limit))

    def queue_view_position(self, queue: Queue | None, state: str | None, encounter_id: str) -> int:
        """The row of ``encounter_id`` in the view, or -1 when the view does not hold it;
        counted without reading the rows before it."""
        where, params = _where(queue, state)
        key = self._query(f"SELECT {_DUE} AS due, e.started_at AS started {_FROM} WHERE {where} "
                          "AND e.encounter_id = ?", [*params, encounter_id])
        if not key:
            return -1
        due, started = key[0]["due"], key[0]["started"]
        earlier = self._query(f"SELECT COUNT(*) FROM queue_state q WHERE {where} AND {_DUE} < ?", [*params, due])
        ties = self._query(f"SELECT COUNT(*) {_FROM} WHERE {where} AND {_DUE} = ? AND (e.started_at < ? OR "
                           "(e.started_at = ? AND e.encounter_id < ?))",
                           [*params, due, started, started, encounter_id])
        return int(earlier[0][0]) + int(ties[0][0])

    def encounter_patient_id(self, encounter_id: str) -> str:
        """Whose encounter this is (KeyError when there is no such encounter)."""
        rows = self._query("SELECT patient_id FROM encounters WHERE encounter_id = ?", (encounter_id,))
        if not rows:
            raise KeyError(f"no encounter {encounter_id!r}")
        return str(rows[0][0])
