"""Human grades in the clinic database (SQLite and PostgreSQL): the graded outcome
moves the queue and due date, disagreement goes to arbitration by another grader
(the more urgent outcome standing meanwhile), nothing is silently replaced, and the
quality-assurance draw is recorded so it can be audited and weighed."""

from __future__ import annotations

import datetime as dt

import pytest

from eyescreen_desktop.core.grading import HumanGrade
from eyescreen_desktop.core.records import Eye, Queue
from eyescreen_desktop.core.store import ClinicStore, FixedClock, GradeConflict
from tests.core.grading_fixtures import VISIT, screened

NOW = dt.datetime(2026, 5, 6, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def store(tmp_path, database_url):
    with ClinicStore(database_url, image_store=tmp_path / "images", clock=FixedClock(NOW)) as s:
        yield s


def grade(encounter: str, eye: Eye, icdr: int | None, grader: str = "Dr Grey", source: str = "desk",
          maculopathy: str = "not_assessed") -> HumanGrade:
    return HumanGrade(encounter, eye, grader, icdr, maculopathy, source=source)


def both(encounter: str, right: int | None, left: int | None, **kw) -> list[HumanGrade]:
    return [grade(encounter, Eye.RIGHT, right, **kw), grade(encounter, Eye.LEFT, left, **kw)]


def test_an_imported_grade_is_final_and_moves_queue_and_due_date(store):
    enc = screened(store, "P001", 0, 0)
    assert store.encounter_summary(enc).queue is Queue.ANNUAL
    state = store.record_grades(both(enc, 3, 0, source="import"), user="clerk")[enc]
    assert (state.state, state.ai_queue, state.final_queue) == ("final", Queue.ANNUAL, Queue.URGENT)
    summary = store.encounter_summary(enc)
    assert summary.queue is Queue.URGENT
    assert summary.due_date == VISIT.date() + dt.timedelta(days=14)
    graded = store.grades(enc)
    assert [(g.eye, g.icdr_grade, g.recorded_by, g.graded_at.astimezone(dt.UTC)) for g in graded] == [
        (Eye.RIGHT, 3, "clerk", NOW), (Eye.LEFT, 0, "clerk", NOW)]
    actions = [a.action for a in store.audit(f"encounter:{enc}")]
    assert actions.count("eye graded") == 2 and "grading final" in actions


def test_a_desk_disagreement_waits_for_arbitration_with_the_more_urgent_queue(store):
    enc = screened(store, "P003", 2, 0)          # the AI refers (routine)
    state = store.record_grades(both(enc, 0, 0), user="Dr Grey")[enc]
    assert (state.state, state.graded_queue, state.final_queue) == ("arbitration_pending", Queue.ANNUAL, None)
    assert store.encounter_summary(enc).queue is Queue.ROUTINE      # the more urgent stands meanwhile
    assert enc in store.to_grade()
    with pytest.raises(ValueError, match="different grader must arbitrate"):
        store.record_grades([grade(enc, Eye.RIGHT, 1)], user="Dr Grey")
    state = store.record_grades(both(enc, 1, 0, grader="Dr Brown"), user="Dr Brown")[enc]
    assert (state.state, state.final_queue) == ("arbitrated", Queue.ANNUAL)
    summary = store.encounter_summary(enc)
    assert (summary.queue, summary.due_date) == (Queue.ANNUAL, VISIT.date() + dt.timedelta(days=365))
    assert {g.grader: g.role for g in store.grades(enc)} == {"Dr Grey": "first", "Dr Brown": "arbitration"}
    assert enc not in store.to_grade()


def test_agreement_at_the_decision_level_is_final_at_once(store):
    enc = screened(store, "P004", 2, 0)
    state = store.record_grades(both(enc, 2, 1), user="Dr Grey")[enc]
    assert (state.state, state.final_queue) == ("final", Queue.ROUTINE)


def test_a_single_grader_never_downgrades_an_ai_urgent_referral_alone(store):
    urgent = screened(store, "P006", 4, 0)
    routine = screened(store, "P007", 2, 0)
    states = store.record_grades(both(urgent, 0, 0) + both(routine, 0, 0), single_grader_stands=True)
    assert states[urgent].state == "arbitration_pending"
    assert store.encounter_summary(urgent).queue is Queue.URGENT
    assert (states[routine].state, store.encounter_summary(routine).queue) == ("final", Queue.ANNUAL)


def test_a_graded_normal_eye_never_makes_an_incomplete_visit_annual(store):
    enc = screened(store, "P008", 0, eyes=(Eye.RIGHT,))
    store.record_grades([grade(enc, Eye.RIGHT, 0, source="import")])
    assert store.encounter_summary(enc).queue is Queue.REVIEW


def test_the_same_reading_again_changes_nothing_and_a_different_one_is_refused_whole(store):
    enc = screened(store, "P009", 0, 0)
    other = screened(store, "P010", 0, 0)
    store.record_grades(both(enc, 1, 0, source="import"))
    audit_rows = len(store.audit())
    assert store.record_grades(both(enc, 1, 0, source="import")) == {}
    assert len(store.audit()) == audit_rows
    with pytest.raises(GradeConflict, match="differently"):
        store.record_grades(both(other, 3, 3, source="import") + [grade(enc, Eye.RIGHT, 2, source="import")])
    assert store.grades(other) == [] and store.encounter_summary(other).queue is Queue.ANNUAL
    assert len(store.audit()) == audit_rows


def test_a_grade_needs_a_photograph_of_that_eye(store):
    enc = screened(store, "P011", 0, eyes=(Eye.RIGHT,))
    with pytest.raises(ValueError, match="no photograph of the left eye"):
        store.record_grades([grade(enc, Eye.LEFT, 0)])


def test_the_quality_assurance_draw_is_recorded_repeatable_and_weighed(store):
    annual = [screened(store, p, 0, 0) for p in ("P014", "P015", "P016", "P017", "P018", "P019", "P020", "P021")]
    referral = screened(store, "P023", 3, 0)
    draw = store.draw_qa_sample(0.5, seed=7, user="lead")
    assert (draw.rate, draw.seed, draw.considered, draw.drawn_by) == (0.5, 7, len(annual), "lead")
    assert 0 < len(draw.drawn) < len(annual)
    import random
    rng = random.Random(7)
    assert list(draw.drawn) == [e for e in sorted(annual) if rng.random() < 0.5]
    audit = store.audit(f"qa_draw:{draw.draw_id}")[0]
    assert audit.details["seed"] == 7 and sorted(audit.details["drawn"]) == sorted(draw.drawn)
    assert store.draw_qa_sample(0.5, seed=7) is None                # each encounter is considered once
    assert len(store.qa_draws()) == 1
    waiting = store.to_grade()
    assert waiting[0] == referral and set(waiting[1:]) == set(draw.drawn)
    weights = store.p_graded([*draw.drawn, referral])
    assert weights == {**{e: 0.5 for e in draw.drawn}, referral: 1.0}


def test_the_patients_document_says_who_graded_and_that_arbitration_is_pending(store, tmp_path):
    from pypdf import PdfReader

    from eyescreen_desktop.core import reports

    def document_text(encounter: str) -> str:
        summary = reports.resolve_images(store.encounter_summary(encounter), store.image_file)
        path = reports.write_patient_document(summary, tmp_path / encounter)
        return " ".join(p.extract_text() for p in PdfReader(path).pages).replace("\n", " ")

    pending = screened(store, "P003", 2, 0)
    annual = screened(store, "P001", 0, 0)
    assert "Graded by" not in document_text(pending)
    store.record_grades(both(pending, 0, 0), user="Dr Grey")
    store.record_grades(both(annual, 1, 0, grader="Centre", source="import"))
    text = document_text(pending)
    assert "Graded by Dr Grey" in text and "second grader will arbitrate" in text and "stands meanwhile" in text
    assert "Graded by Centre." in document_text(annual)                 # the result letter
    store.record_grades(both(pending, 2, 0, grader="Dr Brown"), user="Dr Brown")
    text = document_text(pending)
    assert "Graded by Dr Brown (arbitration)" in text and "arbitrate." not in text


def test_a_grader_may_only_raise_the_protocols_outcome_with_a_reason(store):
    from eyescreen_desktop.core.grading import OutcomeRaise

    enc = screened(store, "P014", 0, 0)                                   # the AI: annual
    lower = screened(store, "P015", 2, 0)                                 # the AI: routine
    with pytest.raises(ValueError, match="needs a reason"):
        OutcomeRaise(enc, "Dr Grey", Queue.ROUTINE, "  ")
    # grades 0/0 give annual by the protocol: a 'raise' to annual, or a lowering, is refused whole
    with pytest.raises(ValueError, match="may only raise"):
        store.record_grades(both(lower, 2, 0), user="Dr Grey",
                            raises=[OutcomeRaise(lower, "Dr Grey", Queue.ANNUAL, "looks fine to me")])
    with pytest.raises(ValueError, match="may only raise"):                             # routine is no raise
        store.record_grades(both(lower, 2, 0), user="Dr Grey",
                            raises=[OutcomeRaise(lower, "Dr Grey", Queue.ROUTINE, "to be sure")])
    assert store.grades(lower) == [] and store.encounter_grading(lower) is None       # nothing recorded
    assert store.encounter_summary(lower).queue is Queue.ROUTINE
    with pytest.raises(ValueError, match="only its grader"):
        store.record_grades(both(enc, 0, 0, source="import", grader="Centre"),
                            raises=[OutcomeRaise(enc, "Dr Grey", Queue.ROUTINE, "drusen")])
    # raised with a reason: the outcome moves up (queue and due date), audited with the reason
    reason = "large drusen at the right macula"
    state = store.record_grades(both(enc, 0, 0), user="Dr Grey",
                                raises=[OutcomeRaise(enc, "Dr Grey", Queue.ROUTINE, reason)])[enc]
    assert (state.ai_queue, state.graded_queue) == (Queue.ANNUAL, Queue.ROUTINE)
    assert store.encounter_summary(enc).queue is Queue.ROUTINE
    raised = [a for a in store.audit(f"encounter:{enc}") if a.action == "outcome raised"]
    assert [(a.user, a.details["to"], a.details["reason"]) for a in raised] == [("Dr Grey", "routine", reason)]
    assert store.raised_outcomes(enc) == [OutcomeRaise(enc, "Dr Grey", Queue.ROUTINE, reason)]


def test_an_encounter_staff_flagged_is_on_the_worklist_until_graded_and_only_staff_may_flag(store):
    from eyescreen_desktop.core.store import RoleRefused

    annual = screened(store, "P016", 0, 0)                                 # annual: not listed by itself
    assert annual not in store.to_grade()
    store.add_person("ada", "admin-password-1", ["admin"])
    store.sign_in("ada", "admin-password-1")
    store.add_person("nina", "nurse-password-1", ["nurse"])
    store.add_person("gus", "grader-password-1", ["grader"])
    store.sign_in("gus", "grader-password-1")
    with pytest.raises(RoleRefused, match="nurse"):
        store.flag_for_grader(annual, "haemorrhage seen at the desk")
    store.sign_in("nina", "nurse-password-1")
    assert store.flag_for_grader(annual, "haemorrhage seen at the desk") is True
    assert store.flag_for_grader(annual, "again") is False                  # already waiting: once
    assert annual in store.to_grade()
    assert store.flagged_for_grader() == {annual: "haemorrhage seen at the desk"}
    audit = [a for a in store.audit(f"encounter:{annual}") if a.action == "flagged for a grader"]
    assert [(a.user, a.details["reason"]) for a in audit] == [("nina", "haemorrhage seen at the desk")]
    store.sign_in("gus", "grader-password-1")
    store.record_grades(both(annual, 0, 0, grader="gus"))
    assert annual not in store.to_grade() and store.flagged_for_grader() == {}
