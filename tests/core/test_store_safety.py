"""A screening day made safe, in the clinic database (issue 12), on real SQLite
files with real photographs: both eyes or a recorded reason before annual, result
and queue in one transaction (a crash between them, a busy database, a kill and
a restart), the current photograph per eye, overrides, slips saved or missing,
photo copies outside the write lock, and accent-insensitive patient search."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from eyescreen_desktop.core import store as store_mod
from eyescreen_desktop.core.paths import DataPaths
from eyescreen_desktop.core.protocol import OTHER_EYE_NOT_PHOTOGRAPHED
from eyescreen_desktop.core.records import Eye, EyeResult, Patient, Queue
from eyescreen_desktop.core.store import ClinicStore
from eyescreen_desktop.core.store.results import ResultStore
from tests.core.report_fixtures import HEALTHY, MODEL, OP, SEVERE, graded, not_graded

DAY = dt.datetime(2025, 3, 12, 9, 30)


@pytest.fixture
def store(tmp_path, database_url):
    """The store on a SQLite file and on the test run's PostgreSQL server."""
    with ClinicStore.open(DataPaths(tmp_path / "data"), database_url) as s:
        yield s


def real(file: str, eye: Eye, probs: tuple[float, ...] = HEALTHY) -> EyeResult:
    """A graded real photograph with its true content hash."""
    result = graded(file, eye, probs)
    return _hashed(result)


def blurred(file: str, eye: Eye) -> EyeResult:
    return _hashed(not_graded(file, eye))


def _hashed(result: EyeResult) -> EyeResult:
    import dataclasses

    return dataclasses.replace(result, sha256=hashlib.sha256(Path(result.path).read_bytes()).hexdigest())


def visit(store: ClinicStore, pid: str, *eyes: EyeResult, name: str = "") -> str:
    store.upsert_patient(Patient(pid, name))
    enc = store.start_encounter(pid, DAY)
    for e in eyes:
        store.save_result(enc, e, MODEL, "icdr-ada", OP, user="nurse")
    return enc


def queue_rows(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as raw:
        return dict(raw.execute("SELECT encounter_id, queue FROM queue_state").fetchall())


# ---------------------------------------------------------------------- item 3: both eyes or a reason


def test_one_graded_eye_is_never_annual_until_the_other_is_graded_or_explained(store):
    enc = visit(store, "P1", real("P001_R.jpg", Eye.RIGHT))
    s = store.encounter_summary(enc)
    assert s.queue is Queue.REVIEW and not s.complete and s.queue_note == OTHER_EYE_NOT_PHOTOGRAPHED
    assert store.encounters(queue=Queue.ANNUAL) == []

    store.record_missing_eye(enc, Eye.LEFT, "prosthesis", user="dr k")
    s = store.encounter_summary(enc)
    assert s.queue is Queue.ANNUAL and s.complete and s.due_date == dt.date(2026, 3, 12)
    assert [(m.eye, m.reason) for m in s.missing_eyes] == [(Eye.LEFT, "prosthesis")]
    assert s.missing_eyes[0].words == "prosthetic eye"
    actions = [(a.action, a.user) for a in store.audit(f"encounter:{enc}")]
    assert ("missing eye recorded", "dr k") in actions and actions[-1] == ("encounter queued", "dr k")

    store.clear_missing_eye(enc, Eye.LEFT, user="dr k")      # photographed after all? back to review
    assert store.encounter_summary(enc).queue is Queue.REVIEW
    assert store.audit(f"encounter:{enc}")[-2].action == "missing eye cleared"


def test_a_referable_eye_still_refers_without_the_other_and_both_eyes_make_annual(store):
    urgent = visit(store, "P2", real("P031_R.jpg", Eye.RIGHT, SEVERE))
    assert store.encounter_summary(urgent).queue is Queue.URGENT   # incomplete, but never downgraded
    both = visit(store, "P3", real("P001_R.jpg", Eye.RIGHT), real("P001_L.jpg", Eye.LEFT))
    s = store.encounter_summary(both)
    assert s.queue is Queue.ANNUAL and s.complete and s.queue_note == ""


def test_missing_eye_reasons_are_checked(store):
    enc = visit(store, "P4", real("P001_R.jpg", Eye.RIGHT))
    with pytest.raises(ValueError, match="reason must be one of"):
        store.record_missing_eye(enc, Eye.LEFT, "lazy")
    with pytest.raises(ValueError, match="right or left"):
        store.record_missing_eye(enc, Eye.UNKNOWN, "declined")
    with pytest.raises(ValueError, match="write down"):
        store.record_missing_eye(enc, Eye.LEFT, "other")
    store.record_missing_eye(enc, Eye.LEFT, "other", note="eye patch after surgery")
    assert store.encounter_summary(enc).missing_eyes[0].words.endswith("eye patch after surgery")


def test_an_explicit_annual_cannot_put_an_incomplete_visit_in_annual(store):
    """The window's old path asked for annual by the newest photo per eye."""
    enc = visit(store, "P5", real("P001_R.jpg", Eye.RIGHT))
    store.finish_encounter(enc, Queue.ANNUAL, dt.date(2026, 3, 12))
    assert store.encounter_summary(enc).queue is Queue.REVIEW


def test_setting_the_side_of_a_photograph_is_audited_and_requeues(store):
    right = real("P001_R.jpg", Eye.RIGHT)
    unknown = real("P001_L.jpg", Eye.UNKNOWN)
    enc = visit(store, "P6", right, unknown)
    assert store.encounter_summary(enc).queue is Queue.REVIEW
    assert store.set_photo_eye(enc, unknown.sha256, Eye.LEFT, user="nurse") is Queue.ANNUAL
    assert store.audit(f"encounter:{enc}")[-2].details == {"sha256": unknown.sha256, "from": "?", "to": "L"}


# ---------------------------------------------------------------------- item 5: one transaction


def test_a_failure_between_result_and_queue_leaves_neither(store, monkeypatch):
    enc = visit(store, "P7")
    def busy(*args, **kwargs):
        raise sqlite3.OperationalError("database is locked")
    monkeypatch.setattr(ResultStore, "_write_queue", busy)
    with pytest.raises(sqlite3.OperationalError):
        store.save_result(enc, real("P031_R.jpg", Eye.RIGHT, SEVERE), MODEL, "icdr-ada", OP)
    monkeypatch.undo()
    assert store._query("SELECT COUNT(*) FROM results")[0][0] == 0   # no urgent result outside every queue
    store.save_result(enc, real("P031_R.jpg", Eye.RIGHT, SEVERE), MODEL, "icdr-ada", OP)
    assert store.encounter_summary(enc).queue is Queue.URGENT


KILLED_BETWEEN = textwrap.dedent("""
    import datetime as dt, hashlib, os, sys
    from eyescreen_desktop.core.records import Eye, Patient
    from eyescreen_desktop.core.store import ClinicStore
    from eyescreen_desktop.core.store.results import ResultStore
    from tests.core.report_fixtures import MODEL, OP, SEVERE, graded
    import dataclasses
    store = ClinicStore(sys.argv[1])
    store.upsert_patient(Patient("P8"))
    enc = store.start_encounter("P8", dt.datetime(2025, 3, 12, 9, 30))
    r = graded("P031_R.jpg", Eye.RIGHT, SEVERE)
    r = dataclasses.replace(r, sha256=hashlib.sha256(open(r.path, "rb").read()).hexdigest())
    ResultStore._write_queue = lambda *a, **k: os._exit(9)   # killed after the result row, before the queue
    store.save_result(enc, r, MODEL, "icdr-ada", OP)
""")


def test_killed_between_result_and_queue_then_restarted(tmp_path):
    db = tmp_path / "clinic.sqlite3"
    done = subprocess.run([sys.executable, "-c", KILLED_BETWEEN, str(db)], cwd=Path(__file__).parents[2],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 9, done.stderr
    with ClinicStore(db) as s:
        assert s._query("SELECT COUNT(*) FROM results")[0][0] == 0    # rolled back with the queue
        assert s._query("SELECT COUNT(*) FROM encounters")[0][0] == 1


def test_results_left_in_no_queue_by_an_older_version_are_queued_at_open(tmp_path):
    db = tmp_path / "clinic.sqlite3"
    with ClinicStore(db) as s:
        urgent = visit(s, "P9", real("P031_R.jpg", Eye.RIGHT, SEVERE))
        annual = visit(s, "P10", real("P001_R.jpg", Eye.RIGHT), real("P001_L.jpg", Eye.LEFT))
    with sqlite3.connect(db) as raw:   # what a crash between the two steps of EyeScreen <= 0.x left
        raw.execute("DELETE FROM queue_state")
        raw.execute("DELETE FROM store_meta")   # such a file had never been checked

    assert queue_rows(db) == {}
    with ClinicStore(db) as s:
        assert queue_rows(db) == {urgent: "urgent", annual: "annual"}
        assert s.audit(f"encounter:{urgent}")[-1].action == "encounter queued (repaired)"
        assert s.repair_queues() == []                                # nothing left to repair


# ---------------------------------------------------------------------- items 6 and 7: current photo, override


def test_a_retake_replaces_the_photo_it_retakes_in_queue_and_finding(store):
    enc = visit(store, "P11", blurred("P007_R.jpg", Eye.RIGHT), real("P001_L.jpg", Eye.LEFT))
    assert store.encounter_summary(enc).queue is Queue.REVIEW
    store.save_result(enc, real("P001_R.jpg", Eye.RIGHT), MODEL, "icdr-ada", OP)   # the retake
    s = store.encounter_summary(enc)
    assert s.queue is Queue.ANNUAL and s.complete
    assert [(e.eye, Path(e.path).name) for e in s.eyes] == [(Eye.RIGHT, "P001_R.jpg"), (Eye.LEFT, "P001_L.jpg")]
    assert [Path(e.path).name for e in s.retaken] == ["P007_R.jpg"] and len(s.all_photos) == 3


def test_an_override_keeps_its_reason_and_the_rules_queue(store):
    enc = visit(store, "P12", real("P001_R.jpg", Eye.RIGHT), real("P001_L.jpg", Eye.LEFT))
    store.override_queue(enc, Queue.REVIEW, "patient reports blurred vision since Monday", user="dr k")
    store.save_result(enc, real("P004_R.jpg", Eye.RIGHT), MODEL, "icdr-ada", OP)   # a retake afterwards
    s = store.encounter_summary(enc)
    assert s.overridden and s.override_queue is Queue.REVIEW and s.queue is Queue.REVIEW
    assert s.computed_queue is Queue.ANNUAL
    assert s.override_reason == "patient reports blurred vision since Monday"


# ---------------------------------------------------------------------- item 11: slips saved, referred without


def test_a_saved_slip_counts_as_issued_and_referring_without_one_is_recorded(store):
    saved = visit(store, "P13", real("P031_R.jpg", Eye.RIGHT, SEVERE))
    store.mark_slip_saved(saved, "/reports/P13.pdf", user="reception")
    assert store.mark_referred(saved, user="reception") is True
    s = store.encounter_summary(saved)
    assert s.slip_saved_at is not None and s.slip_issued_at == s.slip_saved_at
    assert s.state == "referred" and not s.referred_without_slip

    bare = visit(store, "P14", real("P031_R.jpg", Eye.RIGHT, SEVERE))
    assert store.mark_referred(bare, user="dr k") is False
    s = store.encounter_summary(bare)
    assert s.state == "referred" and s.referred_without_slip and s.slip_issued_at is None
    assert [a.action for a in store.audit(f"encounter:{bare}")][-2:] == ["referred without a slip", "state changed"]


# ---------------------------------------------------------------------- item 13: copies outside the lock


def test_photographs_are_copied_before_the_write_lock_is_taken(store, monkeypatch):
    seen: list[bool] = []
    real_copy = store._copy_into_store

    def copy(source, sha):
        free: list[bool] = []

        def probe() -> None:  # another thread (the window) trying to read now
            free.append(store._lock.acquire(blocking=False))
            if free[0]:
                store._lock.release()

        reader = threading.Thread(target=probe)
        reader.start()
        reader.join()
        seen.append(free[0])
        return real_copy(source, sha)

    monkeypatch.setattr(store, "_copy_into_store", copy)
    enc = visit(store, "P15", real("P001_R.jpg", Eye.RIGHT))
    store.begin_batch("b1", "icdr-ada", MODEL.sha256, ["/in"])
    store.record_batch_file("b1", "P001_L.jpg", enc, real("P001_L.jpg", Eye.LEFT), MODEL, "icdr-ada", OP)
    assert seen == [True, True]            # desk save and batch record: another thread could read meanwhile
    assert store.image_file(real("P001_L.jpg", Eye.LEFT).sha256) is not None


# ---------------------------------------------------------------------- item 15: search


def test_search_ignores_case_and_accents_by_id_name_and_birth_date(store):
    store.upsert_patient(Patient("MRN-77", "Zoë Ñúñez", dt.date(1956, 3, 21)))
    store.upsert_patient(Patient("MRN-78", "Zoe Nunes"))
    store.upsert_patient(Patient("straße-1", "Jürgen Weiß"))
    assert [p.patient_id for p in store.find_patients("nunez")] == ["MRN-77"]
    assert [p.patient_id for p in store.find_patients("ZOE")] == ["MRN-77", "MRN-78"]
    assert [p.patient_id for p in store.find_patients("ñúñez zoë")] == ["MRN-77"]   # every word, any order
    assert [p.patient_id for p in store.find_patients("21/03/1956")] == ["MRN-77"]
    assert [p.patient_id for p in store.find_patients("1956-03")] == ["MRN-77"]
    assert [p.patient_id for p in store.find_patients("weiss")] == ["straße-1"]
    assert [p.patient_id for p in store.find_patients("mrn-77")] == ["MRN-77"]
    assert store.find_patients("100%") == [] and store.find_patients("_") == []
    store.upsert_patient(Patient("MRN-78", "Chloé Martin"))         # renamed: found by the new name only
    assert [p.patient_id for p in store.find_patients("chloe")] == ["MRN-78"]
    assert store.find_patients("nunes") == []


def test_search_does_not_scan_the_table_in_python(store, monkeypatch):
    for i in range(300):
        store.upsert_patient(Patient(f"P{i:04d}", f"Name {i}"))
    calls = []
    real_fold = store_mod.base.search_text
    monkeypatch.setattr(store_mod.base, "search_text", lambda *a: calls.append(a) or real_fold(*a))
    expected = sum("1" in f"p{i:04d} name {i}" for i in range(300))   # every word: "name" and "1"
    assert len(store.find_patients("NAME 1", limit=500)) == expected
    assert calls == []          # the folded column is matched in SQL; nothing folded per row per keystroke


def test_a_schema_2_database_is_upgraded_in_place_with_search_and_missing_eyes(tmp_path):
    db = tmp_path / "old.sqlite3"
    raw = sqlite3.connect(db)
    raw.executescript(store_mod.schema.MIGRATIONS[0])
    raw.executescript(store_mod.schema.MIGRATIONS[1])
    raw.execute("PRAGMA user_version = 2")
    raw.execute("INSERT INTO patients (patient_id, name, birth_date, created_at, updated_at) "
                "VALUES ('OLD-1', 'Zoë Ñúñez', '1956-03-21', '2024-01-01', '2024-01-01')")
    raw.commit()
    raw.close()
    with ClinicStore(db) as s:
        assert s.schema_version == store_mod.SCHEMA_VERSION >= 3   # 4 (external) and 5 (gate) came after
        assert [p.patient_id for p in s.find_patients("nunez")] == ["OLD-1"]
        s.upsert_patient(Patient("OLD-1", "Zoë Ñúñez"))
        enc = s.start_encounter("OLD-1", DAY)
        s.save_result(enc, real("P001_R.jpg", Eye.RIGHT), MODEL, "icdr-ada", OP)
        s.record_missing_eye(enc, Eye.LEFT, "declined")
        assert s.encounter_summary(enc).queue is Queue.REVIEW     # declined: examined in person (issue 24)
        assert s.encounter_summary(enc).complete
    backup = tmp_path / "old.sqlite3.schema2.bak"
    assert sqlite3.connect(backup).execute("SELECT name FROM patients").fetchone()[0] == "Zoë Ñúñez"
    assert json.loads(sqlite3.connect(db).execute(
        "SELECT details FROM audit_log WHERE action = 'missing eye recorded'").fetchone()[0])["reason"] == "declined"

