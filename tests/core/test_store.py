"""The clinic database on real SQLite files: schema and migrations, patients,
images recognised by content hash, results, queues, audit log, threads."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import sqlite3
import threading
from pathlib import Path

import psycopg
import pytest

from eyescreen_desktop.core import store as store_mod
from eyescreen_desktop.core.paths import DataPaths
from eyescreen_desktop.core.records import (
    Eye,
    EyeDecision,
    EyeResult,
    ModelInfo,
    OperatingPoint,
    Patient,
    Prediction,
    QualityReport,
    Queue,
    Status,
)
from eyescreen_desktop.core.store import ClinicStore, StoreError

MODEL = ModelInfo("tiny", "0.0.1", "a" * 64)
OTHER_MODEL = ModelInfo("tiny", "0.0.2", "b" * 64)
OP = OperatingPoint("default", referable=0.5, urgent=0.3)
INTEGRITY_ERRORS = (sqlite3.IntegrityError, psycopg.IntegrityError)


@pytest.fixture
def store(tmp_path, database_url):
    """The store on a SQLite file and on the test run's PostgreSQL server."""
    with ClinicStore.open(DataPaths(tmp_path / "data"), database_url) as s:
        yield s


def photo(tmp_path: Path, name: str, content: bytes) -> tuple[Path, str]:
    path = tmp_path / name
    path.write_bytes(content)
    return path, hashlib.sha256(content).hexdigest()


def graded(path: Path, sha: str, eye: Eye, queue: Queue = Queue.ANNUAL, grade: int = 0) -> EyeResult:
    probs = tuple(0.6 if g == grade else 0.1 for g in range(5))
    return EyeResult(
        path=str(path), eye=eye, status=Status.OK, message="", sha256=sha,
        quality=QualityReport(Status.OK, (), "", {"sharpness": 0.5}),
        prediction=Prediction(probs, p_referable=sum(probs[2:]), p_urgent=sum(probs[3:]), p_maculopathy=None),
        decision=EyeDecision(queue, f"ICDR {grade}", "finding words", grade), width=1024, height=685,
    )


def ungradable(path: Path, sha: str, eye: Eye) -> EyeResult:
    q = QualityReport(Status.UNGRADABLE, ("blurred",), "Out of focus: retake", {"sharpness": 0.05})
    return EyeResult(str(path), eye, Status.UNGRADABLE, q.advice, sha, q, None,
                     EyeDecision(Queue.REVIEW, "ungradable", "could not be graded (blurred)"))


def encounter_with(store: ClinicStore, patient_id: str, *results: EyeResult, model=MODEL) -> str:
    store.upsert_patient(Patient(patient_id, f"Name {patient_id}"))
    enc = store.start_encounter(patient_id, started_at=dt.datetime(2024, 5, 1, 9, 30))
    for r in results:
        store.save_result(enc, r, model, "icdr-ada", OP, user="nurse")
    return enc


# ---------------------------------------------------------------------- file and schema


def test_new_database_is_wal_with_foreign_keys_and_current_schema(store):
    if store.dialect != "sqlite":
        pytest.skip("a SQLite file's own settings")
    raw = sqlite3.connect(store.path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert raw.execute("PRAGMA user_version").fetchone()[0] == store_mod.SCHEMA_VERSION >= 1
    assert store._db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"patients", "encounters", "images", "results", "queue_state", "audit_log"} <= tables
    raw.close()


def test_reopening_keeps_the_data_and_does_not_migrate_again(tmp_path):
    with ClinicStore(tmp_path / "c.sqlite3") as s:
        s.upsert_patient(Patient("P1", "Ann"))
    with ClinicStore(tmp_path / "c.sqlite3") as s:
        assert s.get_patient("P1").name == "Ann"
        assert s.schema_version == store_mod.SCHEMA_VERSION
    assert not list(tmp_path.glob("*.bak"))


PHONE_REVISION = '''
import sqlalchemy as sa
from alembic import op

revision = "9001"
down_revision = "{head}"


def upgrade():
    op.add_column("patients", sa.Column("phone", sa.Text, nullable=False, server_default=""))
'''


def test_migration_upgrades_an_older_file_after_a_backup(tmp_path, monkeypatch):
    """A new Alembic revision (here: a phone column) upgrades an existing file in
    place, after a backup copy named by the revision it had."""
    import shutil

    from eyescreen_desktop.core.store import migrate

    with ClinicStore(tmp_path / "c.sqlite3") as s:
        s.upsert_patient(Patient("P1", "Ann"))
    scripts = tmp_path / "migrations"
    shutil.copytree(migrate.SCRIPTS, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    head = migrate.head_revision()
    (scripts / "versions" / "9001_phone.py").write_text(PHONE_REVISION.format(head=head))
    monkeypatch.setattr(migrate, "SCRIPTS", scripts)
    with ClinicStore(tmp_path / "c.sqlite3") as s:
        assert s.schema_version == store_mod.schema.SCHEMA_VERSION
        assert s._db.execute("SELECT phone FROM patients WHERE patient_id = 'P1'").fetchone()[0] == ""
        assert s._query("SELECT version_num FROM alembic_version")[0][0] == "9001"
    backup = tmp_path / f"c.sqlite3.{head}.bak"
    assert sqlite3.connect(backup).execute("SELECT name FROM patients").fetchone()[0] == "Ann"


def test_a_schema_3_file_from_before_alembic_is_upgraded_in_place_after_a_backup(tmp_path):
    """What EyeScreen wrote before Alembic: the hand-written list to schema 3."""
    from eyescreen_desktop.core.store import migrate

    db = tmp_path / "old.sqlite3"
    raw = sqlite3.connect(db)
    raw.create_function("eyescreen_search_text", 3, store_mod.search_text)
    for script in store_mod.schema.MIGRATIONS[:3]:
        raw.executescript(script)
    raw.execute("PRAGMA user_version = 3")
    raw.execute("INSERT INTO patients (patient_id, name, created_at, updated_at) VALUES ('OLD', 'Ann', 'x', 'x')")
    raw.commit()
    raw.close()
    with ClinicStore(db) as s:
        assert s.get_patient("OLD").name == "Ann"
        assert s.schema_version == store_mod.SCHEMA_VERSION
        assert s._query("SELECT version_num FROM alembic_version")[0][0] == migrate.head_revision()
        assert s._query("SELECT name FROM sqlite_master WHERE name = 'queue_state_view'")
        assert s._query("SELECT version FROM queue_state") == []      # revisions after the baseline ran
        assert s._query("SELECT modality, gate, p_checkup FROM results") == []   # schema 4 and 5 on the way
    assert sqlite3.connect(tmp_path / "old.sqlite3.schema3.bak").execute(
        "SELECT name FROM patients").fetchone()[0] == "Ann"


def test_a_file_from_a_newer_eyescreen_or_not_a_database_is_refused(tmp_path):
    newer = tmp_path / "newer.sqlite3"
    raw = sqlite3.connect(newer)
    raw.execute(f"PRAGMA user_version = {store_mod.SCHEMA_VERSION + 5}")
    raw.close()
    with pytest.raises(StoreError, match="newer EyeScreen"):
        ClinicStore(newer)
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a usable EyeScreen database"):
        ClinicStore(junk)


# ---------------------------------------------------------------------- patients


def test_patients_are_upserted_found_and_every_change_is_audited(store):
    store.upsert_patient(Patient("P_01", "Ann Smith", dt.date(1950, 3, 4), "F"), user="nurse a")
    store.upsert_patient(Patient("P%02", "Bob Jones"))
    store.upsert_patient(Patient("P_01", "Ann Smith-Brown", dt.date(1950, 3, 4), "F"), user="nurse b")
    assert store.get_patient("P_01") == Patient("P_01", "Ann Smith-Brown", dt.date(1950, 3, 4), "F")
    assert store.get_patient("nobody") is None
    assert [p.patient_id for p in store.find_patients("smith")] == ["P_01"]
    assert [p.patient_id for p in store.find_patients("%")] == ["P%02"]   # wildcards are literal
    assert [p.patient_id for p in store.find_patients("")] == ["P%02", "P_01"]
    log = store.audit("patient:P_01")
    assert [(a.action, a.user) for a in log] == [("patient created", "nurse a"), ("patient updated", "nurse b")]
    assert log[1].details == {"name": {"from": "Ann Smith", "to": "Ann Smith-Brown"}}
    store.upsert_patient(Patient("P_01", "Ann Smith-Brown", dt.date(1950, 3, 4), "F"))
    assert len(store.audit("patient:P_01")) == 2  # no change, no audit row


def test_encounter_needs_a_known_patient_and_a_known_protocol(store):
    with pytest.raises(ValueError, match="unknown patient"):
        store.start_encounter("ghost")
    store.upsert_patient(Patient("P1"))
    with pytest.raises(ValueError, match="unknown protocol"):
        store.start_encounter("P1", protocol="made-up")
    with pytest.raises(ValueError, match="source"):
        store.start_encounter("P1", source="camera")


# ---------------------------------------------------------------------- images and results


def test_the_same_photo_screened_twice_is_one_image_with_one_stored_copy(store, tmp_path):
    path, sha = photo(tmp_path, "P1_L.jpg", b"\xff\xd8\xff fake jpeg bytes")
    copy, _ = photo(tmp_path, "renamed copy.jpg", b"\xff\xd8\xff fake jpeg bytes")
    store.upsert_patient(Patient("P1"))
    e1, e2 = store.start_encounter("P1"), store.start_encounter("P1")
    first = store.add_image(e1, path, sha, Eye.LEFT)
    assert store.add_image(e1, path, sha, Eye.LEFT) == first
    assert store.add_image(e2, copy, sha, Eye.LEFT) == first
    assert store._db.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 1
    assert store._db.execute("SELECT COUNT(*) FROM encounter_images").fetchone()[0] == 2
    stored = store.image_file(sha)
    assert stored is not None and stored.read_bytes() == path.read_bytes()
    assert stored.is_relative_to(store.image_store) and stored.name.startswith(sha)
    assert len([p for p in store.image_store.rglob("*") if p.is_file()]) == 1


def test_unreadable_files_are_recorded_without_a_hash(store, tmp_path):
    enc = encounter_with(store, "P1")
    bad = EyeResult(str(tmp_path / "a.jpg"), Eye.LEFT, Status.ERROR, "a.jpg is 0 bytes: copy it again")
    bad2 = EyeResult(str(tmp_path / "b.jpg"), Eye.RIGHT, Status.ERROR, "b.jpg is a folder")
    store.save_result(enc, bad, MODEL, "icdr-ada")
    store.save_result(enc, bad2, MODEL, "icdr-ada")
    summary = store.encounter_summary(enc)
    assert [(e.status, e.message, e.queue) for e in summary.eyes] == [
        (Status.ERROR, bad2.message, Queue.REVIEW), (Status.ERROR, bad.message, Queue.REVIEW)]
    assert summary.queue is Queue.REVIEW
    assert not any(store.image_store.rglob("*.jpg"))


def test_saving_a_result_again_replaces_it_and_a_new_model_adds_one(store, tmp_path):
    path, sha = photo(tmp_path, "P1_R.jpg", b"right eye")
    enc = encounter_with(store, "P1", graded(path, sha, Eye.RIGHT))
    store.save_result(enc, graded(path, sha, Eye.RIGHT, Queue.ROUTINE, 2), MODEL, "icdr-ada", OP)
    assert store._db.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 1
    store.save_result(enc, graded(path, sha, Eye.RIGHT, Queue.URGENT, 4), OTHER_MODEL, "icdr-ada", OP)
    assert store._db.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 2
    summary = store.encounter_summary(enc)
    assert len(summary.eyes) == 1 and summary.eyes[0].grade == 4 and summary.model == OTHER_MODEL


def test_result_for_gives_back_exactly_what_was_saved(store, tmp_path):
    path, sha = photo(tmp_path, "P1_L.jpg", b"left eye")
    original = graded(path, sha, Eye.LEFT, Queue.ROUTINE, 2)
    encounter_with(store, "P1", original)
    assert store.result_for(sha, MODEL.sha256, "icdr-ada") == original
    assert store.result_for(sha, MODEL.sha256, "icdr-ada", operating_point="default") == original
    assert store.result_for(sha, MODEL.sha256, "icdr-ada", operating_point="strict") is None
    assert store.result_for(sha, OTHER_MODEL.sha256, "icdr-ada") is None
    assert store.result_for(sha, MODEL.sha256, "nhs-dess") is None
    assert store.result_for("", MODEL.sha256, "icdr-ada") is None


def test_a_failed_save_leaves_nothing_half_written(store, tmp_path):
    path, sha = photo(tmp_path, "P1_L.jpg", b"left eye")
    encounter_with(store, "P1")
    before = [store._db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
              for t in ("images", "encounter_images", "results", "audit_log")]
    with pytest.raises(INTEGRITY_ERRORS):
        store.save_result("no-such-encounter", graded(path, sha, Eye.LEFT), MODEL, "icdr-ada")
    after = [store._db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
             for t in ("images", "encounter_images", "results", "audit_log")]
    assert after == before


# ---------------------------------------------------------------------- summaries and queues


def test_summary_puts_the_patient_in_the_most_urgent_queue_right_eye_first(store, tmp_path):
    left, ls = photo(tmp_path, "P1_L.jpg", b"left")
    right, rs = photo(tmp_path, "P1_R.jpg", b"right")
    enc = encounter_with(store, "P1", graded(left, ls, Eye.LEFT, Queue.ANNUAL, 0), ungradable(right, rs, Eye.RIGHT))
    s = store.encounter_summary(enc)
    assert [e.eye for e in s.eyes] == [Eye.RIGHT, Eye.LEFT]
    assert s.queue is Queue.REVIEW            # the ungradable eye is not hidden by the normal one
    assert s.due_date == dt.date(2024, 5, 1)  # review: now
    assert s.patient.name == "Name P1" and s.protocol_name == "icdr-ada" and s.operating_point == OP
    assert s.eyes[0].quality.reasons == ("blurred",) and s.eyes[0].grade is None
    assert s.action.startswith("Retake")


def _queued(store: ClinicStore, tmp_path: Path, pid: str, queue: Queue, due: dt.date) -> str:
    path, sha = photo(tmp_path, f"{pid}.jpg", pid.encode())
    grade = {Queue.URGENT: 4, Queue.ROUTINE: 2, Queue.ANNUAL: 0}.get(queue, 0)
    result = graded(path, sha, Eye.LEFT, queue, grade) if queue is not Queue.REVIEW else \
        ungradable(path, sha, Eye.LEFT)
    enc = encounter_with(store, pid, result)
    store.record_missing_eye(enc, Eye.RIGHT, "prosthesis", user="nurse")  # a complete one-eyed visit
    store.finish_encounter(enc, queue, due, user="batch")
    return enc


def test_queue_views_sort_by_due_date_filter_and_count(store, tmp_path):
    annual = _queued(store, tmp_path, "A", Queue.ANNUAL, dt.date(2025, 5, 1))
    urgent = _queued(store, tmp_path, "U", Queue.URGENT, dt.date(2024, 5, 15))
    routine = _queued(store, tmp_path, "R", Queue.ROUTINE, dt.date(2024, 8, 1))
    review = _queued(store, tmp_path, "V", Queue.REVIEW, dt.date(2024, 5, 1))
    assert [s.encounter_id for s in store.encounters()] == [review, urgent, routine, annual]
    assert [s.encounter_id for s in store.encounters(queue=Queue.URGENT)] == [urgent]
    assert store.queue_counts() == {Queue.URGENT: 1, Queue.ROUTINE: 1, Queue.REVIEW: 1, Queue.ANNUAL: 1}
    store.set_state(urgent, "referred", user="dr k")
    assert store.queue_counts()[Queue.URGENT] == 0
    assert store.queue_counts(state=None)[Queue.URGENT] == 1
    assert [s.encounter_id for s in store.encounters(state="referred")] == [urgent]
    assert store.encounters(since=dt.datetime(2030, 1, 1)) == []
    assert len(store.encounters(since=dt.date(2024, 5, 1))) == 4


def test_override_needs_a_reason_moves_the_due_date_and_is_audited(store, tmp_path):
    enc = _queued(store, tmp_path, "A", Queue.ANNUAL, dt.date(2025, 5, 1))
    with pytest.raises(ValueError, match="reason"):
        store.override_queue(enc, Queue.URGENT, "  ", user="dr k")
    store.override_queue(enc, Queue.URGENT, "new vessels seen on review", user="dr k")
    s = store.encounter_summary(enc)
    assert (s.queue, s.due_date, s.override_reason) == (Queue.URGENT, dt.date(2024, 5, 15),
                                                        "new vessels seen on review")
    assert store.queue_counts()[Queue.URGENT] == 1 and store.queue_counts()[Queue.ANNUAL] == 0
    store.finish_encounter(enc, Queue.ANNUAL, dt.date(2025, 5, 1))   # a re-run keeps the override
    assert store.encounter_summary(enc).queue is Queue.URGENT
    last = store.audit(f"encounter:{enc}")
    assert ("queue overridden", "dr k") in [(a.action, a.user) for a in last]


def test_state_and_slip_printing_are_checked_and_audited(store, tmp_path):
    path, sha = photo(tmp_path, "P1_L.jpg", b"left")
    with pytest.raises(ValueError, match="not been queued"):  # no result yet, so in no queue
        store.set_state(encounter_with(store, "P0"), "referred")
    enc = encounter_with(store, "P1", graded(path, sha, Eye.LEFT))
    with pytest.raises(KeyError):
        store.set_state("no-such-encounter", "closed")
    store.finish_encounter(enc, Queue.ROUTINE, dt.date(2024, 8, 1))
    with pytest.raises(ValueError, match="state must be"):
        store.set_state(enc, "lost")
    store.mark_slip_printed(enc, user="reception")
    store.set_state(enc, "closed", user="dr k")
    s = store.encounter_summary(enc)
    assert s.state == "closed" and s.slip_printed_at is not None
    actions = [(a.action, a.user) for a in store.audit(f"encounter:{enc}")]
    assert actions[-2:] == [("slip printed", "reception"), ("state changed", "dr k")]
    assert store.audit(f"encounter:{enc}")[-1].details == {"state": {"from": "open", "to": "closed"}}
    assert {a.entity.split(":")[0] for a in store.audit()} >= {"patient", "encounter", "image", "result"}
    assert all(a.entity.startswith("encounter:") for a in store.audit("encounter"))


def test_default_audit_user_is_the_operating_system_user(store):
    store.upsert_patient(Patient("P1"))
    assert store.audit("patient:P1")[0].user == store_mod.default_user() != ""


# ---------------------------------------------------------------------- threads and batches


def test_a_worker_thread_writes_while_the_gui_thread_reads(store, tmp_path):
    enc = encounter_with(store, "P1")
    errors: list[BaseException] = []

    def worker():
        try:
            for i in range(40):
                path, sha = photo(tmp_path, f"w{i}.jpg", f"worker {i}".encode())
                store.save_result(enc, graded(path, sha, Eye.LEFT), MODEL, "icdr-ada", OP)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    t = threading.Thread(target=worker)
    t.start()
    while t.is_alive():
        store.encounter_summary(enc)
        store.queue_counts()
    t.join()
    assert errors == []
    assert len(store.encounter_summary(enc).all_photos) == 40


def test_batch_encounters_and_files_are_recorded_once(store, tmp_path):
    assert store.begin_batch("k1", "icdr-ada", MODEL.sha256, ["/in"]) is True
    assert store.begin_batch("k1", "icdr-ada", MODEL.sha256, ["/in"]) is False
    store.ensure_patient("P1")
    enc = store.batch_encounter("k1", "P1", "icdr-ada")
    assert store.batch_encounter("k1", "P1", "icdr-ada") == enc
    path, sha = photo(tmp_path, "P1_L.jpg", b"left")
    store.record_batch_file("k1", "P1_L.jpg", enc, graded(path, sha, Eye.LEFT), MODEL, "icdr-ada", OP)
    store.record_batch_file("k1", "P1_L.jpg", enc, graded(path, sha, Eye.LEFT), MODEL, "icdr-ada", OP)
    assert store.batch_done_files("k1") == {"P1_L.jpg"}
    rows = store.batch_rows("k1")
    assert [(r.file, r.patient_id, r.result.sha256) for r in rows] == [("P1_L.jpg", "P1", sha)]
    assert store.batch_encounters("k1") == [enc]
    assert store._db.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 1


def test_heat_maps_are_kept_small_and_come_back_with_the_result(store, tmp_path):
    import numpy as np

    path, sha = photo(tmp_path, "P1_R.jpg", b"right eye")
    yy, xx = np.mgrid[0:384, 0:384]
    heat = np.exp(-((yy - 100) ** 2 + (xx - 250) ** 2) / 2000.0).astype(np.float32)  # one hot spot
    enc = encounter_with(store, "P1", dataclasses.replace(graded(path, sha, Eye.RIGHT), heatmap=heat))
    blob = store._query("SELECT heatmap FROM results")[0][0]
    assert len(blob) < 8000  # a small PNG, not 384 x 384 floats

    back = store.encounter_summary(enc).eyes[0].heatmap
    assert back.shape == (store_mod.HEATMAP_SIDE, store_mod.HEATMAP_SIDE) and back.dtype == np.float32
    peak = np.unravel_index(np.argmax(back), back.shape)
    assert abs(peak[0] * 4 - 100) <= 4 and abs(peak[1] * 4 - 250) <= 4
    assert back.max() == pytest.approx(1.0, abs=0.02) and back.min() == pytest.approx(0.0, abs=0.02)
    assert store.result_for(sha, MODEL.sha256, "icdr-ada").heatmap is not None


def test_no_heat_map_is_stored_for_an_ungradable_photograph(store, tmp_path):
    import numpy as np

    path, sha = photo(tmp_path, "P2_L.jpg", b"blurred")
    result = dataclasses.replace(ungradable(path, sha, Eye.LEFT), heatmap=np.ones((8, 8), np.float32))
    enc = encounter_with(store, "P2", result)
    assert store.encounter_summary(enc).eyes[0].heatmap is None


def test_a_version_1_database_gains_the_heat_map_column(tmp_path):
    data = DataPaths(tmp_path / "data")
    data.database.parent.mkdir(parents=True, exist_ok=True)
    raw = sqlite3.connect(data.database)
    raw.executescript(store_mod.MIGRATIONS[0] + "\nPRAGMA user_version = 1;")
    raw.close()
    with ClinicStore.open(data) as s:
        assert s.schema_version == store_mod.SCHEMA_VERSION >= 2
        columns = {r[1] for r in sqlite3.connect(s.path).execute("PRAGMA table_info(results)")}
        assert "heatmap" in columns
    assert (data.database.with_name(f"{data.database.name}.schema1.bak")).is_file()
