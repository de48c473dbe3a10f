"""Issue 22: the patient's document regenerated after a grade carries the "graded
by" line, and the earlier document is kept as superseded (same bytes, out of the
folders staff print from), never silently replaced; the store audits both. An
urgent AI referral goes out at once and a pending grade does not hold it back."""

from __future__ import annotations

import datetime as dt

import pytest
from pypdf import PdfReader

from eyescreen_desktop.core import reports
from eyescreen_desktop.core.grading import HumanGrade
from eyescreen_desktop.core.records import Eye, Queue
from eyescreen_desktop.core.regrading import regenerate_document
from eyescreen_desktop.core.store import ClinicStore, FixedClock
from tests.core.grading_fixtures import screened

NOW = dt.datetime(2026, 5, 6, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def store(tmp_path, database_url):
    with ClinicStore(database_url, image_store=tmp_path / "images", clock=FixedClock(NOW)) as s:
        yield s


def text(path) -> str:
    return " ".join(p.extract_text() for p in PdfReader(path).pages).replace("\n", " ")


def both(encounter: str, right: int | None, left: int | None, grader: str = "Dr Grey",
         source: str = "desk") -> list[HumanGrade]:
    return [HumanGrade(encounter, Eye.RIGHT, grader, right, source=source),
            HumanGrade(encounter, Eye.LEFT, grader, left, source=source)]


def summary(store: ClinicStore, encounter: str):
    return reports.resolve_images(store.encounter_summary(encounter), store.image_file)


def test_a_graded_referral_keeps_the_earlier_letter_as_superseded(store, tmp_path):
    out = tmp_path / "out"
    enc = screened(store, "P001", 0, 0)                              # the AI: annual, a result letter
    letter = reports.write_patient_document(summary(store, enc), out)
    issued = letter.read_bytes()
    assert letter.parent.name == "letters"
    store.record_grades(both(enc, 3, 0, grader="Centre", source="import"), user="clerk")
    slip = reports.write_patient_document(summary(store, enc), out)
    assert slip.parent.name == "referrals" and not letter.exists()   # out of the letters folder ...
    kept = out / "superseded" / "letters" / f"{letter.stem}.superseded-1.pdf"
    assert kept.read_bytes() == issued                                # ... but kept, byte for byte
    words = text(slip)
    assert "Graded by Centre." in words and "replaces an earlier one" in words
    assert "superseded/letters/" in words
    # written once more (the same outcome): the slip before is kept too, never overwritten
    again = reports.write_patient_document(summary(store, enc), out)
    assert again == slip and (out / "superseded" / "referrals" / f"{slip.stem}.superseded-1.pdf").is_file()
    assert kept.read_bytes() == issued


def test_regenerating_after_a_grade_is_audited_with_the_kept_file(store, tmp_path):
    out = tmp_path / "documents"
    enc = screened(store, "P003", 2, 0)                               # the AI refers (routine)
    first = regenerate_document(store, enc, out, user="nurse")
    assert first.superseded == () and "Graded by" not in text(first.path)
    store.record_grades(both(enc, 0, 0), user="Dr Grey")             # disagrees: arbitration pending
    pending = regenerate_document(store, enc, out, user="Dr Grey")
    assert pending.path == first.path and len(pending.superseded) == 1
    words = text(pending.path)
    assert "second grader will arbitrate" in words and "stands meanwhile" in words   # still a referral slip
    store.record_grades(both(enc, 1, 0, grader="Dr Brown"), user="Dr Brown")          # arbitrated: annual
    final = regenerate_document(store, enc, out, user="Dr Brown")
    assert final.path.parent.name == "letters" and not pending.path.exists()
    assert "Graded by Dr Brown (arbitration)" in text(final.path)
    assert sorted(p.name for p in (out / "superseded" / "referrals").iterdir()) == [
        f"{first.path.stem}.superseded-1.pdf", f"{first.path.stem}.superseded-2.pdf"]
    entries = store.audit(f"encounter:{enc}")
    superseded = [a for a in entries if a.action == "document superseded"]
    assert [a.details["replaced_by"] for a in superseded] == [str(pending.path), str(final.path)]
    assert [a.user for a in superseded] == ["Dr Grey", "Dr Brown"]
    assert sum(a.action == "document regenerated" for a in entries) == 3


def test_an_urgent_ai_referral_goes_out_while_a_grade_is_pending_and_a_grade_can_cancel_it(store, tmp_path):
    out = tmp_path / "documents"
    enc = screened(store, "P004", 3, 0)                               # the AI: urgent
    assert enc in store.to_grade()
    slip = regenerate_document(store, enc, out, user="nurse")        # issued before anyone grades
    assert store.encounter_summary(enc).queue is Queue.URGENT and "Graded by" not in text(slip.path)
    state = store.record_grades(both(enc, 0, 0), user="Dr Grey", single_grader_stands=True)[enc]
    assert state.state == "arbitration_pending"                       # one grader never downgrades urgent alone
    assert store.encounter_summary(enc).queue is Queue.URGENT
    pending = regenerate_document(store, enc, out, user="Dr Grey")
    assert pending.path.parent.name == "referrals" and "second grader will arbitrate" in text(pending.path)
    store.record_grades(both(enc, 0, 0, grader="Dr Brown"), user="Dr Brown")
    assert store.encounter_summary(enc).queue is Queue.ANNUAL
    letter = regenerate_document(store, enc, out, user="Dr Brown")   # the cancelling letter
    assert letter.path.parent.name == "letters" and "replaces an earlier one" in text(letter.path)
    assert len(list((out / "superseded" / "referrals").iterdir())) == 2
