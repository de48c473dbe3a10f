"""Queue views read page by page, so the window opens as fast on 100,000
encounters as on ten.

The queue tables show a few dozen rows at a time; reading every encounter of
a queue at start-up (as ``ClinicStore.encounters`` does, for reports) made
start-up grow with the database. These queries count with ``COUNT(*)``, find
a row's position without reading the rows before it, and read one page of
encounter IDs in the queue's order (most pressing due date first), whose
summaries come from ``ClinicStore.encounter_summaries``. Qt-free: the GUI's
lazy table model calls them, on a background thread.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from .records import EncounterSummary, Queue

PAGE_ROWS = 100
"""Rows read per page: a screenful or two."""

_DUE = "COALESCE(q.override_due_date, q.due_date)"
_ORDER = f"{_DUE}, e.started_at, e.encounter_id"
_FROM = "FROM encounters e JOIN queue_state q USING (encounter_id)"


def _where(queue: Queue | None, state: str | None) -> tuple[str, list[Any]]:
    """The filter of one queue view (effective queue after any override, state)."""
    where, params = ["1 = 1"], []
    if queue is not None:
        where.append("COALESCE(q.override_queue, q.queue) = ?")
        params.append(Queue(queue).value)
    if state is not None:
        where.append("q.state = ?")
        params.append(state)
    return " AND ".join(where), params


VIEW_INDEX = ("CREATE INDEX IF NOT EXISTS queue_state_view ON queue_state("
              "COALESCE(override_queue, queue), state, COALESCE(override_due_date, due_date))")
"""The index the queue views are read by: effective queue, state, effective due date.
(Belongs in the store's migrations; created here, idempotently, until it is there.)"""


def ensure_view_index(store: Any) -> None:
    """Create the queue views' index if the database lacks it (about 0.1 s once
    for 100,000 encounters; nothing after): counts and first pages then read
    the index instead of the whole table."""
    with store._tx() as db:
        db.execute(VIEW_INDEX)


def count(store: Any, queue: Queue | None, state: str | None) -> int:
    """How many encounters the view holds (from the index alone: every queued
    encounter exists, the foreign key sees to it)."""
    where, params = _where(queue, state)
    return int(store._query(f"SELECT COUNT(*) FROM queue_state q WHERE {where}", params)[0][0])


def queue_counts(store: Any, state: str | None = "open") -> dict[Queue, int]:
    """Encounters in each of the four queues, one index count each."""
    return {q: count(store, q, state) for q in Queue}


def overdue_count(store: Any, queue: Queue | None, state: str | None, today: dt.date) -> int:
    """Open encounters of the view past their due date (referred and closed ones are done)."""
    where, params = _where(queue, state)
    sql = f"SELECT COUNT(*) FROM queue_state q WHERE {where} AND q.state = 'open' AND {_DUE} < ?"
    return int(store._query(sql, [*params, today.isoformat()])[0][0])


def page_ids(store: Any, queue: Queue | None, state: str | None, offset: int, limit: int = PAGE_ROWS) -> list[str]:
    """Encounter IDs of rows ``offset`` .. ``offset + limit`` of the view, in its order."""
    where, params = _where(queue, state)
    rows = store._query(f"SELECT e.encounter_id {_FROM} WHERE {where} ORDER BY {_ORDER} LIMIT ? OFFSET ?",
                        [*params, int(limit), int(offset)])
    return [r[0] for r in rows]


def page(store: Any, queue: Queue | None, state: str | None, offset: int,
         limit: int = PAGE_ROWS) -> list[EncounterSummary]:
    """One page of the view as summaries (no heat maps: a table does not show them)."""
    return store.encounter_summaries(page_ids(store, queue, state, offset, limit))


def position(store: Any, queue: Queue | None, state: str | None, encounter_id: str) -> int:
    """The row of ``encounter_id`` in the view, or -1 when the view does not hold it;
    counted without reading the rows before it."""
    where, params = _where(queue, state)
    key = store._query(f"SELECT {_DUE} AS due, e.started_at AS started {_FROM} WHERE {where} "
                       "AND e.encounter_id = ?", [*params, encounter_id])
    if not key:
        return -1
    due, started = key[0]["due"], key[0]["started"]
    earlier = store._query(f"SELECT COUNT(*) FROM queue_state q WHERE {where} AND {_DUE} < ?", [*params, due])
    ties = store._query(f"SELECT COUNT(*) {_FROM} WHERE {where} AND {_DUE} = ? AND (e.started_at < ? OR "
                        "(e.started_at = ? AND e.encounter_id < ?))", [*params, due, started, started, encounter_id])
    return int(earlier[0][0]) + int(ties[0][0])


def encounter_patient_id(store: Any, encounter_id: str) -> str:
    """Whose encounter this is (KeyError when there is no such encounter)."""
    rows = store._query("SELECT patient_id FROM encounters WHERE encounter_id = ?", (encounter_id,))
    if not rows:
        raise KeyError(f"no encounter {encounter_id!r}")
    return str(rows[0][0])
