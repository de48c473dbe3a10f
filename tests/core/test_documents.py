"""Every screened patient leaves with a document (issue 12, items 8 and 9): the
referral slip, the review slip or the result letter, named by patient and
encounter so that no two patients' documents can overwrite or remove each other."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from eyescreen_desktop.core import reports
from eyescreen_desktop.core.protocol import OTHER_EYE_NOT_PHOTOGRAPHED
from eyescreen_desktop.core.records import Eye, MissingEye, Patient, Queue
from eyescreen_desktop.core.report_names import ReportNames, remove_stale, report_stem, safe_name
from tests.core.report_fixtures import HEALTHY, PROTOCOL, encounter, graded, mixed_batch, not_graded, pdf_text


def annual_one_eye_explained():
    s = encounter(Patient("ANN-7", "Zoë Ñúñez", dt.date(1956, 3, 21)), (graded("P001_R.jpg", Eye.RIGHT, HEALTHY),))
    return dataclasses.replace(s, missing_eyes=(MissingEye(Eye.LEFT, "prosthesis"),))


def review_other_eye_missing():
    s = encounter(Patient("REV-7", "Amira Haddad"), (graded("P001_R.jpg", Eye.RIGHT, HEALTHY),))
    return dataclasses.replace(s, queue=Queue.REVIEW, complete=False, queue_note=OTHER_EYE_NOT_PHOTOGRAPHED,
                               due_date=s.started_at.date(), action=PROTOCOL.action(Queue.REVIEW))


def test_each_queue_gets_its_own_document(tmp_path):
    encounters, _ = mixed_batch()
    kinds = {s.patient.patient_id: reports.patient_document(s).kind for s in encounters}
    assert kinds == {"ANN-1": "letter", "ROU-1": "referral", "URG-2": "referral", "REV-1": "review",
                     "URG-1": "referral"}
    written = [reports.write_patient_document(s, tmp_path) for s in encounters]
    assert sorted(p.parent.name for p in written) == ["letters", "referrals", "referrals", "referrals", "review"]


def test_the_result_letter_says_no_referral_rescreen_date_not_a_diagnosis_and_what_to_do(tmp_path):
    path = reports.write_patient_document(annual_one_eye_explained(), tmp_path)
    text = pdf_text(path)
    assert path.parent.name == "letters" and "Zoë Ñúñez" in text
    assert "NO REFERRAL NEEDED" in text and "NEXT SCREENING BY 12 Mar 2026" in text
    assert "not a diagnosis" in text and "If your eyesight changes" in text and "sudden loss of vision" in text
    assert "Left eye: not photographed (prosthetic eye)" in text


def test_the_review_slip_says_what_to_do_for_each_eye(tmp_path):
    path = reports.write_patient_document(review_other_eye_missing(), tmp_path)
    text = pdf_text(path)
    assert path.parent.name == "review" and "REVIEW NEEDED" in text
    assert "Other eye not photographed" in text
    assert "Left eye: not photographed. Photograph it, or record why it cannot be" in text
    blurred = encounter(Patient("REV-8"), (not_graded("P007_R.jpg", Eye.RIGHT), graded("P007_L.jpg", Eye.LEFT,
                                                                                         HEALTHY)))
    assert reports.review_reasons(blurred)[0].startswith("Right eye could not be graded: out of focus")


@pytest.mark.parametrize("pid", ["CON", "prn", "Aux.txt", "nul", "COM1", "lpt9", "con.pdf"])
def test_windows_reserved_names_are_never_a_file_name(pid):
    name = safe_name(pid)
    assert name.split(".")[0].upper() not in {"CON", "PRN", "AUX", "NUL", "COM1", "LPT9"}
    assert report_stem(pid, "0123456789abcdef").startswith("_")


def test_names_are_unique_case_insensitively_and_clean_up_safely():
    assert safe_name('a/b\\c:d*e?"f<g>h|i') == "a_b_c_d_e_f_g_h_i" and safe_name("..") == "patient"
    assert report_stem("p1", "AAAA1111bbbb2222") != report_stem("P1", "cccc3333dddd4444")
    names = ReportNames()
    first = names.stem("P1", "abcdef123456XYZ")
    second = names.stem("p1", "ABCDEF123456xyz")       # another encounter, same name once case-folded
    assert first.casefold() != second.casefold() and names.stem("P1", "abcdef123456XYZ") == first


def test_ids_differing_by_case_keep_both_documents_and_removal_spares_the_other(tmp_path):
    upper = dataclasses.replace(annual_one_eye_explained(), encounter_id="aaaa1111-upper")
    lower = dataclasses.replace(review_other_eye_missing(), encounter_id="bbbb2222-lower",
                                patient=Patient("ann-7"))
    a = reports.write_patient_document(upper, tmp_path)
    b = reports.write_patient_document(dataclasses.replace(lower, queue=Queue.ANNUAL, queue_note=""), tmp_path)
    assert a != b and a.is_file() and b.is_file()
    # the lower-case patient moves to review: only THEIR letter goes, the other patient's stays
    c = reports.write_patient_document(lower, tmp_path)
    assert c.parent.name == "review" and not b.exists() and a.is_file()
    assert remove_stale(tmp_path / "letters", None, "ANN-7", "zzzz9999-other") == [] and a.is_file()
