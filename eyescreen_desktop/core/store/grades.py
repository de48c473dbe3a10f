"""Human grades: a second reader in the loop (issue 22).

A grader's reading of each eye (from the grading desk or a reading centre's
import), where each encounter stands with them (final, arbitration pending,
arbitrated) and the quality-assurance draws of annual encounters. The
encounter's queue and due date follow the graded outcome through the one rule
(``ResultStore._rule_queue``), in the same transaction as the grade.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..grading import HumanGrade, OutcomeRaise, Resolution, more_urgent, protocol_outcome, raise_outcome, resolve
from ..protocol import encounter_queue
from ..records import Eye, Queue
from .base import _datetime
from .engine import Db, Row
from .results import ResultStore


QUALITY_THRESHOLD_KEY = "applied_quality_reject_threshold"


class GradeConflict(ValueError):
    """A grader already gave this eye a different grade (a grade is never silently replaced)."""


@dataclass(frozen=True)
class EncounterGrading:
    """Where an encounter stands with its human grades."""

    encounter_id: str
    state: str                 # final / arbitration_pending / arbitrated
    ai_queue: Queue
    graded_queue: Queue
    final_queue: Queue | None  # None while arbitration is pending


@dataclass(frozen=True)
class QaDraw:
    """One quality-assurance draw of annual encounters: its rate, its seed and what it drew."""

    draw_id: int
    drawn_at: dt.datetime
    drawn_by: str
    rate: float
    seed: int
    considered: int
    drawn: tuple[str, ...]


def _grade(row: Row) -> HumanGrade:
    return HumanGrade(row["encounter_id"], Eye(row["eye"]), row["grader"], row["icdr_grade"], row["maculopathy"],
                      tuple(json.loads(row["findings"])), row["note"], row["source"], row["role"],
                      _datetime(row["graded_at"]), row["recorded_by"])


class GradeStore(ResultStore):
    """Human grades, arbitration state and quality-assurance draws."""

    def record_grades(self, grades: Sequence[HumanGrade], user: str | None = None,
                      single_grader_stands: bool = False,
                      raises: Sequence[OutcomeRaise] = ()) -> dict[str, EncounterGrading]:
        """Record graders' readings, all in ONE transaction, and re-queue each encounter
        they touch by its graded outcome (:func:`grading.resolve`). A reading identical
        to one the same grader already gave is skipped (re-importing a file changes
        nothing); a different one raises :class:`GradeConflict`. While an encounter
        waits for arbitration, a different grader's desk grade arbitrates it (the
        same grader is refused). ``raises``: a grader raising an encounter's outcome above
        what the protocol makes of the grades, with a reason (:func:`grading.raise_outcome`:
        a raise that does not raise is refused and nothing of the call is recorded).
        Returns the new state of each encounter that changed."""
        out: dict[str, EncounterGrading] = {}
        with self._tx() as db:
            touched: dict[str, str] = {}
            for grade in grades:
                if self._insert_grade(db, grade, user):
                    touched[grade.encounter_id] = grade.source
            for raised in raises:
                if self._insert_raise(db, raised, user):
                    touched.setdefault(raised.encounter_id, "desk")
            for encounter_id, source in touched.items():
                out[encounter_id] = self._settle(db, encounter_id, source, single_grader_stands, user)
        return out

    def _insert_grade(self, db: Db, grade: HumanGrade, user: str | None) -> bool:
        """Insert one reading; False when the grader already gave exactly this one."""
        self._encounter_row(grade.encounter_id)
        if grade.eye not in self.photographed_eyes(grade.encounter_id):
            raise ValueError(f"encounter {grade.encounter_id} has no photograph of the {grade.eye.label}")
        role = grade.role
        state = self.encounter_grading(grade.encounter_id)
        if state is not None and state.state == "arbitration_pending" and grade.source == "desk":
            if grade.grader in self._first_readers(grade.encounter_id):
                raise ValueError(f"{grade.grader} gave the first read: a different grader must arbitrate")
            role = "arbitration"
        old = db.execute("SELECT * FROM human_grades WHERE encounter_id = ? AND eye = ? AND grader = ?",
                         (grade.encounter_id, grade.eye.value, grade.grader)).fetchone()
        if old is not None:
            if _grade(old).same_reading(grade):
                return False
            raise GradeConflict(f"{grade.grader} already graded the {grade.eye.label} of encounter "
                                f"{grade.encounter_id} differently (ICDR {old['icdr_grade']})")
        who = self._who(user)   # the signed-in person, as the audit entry names
        db.execute("INSERT INTO human_grades (encounter_id, eye, grader, icdr_grade, maculopathy, findings, note, "
                   "source, role, graded_at, recorded_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (grade.encounter_id, grade.eye.value, grade.grader, grade.icdr_grade, grade.maculopathy,
                    json.dumps(sorted(grade.findings)), grade.note, grade.source, role, self._now(), who))
        self._audit(db, who, "eye graded", f"encounter:{grade.encounter_id}",
                    {"eye": grade.eye.value, "grader": grade.grader, "icdr_grade": grade.icdr_grade,
                     "maculopathy": grade.maculopathy, "findings": sorted(grade.findings), "source": grade.source,
                     "role": role})
        return True

    def _insert_raise(self, db: Db, raised: OutcomeRaise, user: str | None) -> bool:
        """Insert one grader's raise; False when they already raised it exactly so.
        (Annual raises nothing; whether it raises THIS outcome is checked when settling.)"""
        raise_outcome(Queue.ANNUAL, raised.queue, raised.reason)
        old = db.execute("SELECT queue, reason FROM raised_outcomes WHERE encounter_id = ? AND grader = ?",
                         (raised.encounter_id, raised.grader)).fetchone()
        if old is not None:
            if (old[0], old[1]) == (raised.queue.value, raised.reason):
                return False
            raise GradeConflict(f"{raised.grader} already raised encounter {raised.encounter_id} to {old[0]}")
        if not db.execute("SELECT 1 FROM human_grades WHERE encounter_id = ? AND grader = ?",
                          (raised.encounter_id, raised.grader)).fetchone():
            raise ValueError(f"{raised.grader} has not graded encounter {raised.encounter_id}: only its grader "
                             "may raise its outcome")
        who = self._who(user)   # the signed-in person, as the audit entry names
        db.execute("INSERT INTO raised_outcomes (encounter_id, grader, queue, reason, raised_at, recorded_by) "
                   "VALUES (?, ?, ?, ?, ?, ?)", (raised.encounter_id, raised.grader, raised.queue.value,
                                                 raised.reason, self._now(), who))
        self._audit(db, who, "outcome raised", f"encounter:{raised.encounter_id}",
                    {"grader": raised.grader, "to": raised.queue.value, "reason": raised.reason})
        return True

    def raised_outcomes(self, encounter_id: str) -> list[OutcomeRaise]:
        """The graders' raises of this encounter's outcome, oldest first."""
        return [OutcomeRaise(r["encounter_id"], r["grader"], Queue(r["queue"]), r["reason"]) for r in self._query(
            "SELECT * FROM raised_outcomes WHERE encounter_id = ? ORDER BY raise_id", (encounter_id,))]

    def _apply_raises(self, encounter_id: str, deciders: set[str], outcome: Queue) -> Queue:
        """The protocol's outcome of the deciding graders' grades, raised by their raises
        (each checked to raise it: :func:`grading.raise_outcome`)."""
        raised = outcome
        for r in self.raised_outcomes(encounter_id):
            if r.grader not in deciders:
                continue
            queue = raise_outcome(outcome, r.queue, r.reason)
            raised = more_urgent(raised, queue)
        return raised

    def _first_readers(self, encounter_id: str) -> set[str]:
        return {r[0] for r in self._query("SELECT grader FROM human_grades WHERE encounter_id = ? AND role = 'first'",
                                          (encounter_id,))}

    def _settle(self, db: Db, encounter_id: str, source: str, single_grader_stands: bool,
                user: str | None) -> EncounterGrading:
        """Decide the encounter's graded outcome and state, write them, re-queue it."""
        inputs = self._rule_inputs(encounter_id)
        if inputs is None:
            raise ValueError(f"encounter {encounter_id} has no screened photograph to grade")
        eyes, missing = inputs
        protocol = self._encounter_row(encounter_id)["protocol"]
        ai = encounter_queue(eyes, missing)
        grades = self.grades(encounter_id)
        arbitration = {g.eye: g for g in grades if g.role == "arbitration"}
        first = {g.eye: g for g in grades if g.role == "first"}      # newest per eye (grades come oldest first)
        readings = {**first, **arbitration}
        deciders = {g.grader for g in (arbitration or first).values()}
        graded = self._apply_raises(encounter_id, deciders, protocol_outcome(eyes, readings, protocol, missing))
        if arbitration:
            settled = Resolution("arbitrated", graded, graded)
        else:
            settled = resolve(ai, graded, source, single_grader_stands)
        db.execute("INSERT INTO encounter_grading (encounter_id, state, ai_queue, graded_queue, final_queue, "
                   "updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (encounter_id) DO UPDATE SET "
                   "state = excluded.state, ai_queue = excluded.ai_queue, graded_queue = excluded.graded_queue, "
                   "final_queue = excluded.final_queue, updated_at = excluded.updated_at",
                   (encounter_id, settled.state, ai.value, graded.value,
                    settled.final.value if settled.final else None, self._now()))
        self._audit(db, user, "grading " + settled.state.replace("_", " "), f"encounter:{encounter_id}",
                    {"ai_queue": ai.value, "graded_queue": graded.value, "queue": settled.queue.value})
        self._queue_by_rule(encounter_id, user, action="encounter queued (graded)")
        db.execute("UPDATE grading_flags SET cleared_at = ? WHERE encounter_id = ? AND cleared_at IS NULL",
                   (self._now(), encounter_id))
        return EncounterGrading(encounter_id, settled.state, ai, graded, settled.final)

    def note_document(self, encounter_id: str, path: Path | str, superseded: Sequence[Path | str] = (),
                      user: str | None = None) -> None:
        """Audit a patient's document written again after a grade, and each earlier
        document it superseded (kept, with where it now lies), so the record shows
        which document a patient may hold and which one replaced it."""
        with self._tx() as db:
            for kept in superseded:
                self._audit(db, user, "document superseded", f"encounter:{encounter_id}",
                            {"kept_as": str(kept), "replaced_by": str(path)})
            self._audit(db, user, "document regenerated", f"encounter:{encounter_id}",
                        {"path": str(path), "supersedes": [str(k) for k in superseded]})

    def flag_for_grader(self, encounter_id: str, reason: str = "", user: str | None = None) -> bool:
        """Put an encounter on the grading worklist because staff want a grader to look
        (audited, with the reason). Needs the flag permission (nurse, coordinator).
        False when it is already flagged and waiting."""
        from ..roles import Action

        self.require(Action.FLAG_FOR_GRADER)
        self._encounter_row(encounter_id)
        with self._tx() as db:
            if db.execute("SELECT 1 FROM grading_flags WHERE encounter_id = ? AND cleared_at IS NULL",
                          (encounter_id,)).fetchone():
                return False
            who = self._who(user)
            db.execute("INSERT INTO grading_flags (encounter_id, flagged_at, flagged_by, reason) VALUES (?, ?, ?, ?)",
                       (encounter_id, self._now(), who, reason.strip()))
            self._audit(db, user, "flagged for a grader", f"encounter:{encounter_id}", {"reason": reason.strip()})
        return True

    def flagged_for_grader(self) -> dict[str, str]:
        """Encounters flagged for a grader and not yet graded since: encounter -> reason."""
        return {r[0]: r[1] for r in self._query(
            "SELECT encounter_id, reason FROM grading_flags WHERE cleared_at IS NULL ORDER BY flag_id")}

    def apply_quality_threshold(self, threshold: float | None, user: str | None = None) -> None:
        """An admin applies the photo-quality threshold the agreement report suggested
        for this clinic's camera (None withdraws it: the gate card's threshold again).
        Screening reads it (``screening.site_gate``); audited with the one before."""
        from ..roles import Action

        self.require(Action.OPERATING_POINT)
        if threshold is not None and not 0.0 < threshold < 1.0:
            raise ValueError(f"a photo-quality threshold lies strictly between 0 and 1, not {threshold}")
        before = self.applied_quality_threshold()
        with self._tx() as db:
            self._set_meta(QUALITY_THRESHOLD_KEY, "" if threshold is None else repr(float(threshold)))
            self._audit(db, user, "photo-quality threshold applied" if threshold is not None
                        else "photo-quality threshold withdrawn", "gate:reject", {"threshold": threshold, "before": before})

    def applied_quality_threshold(self) -> float | None:
        """The photo-quality threshold an admin applied for this clinic; None: the gate card's."""
        value = self._meta(QUALITY_THRESHOLD_KEY)
        return float(value) if value else None

    def photographed_eyes(self, encounter_id: str) -> set[Eye]:
        """The sides of the encounter that have a screened photograph."""
        rows = self._query("SELECT DISTINCT ei.eye FROM encounter_images ei JOIN results r USING (encounter_image_id) "
                           "WHERE ei.encounter_id = ?", (encounter_id,))
        return {Eye(r[0]) for r in rows} - {Eye.UNKNOWN}

    def grades(self, encounter_id: str | None = None) -> list[HumanGrade]:
        """Human grades, oldest first (of one encounter, or all)."""
        where, params = ("WHERE encounter_id = ?", (encounter_id,)) if encounter_id else ("", ())
        return [_grade(r) for r in self._query(f"SELECT * FROM human_grades {where} ORDER BY grade_id", params)]

    def encounter_grading(self, encounter_id: str) -> EncounterGrading | None:
        """Where the encounter stands with its human grades; None before any."""
        rows = self._query("SELECT * FROM encounter_grading WHERE encounter_id = ?", (encounter_id,))
        if not rows:
            return None
        r = rows[0]
        return EncounterGrading(r["encounter_id"], r["state"], Queue(r["ai_queue"]), Queue(r["graded_queue"]),
                                Queue(r["final_queue"]) if r["final_queue"] else None)

    # ------------------------------------------------------------------ quality-assurance sample

    def draw_qa_sample(self, rate: float, seed: int | None = None, user: str | None = None) -> QaDraw | None:
        """Draw a quality-assurance sample of the annual encounters no earlier draw
        considered (each with probability ``rate``, from a recorded ``seed``, in visit order): every
        encounter considered is recorded, drawn or not, so the draw can be repeated
        and audited, and a drawn eye weighs 1/rate in the clinic's figures. None (and
        nothing recorded) when no annual encounter is left to consider."""
        if not 0.0 < rate <= 1.0:
            raise ValueError(f"the quality-assurance rate must lie in (0, 1], not {rate}")
        seed = random.SystemRandom().randrange(2**31) if seed is None else int(seed)
        with self._tx() as db:
            candidates = [r[0] for r in db.execute(
                "SELECT q.encounter_id FROM queue_state q JOIN encounters e USING (encounter_id) "
                "WHERE q.queue = ? AND NOT EXISTS "
                "(SELECT 1 FROM qa_sample s WHERE s.encounter_id = q.encounter_id) AND NOT EXISTS "
                "(SELECT 1 FROM encounter_grading g WHERE g.encounter_id = q.encounter_id) "
                "ORDER BY e.started_at, q.encounter_id", (Queue.ANNUAL.value,)).fetchall()]
            if not candidates:
                return None
            rng = random.Random(seed)
            drawn = [e for e in candidates if rng.random() < rate]
            who = self._who(user)   # the signed-in person, as the audit entry names
            row = db.execute("INSERT INTO qa_draws (drawn_at, drawn_by, rate, seed, considered, drawn) "
                             "VALUES (?, ?, ?, ?, ?, ?) RETURNING draw_id",
                             (self._now(), who, rate, seed, len(candidates), len(drawn))).fetchone()
            draw_id = int(row[0])  # type: ignore[index]  # RETURNING always gives the row
            chosen = set(drawn)
            for encounter_id in candidates:
                db.execute("INSERT INTO qa_sample (encounter_id, draw_id, drawn) VALUES (?, ?, ?)",
                           (encounter_id, draw_id, int(encounter_id in chosen)))
            self._audit(db, who, "quality-assurance sample drawn", f"qa_draw:{draw_id}",
                        {"rate": rate, "seed": seed, "considered": len(candidates), "drawn": drawn})
        return self.qa_draws()[-1]

    def qa_draws(self) -> list[QaDraw]:
        """Every quality-assurance draw, oldest first, with the encounters it drew."""
        drawn: dict[int, list[str]] = {}
        for r in self._query("SELECT draw_id, encounter_id FROM qa_sample WHERE drawn = 1 ORDER BY encounter_id"):
            drawn.setdefault(int(r[0]), []).append(r[1])
        return [QaDraw(int(r["draw_id"]), _datetime(r["drawn_at"]), r["drawn_by"], float(r["rate"]),  # type: ignore[arg-type]  # drawn_at is NOT NULL
                       int(r["seed"]), int(r["considered"]), tuple(drawn.get(int(r["draw_id"]), ())))
                for r in self._query("SELECT * FROM qa_draws ORDER BY draw_id")]

    def p_graded(self, encounter_ids: Iterable[str]) -> dict[str, float]:
        """P(graded) of each encounter, for the 1/P(graded) weights: the rate of the
        quality-assurance draw that drew it, else 1 (referrals and reviews are all
        graded; a reading-centre import of every eye is a census)."""
        ids = list(encounter_ids)
        out = {e: 1.0 for e in ids}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            for r in self._query("SELECT s.encounter_id, d.rate FROM qa_sample s JOIN qa_draws d USING (draw_id) "
                                 f"WHERE s.drawn = 1 AND s.encounter_id IN ({', '.join('?' * len(chunk))})", chunk):
                out[r[0]] = float(r[1])
        return out

    def to_grade(self) -> list[str]:
        """Encounters that wait for a human grade, most urgent first, then oldest: every
        referral and review not yet graded, every annual encounter drawn for quality
        assurance and not yet graded, every encounter waiting for arbitration, and every
        encounter staff flagged for a grader since its last grade."""
        rows = self._query(
            "SELECT e.encounter_id, COALESCE(q.override_queue, q.queue) AS queue, e.started_at FROM encounters e "
            "JOIN queue_state q USING (encounter_id) LEFT JOIN encounter_grading g USING (encounter_id) "
            "WHERE (g.encounter_id IS NULL AND (COALESCE(q.override_queue, q.queue) != ? OR EXISTS "
            "(SELECT 1 FROM qa_sample s WHERE s.encounter_id = e.encounter_id AND s.drawn = 1))) "
            "OR g.state = 'arbitration_pending' OR EXISTS "
            "(SELECT 1 FROM grading_flags f WHERE f.encounter_id = e.encounter_id AND f.cleared_at IS NULL)",
            (Queue.ANNUAL.value,))
        return [r[0] for r in sorted(rows, key=lambda r: (Queue(r[1]).priority, r[2], r[0]))]

    def patient_encounters(self, patient_id: str) -> list[tuple[str, dt.datetime]]:
        """The patient's screened encounters (with a result), oldest first, and when each started (local)."""
        rows = self._query("SELECT e.encounter_id, e.started_at FROM encounters e WHERE e.patient_id = ? AND EXISTS "
                           "(SELECT 1 FROM results r WHERE r.encounter_id = e.encounter_id) "
                           "ORDER BY e.started_at, e.encounter_id", (patient_id,))
        return [(r[0], _datetime(r[1])) for r in rows]  # type: ignore[misc]  # the column is NOT NULL
