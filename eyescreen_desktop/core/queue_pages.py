"""The queue views' reads as the GUI's lazy table models call them: a thin layer
over the store's public paging API (:class:`store.queue_views.QueueViews`), kept so
the models (and tests) have one seam to call and to watch which thread reads."""

from __future__ import annotations

import datetime as dt
from typing import Any

from .records import EncounterSummary, Queue
from .store.queue_views import PAGE_ROWS

__all__ = ["PAGE_ROWS", "count", "overdue_count", "page", "position", "queue_counts"]


def count(store: Any, queue: Queue | None, state: str | None) -> int:
    """How many encounters the view holds."""
    return store.queue_view_count(queue, state)


def queue_counts(store: Any, state: str | None = "open") -> dict[Queue, int]:
    """Encounters in each of the four queues, one index count each."""
    return {q: store.queue_view_count(q, state) for q in Queue}


def overdue_count(store: Any, queue: Queue | None, state: str | None, today: dt.date) -> int:
    """Open encounters of the view past their due date."""
    return store.queue_view_overdue(queue, state, today)


def page(store: Any, queue: Queue | None, state: str | None, offset: int,
         limit: int = PAGE_ROWS) -> list[EncounterSummary]:
    """One page of the view as summaries."""
    return store.queue_view_page(queue, state, offset, limit)


def position(store: Any, queue: Queue | None, state: str | None, encounter_id: str) -> int:
    """The row of ``encounter_id`` in the view, or -1 when the view does not hold it."""
    return store.queue_view_position(queue, state, encounter_id)
