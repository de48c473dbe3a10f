"""Results and queues: what the engine found for each photograph and where each encounter waits."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from ..roles import Action
from .engine import Row
from ..grading import more_urgent
from ..protocol import get_protocol, patient_decision
from ..records import (
    MISSING_EYE_REASONS,
    EncounterSummary,
    Eye,
    EyeResult,
    MissingEye,
    ModelInfo,
    OperatingPoint,
    Queue,
    Status,
)
from .base import _datetime, _iso
from .images import ImageStore
from .patients import PatientStore
from .rows import _RESULT_SELECT, _eye_result, _patient, _result_values, _summary

log = logging.getLogger(__name__)

STATES = ("open", "referred", "closed")

REPAIR_WATERMARK = "queues_checked_through_result_id"
"""``store_meta`` key: results up to this ID have been checked for a queue entry."""

ORPHANS_SQL = ("SELECT r.encounter_id FROM results r WHERE r.result_id > ? AND NOT EXISTS "
               "(SELECT 1 FROM queue_state q WHERE q.encounter_id = r.encounter_id) ORDER BY r.result_id")
"""Encounters of results newer than the watermark without a queue entry: a primary-key
range (no DISTINCT, which makes SQLite scan a whole index instead; duplicates are
dropped in Python)."""


def queue_filter(queue: Queue | None, state: str | None) -> tuple[list[str], list[Any]]:
    """SQL conditions (over ``queue_state q``) and their parameters for one queue
    view: the effective queue after any override, and the state; shared by the
    queue lists and the window's paged views so both count the same patients."""
    where: list[str] = ["1 = 1"]
    params: list[Any] = []
    if queue is not None:
        where.append("COALESCE(q.override_queue, q.queue) = ?")
        params.append(Queue(queue).value)
    if state is not None:
        where.append("q.state = ?")
        params.append(state)
    return where, params


class ResultStore(PatientStore, ImageStore):
    """Results of photographs and the queue state of encounters."""

    def save_result(self, encounter_id: str, result: EyeResult, model: ModelInfo, protocol_name: str,
                    operating_point: OperatingPoint | None = None, user: str | None = None,
                    copy: bool | None = None) -> int:
        """Record what the engine found for one photograph of an encounter and put the
        encounter in its queue by the rule (:func:`protocol.encounter_decision`), all
        in ONE transaction (image row, link, result, queue, audit): a crash or a
        database-busy error can never leave a result that no queue shows. Returns
        the result ID.

        Saving again for the same photograph, model and protocol replaces the
        earlier result instead of adding a second one. ``copy`` defaults to
        copying every file that could be read into the image store; the copy is
        made before the write lock is taken, so readers never wait on file copies.
        """
        self.require(Action.SCREEN)
        get_protocol(protocol_name)
        stored = self._stored_copy(result, copy)
        with self._tx():
            return self._save_result_locked(encounter_id, result, model, protocol_name, operating_point, user,
                                            stored)

    def _stored_copy(self, result: EyeResult, copy: bool | None) -> str | None:
        """The photograph copied into the image store (outside any lock); its stored name."""
        copy = (result.status is not Status.ERROR) if copy is None else copy
        return self._copy_into_store(Path(result.path), result.sha256) if (copy and result.sha256) else None

    def _save_result_locked(self, encounter_id: str, result: EyeResult, model: ModelInfo, protocol_name: str,
                            operating_point: OperatingPoint | None, user: str | None, stored: str | None) -> int:
        """The database half of :meth:`save_result`, inside the caller's transaction."""
        with self._tx() as db:
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
                (link_id, encounter_id, image_id, *values.values(), self._now(), self._who(user)),
            ).fetchone()
            result_id = int(row[0])
            self._audit(db, user, "result saved", f"result:{result_id}",
                        {"encounter_id": encounter_id, "status": result.status.value,
                         "queue": result.queue.value, "model": f"{model.name} {model.version}",
                         "protocol": protocol_name})
            self._queue_by_rule(encounter_id, user)
            return result_id

    def result_for(self, sha256: str, model_sha: str, protocol: str,
                   operating_point: OperatingPoint | str | None = None, gate: str | None = None
                   ) -> EyeResult | None:
        """The newest result for this photograph by this model and protocol (and
        operating point, when given), so a photograph seen before need not be
        graded again; None when there is none. An OperatingPoint matches on its
        thresholds, not its name: a clinic's recalibrated point keeps its name but
        must not reuse queues decided at the old thresholds (a str still matches
        the name, for callers that only have one). ``gate`` (the learned gate's
        "name version", '' for none), when given, must match too: a result let
        through by another gate (or by none, before issue 9's gate: a selfie could
        be graded then) is judged again. ERROR results are never reused: their
        cause (a failed read, a model failure) may have gone away."""
        if not sha256:
            return None
        where, extra = "", ()
        if isinstance(operating_point, OperatingPoint):
            field = ("json_extract(r.operating_point, '$.{}')" if self.dialect == "sqlite"
                     else "CAST(CAST(r.operating_point AS json) ->> '{}' AS double precision)")
            where = f" AND {field.format('referable')} = ? AND {field.format('urgent')} = ?"
            extra = (float(operating_point.referable), float(operating_point.urgent))
        elif operating_point:
            where, extra = " AND r.op_name = ?", (operating_point,)
        sql = (_RESULT_SELECT + " WHERE i.sha256 = ? AND r.model_sha = ? AND r.protocol = ? AND r.status != 'error'"
               + where + (" AND r.gate = ?" if gate is not None else "") + " ORDER BY r.result_id DESC LIMIT 1")
        rows = self._query(sql, (sha256, model_sha, protocol) + extra + ((gate,) if gate is not None else ()))
        return _eye_result(rows[0], heatmap=True) if rows else None

    def finish_encounter(self, encounter_id: str, queue: Queue, due_date: dt.date,
                         user: str | None = None) -> None:
        """Put the encounter in a queue with its due date. Calling it again (new
        results) updates queue and date but keeps state, slip and override.

        The rule still holds: when the encounter's own results call for a more
        urgent queue (e.g. review for a visit with one eye photographed, where
        ``annual`` was asked for), that queue and its due date are used instead.
        Prefer :meth:`requeue_encounter`, which asks the rule directly."""
        self.require(Action.SCREEN)
        queue = Queue(queue)
        with self._tx():
            decided = self._rule_queue(encounter_id)
            if decided is not None and decided[0].priority < queue.priority:
                queue, due_date = decided
            self._write_queue(encounter_id, queue, due_date, user)

    def requeue_encounter(self, encounter_id: str, user: str | None = None) -> Queue | None:
        """Queue the encounter by the rule (current photograph per eye, both eyes or a
        recorded reason, see :func:`protocol.encounter_decision`) with the protocol's
        due date; returns the queue, or None when it has no result yet. Saving a
        result does this already; call it after anything else that changes the rule's
        inputs outside the store."""
        self.require(Action.SCREEN)
        with self._tx():
            return self._queue_by_rule(encounter_id, user)

    def repair_queues(self, user: str | None = None) -> list[str]:
        """Queue every encounter that has results but no queue entry (left by a crash
        of an EyeScreen before results and queue were written together); audited as
        "encounter queued (repaired)". Returns their IDs. Runs when the store opens.

        Incremental: only results newer than the watermark (the highest result ID
        already checked, in ``store_meta``) are read, through the primary key, so
        opening a database of 100,000 encounters does not read every result; the
        first open after the upgrade checks them all once. Results written since are
        queued in their own transaction, so older ones need no second look."""
        with self._tx():
            checked = self._meta_int(REPAIR_WATERMARK)
            top = self._query("SELECT MAX(result_id) FROM results")[0][0]
            if top is None or top <= checked:
                return []
            orphans = list(dict.fromkeys(r[0] for r in self._query(ORPHANS_SQL, (checked,))))
            for encounter_id in orphans:
                self._queue_by_rule(encounter_id, user, action="encounter queued (repaired)")
            self._set_meta(REPAIR_WATERMARK, str(top))
        if orphans:
            log.warning("%d encounter(s) had results but no queue entry; queued them now", len(orphans))
        return orphans

    def _rule_queue(self, encounter_id: str) -> tuple[Queue, dt.date] | None:
        """The queue and due date the rule gives the encounter now; None without results.
        Human grades decide once final; while arbitration is pending the more urgent of
        the AI's and the grader's outcome stands (:mod:`..grading`)."""
        enc = self._encounter_row(encounter_id)
        inputs = self._rule_inputs(encounter_id)
        if inputs is None:
            return None
        queue = patient_decision(enc["patient_id"], *inputs).queue   # the no-ID group is never annual
        graded = self._query("SELECT state, graded_queue, final_queue FROM encounter_grading WHERE encounter_id = ?",
                             (encounter_id,))
        if graded:
            _state, graded_queue, final = graded[0]
            queue = Queue(final) if final is not None else more_urgent(queue, Queue(graded_queue))
        started = _datetime(enc["started_at"]) or self.now_local()
        return queue, get_protocol(enc["protocol"]).due_date(queue, started.date())

    def _rule_inputs(self, encounter_id: str) -> tuple[list[EyeResult], list[MissingEye]] | None:
        """The encounter's newest result per photograph and its eyes recorded as missing
        (what :func:`protocol.encounter_queue` decides from); None without results."""
        rows = self._query(_RESULT_SELECT + " WHERE r.encounter_id = ? AND r.result_id = (SELECT MAX(result_id) "
                           "FROM results x WHERE x.encounter_image_id = r.encounter_image_id) "
                           "ORDER BY r.encounter_image_id", (encounter_id,))
        if not rows:
            return None
        missing = [MissingEye(Eye(r[0]), r[1]) for r in self._query(
            "SELECT eye, reason FROM missing_eyes WHERE encounter_id = ?", (encounter_id,))]
        return [_eye_result(r) for r in rows], missing

    def _queue_by_rule(self, encounter_id: str, user: str | None, action: str = "encounter queued") -> Queue | None:
        decided = self._rule_queue(encounter_id)
        if decided is None:
            return None
        self._write_queue(encounter_id, decided[0], decided[1], user, action)
        return decided[0]

    def _write_queue(self, encounter_id: str, queue: Queue, due_date: dt.date, user: str | None,
                     action: str = "encounter queued") -> None:
        with self._tx() as db:
            old = db.execute("SELECT queue, due_date FROM queue_state WHERE encounter_id = ?",
                             (encounter_id,)).fetchone()
            if old is not None and (old["queue"], old["due_date"]) == (queue.value, _iso(due_date)):
                return  # nothing changed: no write, no audit row
            db.execute("INSERT INTO queue_state (encounter_id, queue, due_date, updated_at) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (encounter_id) DO UPDATE SET queue = excluded.queue, "
                       "due_date = excluded.due_date, updated_at = excluded.updated_at, "
                       "version = queue_state.version + 1",
                       (encounter_id, queue.value, _iso(due_date), self._now()))
            self._audit(db, user, action, f"encounter:{encounter_id}",
                        {"queue": queue.value, "due_date": _iso(due_date)})

    # ------------------------------------------------------------------ eyes not photographed

    def record_missing_eye(self, encounter_id: str, eye: Eye, reason: str, note: str = "",
                           user: str | None = None) -> Queue | None:
        """Record why an eye was not photographed (a key of ``MISSING_EYE_REASONS``;
        ``other`` needs a ``note``), which makes a one-eyed visit complete; audited,
        and the encounter re-queued in the same transaction. Returns the new queue
        (None while it has no result)."""
        self.require(Action.SCREEN)
        eye = Eye(eye)
        if eye is Eye.UNKNOWN:
            raise ValueError("say which eye was not photographed: right or left")
        if reason not in MISSING_EYE_REASONS:
            raise ValueError(f"reason must be one of {', '.join(MISSING_EYE_REASONS)}, not {reason!r}")
        if reason == "other" and not note.strip():
            raise ValueError("write down the reason when it is 'other'")
        with self._tx() as db:
            self._encounter_row(encounter_id)
            db.execute("INSERT INTO missing_eyes (encounter_id, eye, reason, note, recorded_at, recorded_by) "
                       "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (encounter_id, eye) DO UPDATE SET "
                       "reason = excluded.reason, note = excluded.note, recorded_at = excluded.recorded_at, "
                       "recorded_by = excluded.recorded_by",
                       (encounter_id, eye.value, reason, note.strip(), self._now(), self._who(user)))
            self._audit(db, user, "missing eye recorded", f"encounter:{encounter_id}",
                        {"eye": eye.value, "reason": reason, "note": note.strip()})
            return self._queue_by_rule(encounter_id, user)

    def clear_missing_eye(self, encounter_id: str, eye: Eye, user: str | None = None) -> Queue | None:
        """Withdraw a recorded reason (e.g. the eye was photographed after all);
        audited, the encounter re-queued. Returns the new queue (None without result)."""
        self.require(Action.SCREEN)
        eye = Eye(eye)
        with self._tx() as db:
            self._encounter_row(encounter_id)
            gone = db.execute("DELETE FROM missing_eyes WHERE encounter_id = ? AND eye = ?",
                              (encounter_id, eye.value)).rowcount
            if gone:
                self._audit(db, user, "missing eye cleared", f"encounter:{encounter_id}", {"eye": eye.value})
            return self._queue_by_rule(encounter_id, user)

    def set_photo_eye(self, encounter_id: str, sha256: str, eye: Eye, user: str | None = None) -> Queue | None:
        """Say which eye a photograph of the encounter shows (staff correcting or
        setting the side); audited, the encounter re-queued. Returns the new queue."""
        self.require(Action.SCREEN)
        eye = Eye(eye)
        with self._tx() as db:
            rows = db.execute("SELECT ei.encounter_image_id, ei.eye FROM encounter_images ei JOIN images i "
                              "USING (image_id) WHERE ei.encounter_id = ? AND i.sha256 = ?",
                              (encounter_id, sha256)).fetchall()
            if not rows:
                raise KeyError(f"encounter {encounter_id} has no photograph {sha256[:12]}")
            if rows[0]["eye"] != eye.value:
                db.execute("UPDATE encounter_images SET eye = ? WHERE encounter_image_id = ?",
                           (eye.value, rows[0]["encounter_image_id"]))
                self._audit(db, user, "eye side set", f"encounter:{encounter_id}",
                            {"sha256": sha256, "from": rows[0]["eye"], "to": eye.value})
            return self._queue_by_rule(encounter_id, user)

    # ------------------------------------------------------------------ queue state

    def set_state(self, encounter_id: str, state: str, user: str | None = None,
                  expected_version: int | None = None) -> None:
        """Move a queued encounter to open, referred or closed. With ``expected_version``
        (the ``EncounterSummary.version`` the user saw) the change is refused with
        ``QueueConflict`` when another workstation changed the entry meanwhile."""
        self.require(Action.CHANGE_QUEUE)
        if state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}, not {state!r}")
        with self._tx() as db:
            if self._changed_meanwhile(db, encounter_id, expected_version, user, "state changed", {"state": state}):
                refused = True
            else:
                refused = False
                issued = db.execute("SELECT slip_printed_at IS NOT NULL OR slip_saved_at IS NOT NULL "
                                    "FROM queue_state WHERE encounter_id = ?", (encounter_id,)).fetchone()
                if state == "referred" and issued is not None and not issued[0]:
                    self._update_queue_state(encounter_id, user, "referred without a slip",
                                             referred_without_slip=1)
                self._update_queue_state(encounter_id, user, "state changed", state=state)
        if refused:
            self._refuse(encounter_id, f"mark {state}")

    def mark_slip_printed(self, encounter_id: str, user: str | None = None) -> None:
        """Note that the patient's slip (or letter) was printed (shown in the queue views)."""
        self.require(Action.PRINT_DOCUMENT)
        self._update_queue_state(encounter_id, user, "slip printed", slip_printed_at=self._now())

    def mark_slip_saved(self, encounter_id: str, path: str = "", user: str | None = None) -> None:
        """Note that the patient's slip (or letter) was saved as PDF: handing the file
        on counts as issuing the slip, as printing does (``slip_issued_at``)."""
        self.require(Action.PRINT_DOCUMENT)
        with self._tx() as db:
            self._update_queue_state(encounter_id, user, "slip saved", slip_saved_at=self._now())
            if path:
                self._audit(db, user, "slip saved to", f"encounter:{encounter_id}", {"path": str(path)})

    def mark_referred(self, encounter_id: str, user: str | None = None, expected_version: int | None = None) -> bool:
        """Mark the encounter referred. Allowed without a slip, but then recorded as
        "referred without a slip" (audited, and ``referred_without_slip`` in the
        summary) so the queue can show it. Returns True when a slip had been issued."""
        self.require(Action.CHANGE_QUEUE)
        self.set_state(encounter_id, "referred", user, expected_version)
        with self._tx() as db:
            row = db.execute("SELECT referred_without_slip FROM queue_state WHERE encounter_id = ?",
                             (encounter_id,)).fetchone()
            return not row[0]

    def override_queue(self, encounter_id: str, queue: Queue, reason: str, user: str | None = None,
                       expected_version: int | None = None) -> None:
        """A clinician moves the encounter to another queue; the reason is required
        and the due date follows the new queue. ``expected_version`` as for :meth:`set_state`."""
        self.require(Action.CHANGE_QUEUE)
        if not reason or not reason.strip():
            raise ValueError("a reason is required to override the queue")
        queue = Queue(queue)
        enc = self._encounter_row(encounter_id)
        started = _datetime(enc["started_at"]) or self.now_local()
        due = get_protocol(enc["protocol"]).due_date(queue, started.date())
        with self._tx() as db:
            refused = self._changed_meanwhile(db, encounter_id, expected_version, user, "queue overridden",
                                              {"queue": queue.value, "reason": reason.strip()})
            if not refused:
                self._update_queue_state(encounter_id, user, "queue overridden", override_queue=queue.value,
                                         override_reason=reason.strip(), override_due_date=_iso(due))
        if refused:
            self._refuse(encounter_id, f"move to {queue.value}")

    def _update_queue_state(self, encounter_id: str, user: str | None, action: str, **changes: Any) -> None:
        with self._tx() as db:
            old = db.execute("SELECT * FROM queue_state WHERE encounter_id = ?", (encounter_id,)).fetchone()
            if old is None:
                self._encounter_row(encounter_id)
                raise ValueError(f"encounter {encounter_id} has not been queued yet: finish screening it first")
            sets = ", ".join(f"{k} = ?" for k in changes)
            db.execute(f"UPDATE queue_state SET {sets}, updated_at = ?, version = version + 1 WHERE encounter_id = ?",
                       (*changes.values(), self._now(), encounter_id))
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
        where, params = queue_filter(queue, state)
        if since is not None:
            if not isinstance(since, dt.datetime):   # from the start of that day, the clinic's (local) day
                since = dt.datetime.combine(since, dt.time()).astimezone()
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
                "q.override_reason, q.override_due_date, q.slip_saved_at, q.referred_without_slip, q.version "
                "FROM encounters e "
                f"LEFT JOIN queue_state q USING (encounter_id) WHERE e.encounter_id IN ({marks})", chunk)}
            patients = {r["patient_id"]: _patient(r) for r in self._query(
                f"SELECT * FROM patients WHERE patient_id IN ({', '.join('?' * len(encs))})",
                [e["patient_id"] for e in encs.values()])}
            results: dict[str, list[Row]] = {}
            for r in self._query(_RESULT_SELECT + f" WHERE r.encounter_id IN ({marks}) AND r.result_id = "
                                 "(SELECT MAX(result_id) FROM results x WHERE x.encounter_image_id = "
                                 "r.encounter_image_id) ORDER BY r.encounter_image_id", chunk):
                results.setdefault(r["encounter_id"], []).append(r)
            missing: dict[str, list[MissingEye]] = {}
            for r in self._query(f"SELECT * FROM missing_eyes WHERE encounter_id IN ({marks}) ORDER BY eye DESC",
                                 chunk):
                missing.setdefault(r["encounter_id"], []).append(MissingEye(Eye(r["eye"]), r["reason"], r["note"]))
            grading = self._grading_words(chunk)
            out += [replace(_summary(encs[e], patients[encs[e]["patient_id"]], results.get(e, []), heatmaps,
                                     missing.get(e, [])), **grading.get(e, {})) for e in chunk]
        return out

    def _grading_words(self, chunk: list[str]) -> dict[str, dict[str, str]]:
        """Where each encounter of ``chunk`` stands with human grades, for its summary:
        the state and the graders whose grades decide (the arbiter once arbitrated)."""
        marks = ", ".join("?" * len(chunk))
        states = {r[0]: r[1] for r in self._query(
            f"SELECT encounter_id, state FROM encounter_grading WHERE encounter_id IN ({marks})", chunk)}
        graders: dict[str, dict[str, list[str]]] = {}
        for r in self._query(f"SELECT encounter_id, grader, role FROM human_grades WHERE encounter_id IN ({marks}) "
                             "ORDER BY grade_id", chunk):
            names = graders.setdefault(r[0], {}).setdefault(r[2], [])
            if r[1] not in names:
                names.append(r[1])
        out = {}
        for encounter_id, state in states.items():
            roles = graders.get(encounter_id, {})
            who = roles.get("arbitration") if state == "arbitrated" else roles.get("first")
            out[encounter_id] = {"grading_state": state, "graded_by": ", ".join(who or [])}
        return out
