"""Results and queues: what the engine found for each photograph and where each encounter waits."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any, Sequence

from ..protocol import get_protocol
from ..records import EncounterSummary, EyeResult, ModelInfo, OperatingPoint, Queue, Status
from .base import _datetime, _iso, _now, default_user
from .images import ImageStore
from .patients import PatientStore
from .rows import _RESULT_SELECT, _eye_result, _patient, _result_values, _summary

STATES = ("open", "referred", "closed")


class ResultStore(PatientStore, ImageStore):
    """Results of photographs and the queue state of encounters."""

    def save_result(self, encounter_id: str, result: EyeResult, model: ModelInfo, protocol_name: str,
                    operating_point: OperatingPoint | None = None, user: str | None = None,
                    copy: bool | None = None) -> int:
        """Record what the engine found for one photograph of an encounter, in one
        transaction (image row, link, result, audit); returns the result ID.

        Saving again for the same photograph, model and protocol replaces the
        earlier result instead of adding a second one. ``copy`` defaults to
        copying every file that could be read into the image store.
        """
        get_protocol(protocol_name)
        copy = (result.status is not Status.ERROR) if copy is None else copy
        stored = self._copy_into_store(Path(result.path), result.sha256) if (copy and result.sha256) else None
        with self._tx() as db:  # the file copy above happens outside the lock
            image_id, link_id = self._link_image(encounter_id, result.path, result.sha256, result.eye,
                                                 user, stored)
            values = _result_values(result, model, protocol_name, operating_point)
            cols = ", ".join(values)
            updates = ", ".join(f"{k} = excluded.{k}" for k in values)
            row = db.execute(
                f"INSERT INTO results (encounter_image_id, encounter_id, image_id, {cols}, created_at, created_by) "
                f"VALUES (?, ?, ?, {', '.join('?' * len(values))}, ?, ?) "
                f"ON CONFLICT (encounter_image_id, model_sha, protocol) DO UPDATE SET {updates}, "
                f"created_at = excluded.created_at, created_by = excluded.created_by RETURNING result_id",
                (link_id, encounter_id, image_id, *values.values(), _now(), user or default_user()),
            ).fetchone()
            result_id = int(row[0])
            self._audit(db, user, "result saved", f"result:{result_id}",
                        {"encounter_id": encounter_id, "status": result.status.value,
                         "queue": result.queue.value, "model": f"{model.name} {model.version}",
                         "protocol": protocol_name})
            return result_id

    def result_for(self, sha256: str, model_sha: str, protocol: str,
                   operating_point: str | None = None) -> EyeResult | None:
        """The newest result for this photograph by this model and protocol (and
        operating point, when named), so a photograph seen before need not be
        graded again; None when there is none. ERROR results are never reused:
        their cause (a failed read, a model failure) may have gone away."""
        if not sha256:
            return None
        sql = (_RESULT_SELECT + " WHERE i.sha256 = ? AND r.model_sha = ? AND r.protocol = ? AND r.status != 'error'"
               + (" AND r.op_name = ?" if operating_point else "") + " ORDER BY r.result_id DESC LIMIT 1")
        params = (sha256, model_sha, protocol) + ((operating_point,) if operating_point else ())
        rows = self._query(sql, params)
        return _eye_result(rows[0], heatmap=True) if rows else None

    def finish_encounter(self, encounter_id: str, queue: Queue, due_date: dt.date,
                         user: str | None = None) -> None:
        """Put the encounter in its queue with its due date. Calling it again (new
        results) updates queue and date but keeps state, slip and override."""
        queue = Queue(queue)
        with self._tx() as db:
            self._encounter_row(encounter_id)
            old = db.execute("SELECT queue, due_date FROM queue_state WHERE encounter_id = ?",
                             (encounter_id,)).fetchone()
            if old is not None and (old["queue"], old["due_date"]) == (queue.value, _iso(due_date)):
                return  # nothing changed: no write, no audit row
            db.execute("INSERT INTO queue_state (encounter_id, queue, due_date, updated_at) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (encounter_id) DO UPDATE SET queue = excluded.queue, "
                       "due_date = excluded.due_date, updated_at = excluded.updated_at",
                       (encounter_id, queue.value, _iso(due_date), _now()))
            self._audit(db, user, "encounter queued", f"encounter:{encounter_id}",
                        {"queue": queue.value, "due_date": _iso(due_date)})

    def set_state(self, encounter_id: str, state: str, user: str | None = None) -> None:
        """Move a queued encounter to open, referred or closed."""
        if state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}, not {state!r}")
        self._update_queue_state(encounter_id, user, "state changed", state=state)

    def mark_slip_printed(self, encounter_id: str, user: str | None = None) -> None:
        """Note that the referral slip was printed (shown in the queue views)."""
        self._update_queue_state(encounter_id, user, "slip printed", slip_printed_at=_now())

    def override_queue(self, encounter_id: str, queue: Queue, reason: str, user: str | None = None) -> None:
        """A clinician moves the encounter to another queue; the reason is required
        and the due date follows the new queue."""
        if not reason or not reason.strip():
            raise ValueError("a reason is required to override the queue")
        queue = Queue(queue)
        enc = self._encounter_row(encounter_id)
        started = _datetime(enc["started_at"]) or dt.datetime.now()
        due = get_protocol(enc["protocol"]).due_date(queue, started.date())
        self._update_queue_state(encounter_id, user, "queue overridden", override_queue=queue.value,
                                 override_reason=reason.strip(), override_due_date=_iso(due))

    def _update_queue_state(self, encounter_id: str, user: str | None, action: str, **changes: Any) -> None:
        with self._tx() as db:
            old = db.execute("SELECT * FROM queue_state WHERE encounter_id = ?", (encounter_id,)).fetchone()
            if old is None:
                self._encounter_row(encounter_id)
                raise ValueError(f"encounter {encounter_id} has not been queued yet: finish screening it first")
            sets = ", ".join(f"{k} = ?" for k in changes)
            db.execute(f"UPDATE queue_state SET {sets}, updated_at = ? WHERE encounter_id = ?",
                       (*changes.values(), _now(), encounter_id))
            self._audit(db, user, action, f"encounter:{encounter_id}",
                        {k: {"from": old[k], "to": v} for k, v in changes.items()})

    def encounter_summary(self, encounter_id: str) -> EncounterSummary:
        """Everything a referral slip or queue row needs about one visit, heat maps included."""
        self._encounter_row(encounter_id)
        return self.encounter_summaries([encounter_id], heatmaps=True)[0]

    def encounters(self, queue: Queue | None = None, state: str | None = None,
                   since: dt.date | dt.datetime | None = None, heatmaps: bool = False) -> list[EncounterSummary]:
        """Queued encounters, most pressing due date first, optionally filtered by
        (effective) queue, state and start date; ``heatmaps`` as for
        :meth:`encounter_summaries`."""
        where, params = ["1 = 1"], []
        if queue is not None:
            where.append("COALESCE(q.override_queue, q.queue) = ?")
            params.append(Queue(queue).value)
        if state is not None:
            where.append("q.state = ?")
            params.append(state)
        if since is not None:
            where.append("e.started_at >= ?")
            params.append(_iso(since))
        rows = self._query(
            "SELECT e.encounter_id FROM encounters e JOIN queue_state q USING (encounter_id) "
            f"WHERE {' AND '.join(where)} "
            "ORDER BY COALESCE(q.override_due_date, q.due_date), e.started_at, e.encounter_id", params)
        return self.encounter_summaries([r[0] for r in rows], heatmaps)

    def queue_counts(self, state: str | None = "open") -> dict[Queue, int]:
        """How many encounters wait in each queue (all four queues present)."""
        sql = "SELECT COALESCE(override_queue, queue) AS q, COUNT(*) FROM queue_state"
        rows = self._query(sql + (" WHERE state = ?" if state else "") + " GROUP BY q",
                           (state,) if state else ())
        counts = {q: 0 for q in Queue}
        counts.update({Queue(r[0]): int(r[1]) for r in rows})
        return counts

    def encounter_summaries(self, encounter_ids: Sequence[str], heatmaps: bool = False) -> list[EncounterSummary]:
        """Summaries of existing encounters in the given order, with three queries per
        500 encounters (queue views and batch reports list thousands). Stored heat
        maps are decoded only with ``heatmaps`` (slips want them; a queue view of
        thousands of eyes would spend ~40 us per eye on them)."""
        if not encounter_ids:
            return []
        out: list[EncounterSummary] = []
        for start in range(0, len(encounter_ids), 500):  # SQLite's parameter limit
            chunk = list(encounter_ids[start:start + 500])
            marks = ", ".join("?" * len(chunk))
            encs = {r["encounter_id"]: r for r in self._query(
                "SELECT e.*, q.queue, q.due_date, q.state, q.slip_printed_at, q.override_queue, "
                "q.override_reason, q.override_due_date FROM encounters e "
                f"LEFT JOIN queue_state q USING (encounter_id) WHERE e.encounter_id IN ({marks})", chunk)}
            patients = {r["patient_id"]: _patient(r) for r in self._query(
                f"SELECT * FROM patients WHERE patient_id IN ({', '.join('?' * len(encs))})",
                [e["patient_id"] for e in encs.values()])}
            results: dict[str, list[sqlite3.Row]] = {}
            for r in self._query(_RESULT_SELECT + f" WHERE r.encounter_id IN ({marks}) AND r.result_id = "
                                 "(SELECT MAX(result_id) FROM results x WHERE x.encounter_image_id = "
                                 "r.encounter_image_id) ORDER BY r.result_id", chunk):
                results.setdefault(r["encounter_id"], []).append(r)
            out += [_summary(encs[e], patients[encs[e]["patient_id"]], results.get(e, []), heatmaps)
                    for e in chunk]
        return out
