"""Issue 24 item 1: an eye that could not be photographed is never "no referral".

Only "no eye" (prosthesis, eye removed) and "already under an eye clinic's care"
let the other eye decide alone; "could not be photographed", "declined" and
"other" keep the visit at least in review, with an examination in person, in
the rule, the store (SQLite and PostgreSQL), a batch's encounter, the review
slip, the result letter and the FHIR bundle. Real photographs, real databases,
real PDFs read back."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from eyescreen_desktop.core import reports
from eyescreen_desktop.core.batch import queue_batch_encounters
from eyescreen_desktop.core.paths import DataPaths
from eyescreen_desktop.core.protocol import encounter_decision
from eyescreen_desktop.core.records import MISSING_EYE_REASONS, Eye, MissingEye, Patient, Queue
from eyescreen_desktop.core.reports.csv_export import queue_row
from eyescreen_desktop.core.reports.fhir import fhir_bundle
from eyescreen_desktop.core.store import ClinicStore
from tests.core.report_fixtures import HEALTHY, MODEL, OP, SEVERE, graded, pdf_text
from tests.core.test_store_safety import real

DAY = dt.datetime(2025, 3, 12, 9, 30)
SETTLING = ("prosthesis", "enucleated", "under_eye_clinic")
UNEXAMINED = ("not_photographable", "declined", "other")


def test_every_reason_is_either_settling_or_unexamined():
    assert set(SETTLING) | set(UNEXAMINED) == set(MISSING_EYE_REASONS)


@pytest.mark.parametrize("reason", SETTLING)
def test_no_eye_or_eye_clinic_care_lets_the_other_eye_decide(reason):
    d = encounter_decision([graded("P001_L.jpg", Eye.LEFT, HEALTHY)], [MissingEye(Eye.RIGHT, reason)])
    assert d.queue is Queue.ANNUAL and d.complete and d.note == ""


@pytest.mark.parametrize("reason", UNEXAMINED)
def test_an_unexamined_eye_makes_the_visit_review_with_an_exam_in_person(reason):
    d = encounter_decision([graded("P001_L.jpg", Eye.LEFT, HEALTHY)], [MissingEye(Eye.RIGHT, reason, "x")])
    assert d.queue is Queue.REVIEW and d.complete
    assert d.note == "right eye not photographed: examine it in person (slit-lamp or dilated fundus examination)"


def test_a_referable_other_eye_still_refers_and_urgent_stays_urgent():
    severe = graded("P031_L.jpg", Eye.LEFT, SEVERE)
    d = encounter_decision([severe], [MissingEye(Eye.RIGHT, "not_photographable")])
    assert d.queue is Queue.URGENT and "examine it in person" in d.note


def test_a_photograph_taken_after_all_settles_the_eye():
    eyes = [graded("P001_L.jpg", Eye.LEFT, HEALTHY), graded("P001_R.jpg", Eye.RIGHT, HEALTHY)]
    d = encounter_decision(eyes, [MissingEye(Eye.RIGHT, "declined")])
    assert d.queue is Queue.ANNUAL and d.note == ""


@pytest.fixture
def store(tmp_path, database_url):
    with ClinicStore.open(DataPaths(tmp_path / "data"), database_url) as s:
        yield s


def _one_eyed(store: ClinicStore, pid: str, source: str = "desk", key: str | None = None,
              probs: tuple[float, ...] = HEALTHY) -> str:
    store.upsert_patient(Patient(pid, "Amira Haddad", dt.date(1958, 3, 14)))
    enc = store.start_encounter(pid, DAY, source=source, batch_key=key)
    store.save_result(enc, real("P001_L.jpg", Eye.LEFT, probs), MODEL, "icdr-ada", OP, user="nurse")
    return enc


def test_the_store_window_desk_and_documents_follow_the_rule(store, tmp_path):
    enc = _one_eyed(store, "UX1")
    queue = store.record_missing_eye(enc, Eye.RIGHT, "not_photographable", user="nurse")
    s = store.encounter_summary(enc)
    assert queue is Queue.REVIEW and s.queue is Queue.REVIEW and s.complete
    assert store.encounters(queue=Queue.ANNUAL) == []
    assert "slit-lamp or dilated" in s.queue_note

    path = reports.write_patient_document(s, tmp_path / "out")
    text = " ".join(pdf_text(path).split())
    assert path.parent.name == "review"
    assert "no diabetic eye disease" not in text and "NO REFERRAL" not in text
    assert ("Right eye not photographed: eye could not be photographed (e.g. small pupil, cataract). "
            "Examine it in person: slit-lamp or dilated fundus examination.") in text

    bundle = fhir_bundle(s)
    report = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DiagnosticReport")
    assert report["conclusionCode"][0]["coding"][0]["code"] == "review"
    assert "examine it in person" in report["conclusion"] and "right eye: not photographed" in report["conclusion"]

    row = queue_row(s)                                                          # eyescreen report --format csv
    assert row["queue"] == "review" and row["right_finding"].startswith("not photographed: eye could not be")

    store.record_missing_eye(enc, Eye.RIGHT, "enucleated", user="nurse")       # no eye after all: annual
    assert store.encounter_summary(enc).queue is Queue.ANNUAL


def test_a_batch_encounter_is_requeued_by_the_same_rule(store):
    enc = _one_eyed(store, "UX2", source="batch", key="batch-ux")
    store.record_missing_eye(enc, Eye.RIGHT, "declined", user="nurse")
    store.record_missing_eye(enc, Eye.RIGHT, "under_eye_clinic", user="nurse")
    assert store.encounter_summary(enc).queue is Queue.ANNUAL
    store.record_missing_eye(enc, Eye.RIGHT, "other", note="eye patch", user="nurse")
    queue_batch_encounters(store, [enc])                       # what a finished batch / camera folder runs
    assert store.encounter_summary(enc).queue is Queue.REVIEW


def test_a_referable_other_eye_still_refers_in_the_store(store):
    enc = _one_eyed(store, "UX3", probs=SEVERE)
    store.record_missing_eye(enc, Eye.RIGHT, "declined", user="nurse")
    s = store.encounter_summary(enc)
    assert s.queue is Queue.URGENT and "examine it in person" in s.queue_note
    assert reports.patient_document(s).kind == "referral"


def test_the_letter_never_says_no_disease_for_an_unexamined_eye(tmp_path):
    """A clinician may still move such a visit to annual: the letter then asks for the exam."""
    s = reports_summary()
    path = reports.write_patient_document(s, tmp_path)
    text = " ".join(pdf_text(path).split())
    assert path.parent.name == "letters" and "no diabetic eye disease" not in text
    assert "Your right eye could not be screened with a photograph: it needs an eye examination in person" in text


def reports_summary():
    from tests.core.report_fixtures import encounter

    s = encounter(Patient("ANN-8", "Amira Haddad"), (graded("P001_L.jpg", Eye.LEFT, HEALTHY),))
    return dataclasses.replace(s, missing_eyes=(MissingEye(Eye.RIGHT, "not_photographable"),),
                               override_queue=Queue.ANNUAL, override_reason="seen at the slit lamp today")


def test_the_batch_summary_gives_each_review_patient_the_reason_in_words(tmp_path):
    """Issue 24 item 11: never just "see the encounter"."""
    from eyescreen_desktop.core.protocol import OTHER_EYE_NOT_PHOTOGRAPHED, get_protocol
    from tests.core.report_fixtures import encounter

    review = get_protocol("icdr-ada").action(Queue.REVIEW)
    one_eye = dataclasses.replace(
        encounter(Patient("REV-1", "Amira Haddad"), (graded("P001_R.jpg", Eye.RIGHT, HEALTHY),)),
        queue=Queue.REVIEW, complete=False, queue_note=OTHER_EYE_NOT_PHOTOGRAPHED, action=review)
    unexamined = dataclasses.replace(
        encounter(Patient("REV-2", "Li Wei"), (graded("P001_L.jpg", Eye.LEFT, HEALTHY),)),
        queue=Queue.REVIEW, missing_eyes=(MissingEye(Eye.RIGHT, "declined"),), action=review,
        queue_note="right eye not photographed: examine it in person (slit-lamp or dilated fundus examination)")
    text = " ".join(pdf_text(reports.write_batch_summary([one_eye, unexamined], [], tmp_path / "s.pdf")).split())
    assert "see the encounter" not in text
    assert "Left eye: not photographed. Photograph it, or record why it cannot be" in text
    assert "Right eye not photographed: patient declined the photograph. Examine it in person" in text
