"""Several workstations on one clinic database (issue 14), on SQLite and on a real
PostgreSQL server: one visit per patient per day, conflicting queue changes
refused with the current state and audited with user and workstation, each
photograph of a shared batch claimed once."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from eyescreen_desktop.core.records import Eye, Patient, Queue
from eyescreen_desktop.core.store import ClinicStore, QueueConflict, workstation
from tests.core.report_fixtures import MODEL, OP, SEVERE
from tests.core.test_store_safety import real


@pytest.fixture
def two(tmp_path, database_url):
    """Two workstations: two stores (two connections) on the same database."""
    images = tmp_path / "shared-images"
    with ClinicStore(database_url, images) as a, ClinicStore(database_url, images) as b:
        yield a, b


def test_two_workstations_starting_the_same_patients_visit_get_one_encounter(two):
    a, b = two
    a.upsert_patient(Patient("P1", "Ann"))
    day = dt.date(2025, 3, 12)
    got: list[str] = []
    barrier = threading.Barrier(2)

    def start(store: ClinicStore) -> None:
        barrier.wait()
        got.append(store.day_encounter("P1", day, user="nurse"))

    threads = [threading.Thread(target=start, args=(s,)) for s in (a, b)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(got) == 2 and got[0] == got[1]
    assert a._query("SELECT COUNT(*) FROM encounters WHERE patient_id = 'P1'")[0][0] == 1
    assert a.day_encounter("P1", day + dt.timedelta(days=1)) != got[0]       # another day, another visit


def test_the_second_of_two_conflicting_overrides_is_refused_with_the_current_state(two):
    a, b = two
    a.upsert_patient(Patient("P1", "Ann"))
    enc = a.start_encounter("P1", dt.datetime(2025, 3, 12, 9))
    a.save_result(enc, real("P031_R.jpg", Eye.RIGHT, SEVERE), MODEL, "icdr-ada", OP)
    seen_a, seen_b = a.encounter_summary(enc), b.encounter_summary(enc)   # both coordinators look
    assert seen_a.version == seen_b.version
    a.override_queue(enc, Queue.ROUTINE, "seen in eye clinic last week", user="dr a",
                     expected_version=seen_a.version)
    with pytest.raises(QueueConflict) as refused:
        b.override_queue(enc, Queue.ANNUAL, "stable", user="dr b", expected_version=seen_b.version)
    assert refused.value.current.queue is Queue.ROUTINE                  # what b is shown now
    assert refused.value.current.override_reason == "seen in eye clinic last week"
    with pytest.raises(QueueConflict):
        b.set_state(enc, "closed", user="dr b", expected_version=seen_b.version)
    now = b.encounter_summary(enc)
    assert (now.queue, now.state) == (Queue.ROUTINE, "open")             # nothing silently overwritten
    rows = b._query('SELECT "user", action, workstation FROM audit_log WHERE entity = ? ORDER BY audit_id',
                    (f"encounter:{enc}",))
    refusals = [r for r in rows if r["action"] == "change refused: changed meanwhile"]
    assert [r["user"] for r in refusals] == ["dr b", "dr b"]
    assert {r["workstation"] for r in rows} == {workstation()}
    b.set_state(enc, "closed", user="dr b", expected_version=now.version)   # looked again: allowed
    assert a.encounter_summary(enc).state == "closed"


def test_each_photograph_of_a_shared_batch_is_claimed_once(two):
    a, b = two
    files = [f"P{i:03d}_R.jpg" for i in range(40)]
    won: dict[str, list[str]] = {"a": [], "b": []}
    barrier = threading.Barrier(2)

    def claim(name: str, store: ClinicStore) -> None:
        barrier.wait()
        won[name] += [f for f in files if store.claim_batch_file("k", f, by=f"pc-{name}:1")]

    threads = [threading.Thread(target=claim, args=item) for item in (("a", a), ("b", b))]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(won["a"] + won["b"]) == sorted(files)                  # every file once
    assert a._query("SELECT COUNT(*) FROM batch_claims")[0][0] == len(files)


def test_a_dead_processs_claims_are_taken_over(two):
    a, _ = two
    with a._tx() as db:   # a claim left by a process of this machine that is gone
        db.execute("INSERT INTO batch_claims (batch_key, file, claimed_by, claimed_at) VALUES (?, ?, ?, ?)",
                   ("k", "P001_R.jpg", f"{workstation()}:999999999", dt.datetime.now().isoformat()))
        db.execute("INSERT INTO batch_claims (batch_key, file, claimed_by, claimed_at) VALUES (?, ?, ?, ?)",
                   ("k", "P002_R.jpg", "other-pc:12", dt.datetime.now().isoformat()))
    assert a.claim_batch_file("k", "P001_R.jpg") is True                # re-claimed
    assert a.claim_batch_file("k", "P002_R.jpg") is False               # another machine's live claim
    assert a.audit("batch:k")[-1].action == "batch file re-claimed"


def test_a_shared_image_store_keeps_paths_relative_and_a_missing_share_is_said(tmp_path, database_url,
                                                                                monkeypatch):
    from eyescreen_desktop.core.paths import DataPaths
    from eyescreen_desktop.core.store import StoreError

    share = tmp_path / "mnt" / "clinic-images"
    monkeypatch.setenv("EYESCREEN_IMAGE_STORE", str(share))
    with pytest.raises(StoreError, match="cannot be reached: mount the clinic's shared folder"):
        ClinicStore.open(DataPaths(tmp_path / "pc1"), database_url)
    share.mkdir(parents=True)
    with ClinicStore.open(DataPaths(tmp_path / "pc1"), database_url) as pc1:
        pc1.upsert_patient(Patient("P1"))
        enc = pc1.start_encounter("P1", dt.datetime(2025, 3, 12, 9))
        result = real("P001_R.jpg", Eye.RIGHT)
        pc1.save_result(enc, result, MODEL, "icdr-ada", OP)
        stored = pc1._query("SELECT stored_name FROM images")[0][0]
    assert not stored.startswith("/") and (share / stored).is_file()    # relative to the share
    moved = tmp_path / "elsewhere" / "images"                            # mounted elsewhere on another PC
    moved.parent.mkdir()
    share.rename(moved)
    with ClinicStore.open(DataPaths(tmp_path / "pc2"), database_url, image_store=moved) as pc2:
        assert pc2.image_file(result.sha256) == moved / stored


def test_another_workstations_change_is_heard(two):
    a, b = two
    heard = threading.Event()
    watcher = b.watch_changes(heard.set)
    try:
        a.upsert_patient(Patient("P7", "seen elsewhere"))
        assert heard.wait(30), "no change notification"
    finally:
        watcher.stop()
    assert b.get_patient("P7").name == "seen elsewhere"


def test_a_result_is_reused_only_at_the_same_thresholds_on_both_engines(two):
    from eyescreen_desktop.core.records import OperatingPoint

    a, _ = two
    a.upsert_patient(Patient("P1"))
    enc = a.start_encounter("P1", dt.datetime(2025, 3, 12, 9))
    result = real("P001_R.jpg", Eye.RIGHT)
    a.save_result(enc, result, MODEL, "icdr-ada", OP)
    assert a.result_for(result.sha256, MODEL.sha256, "icdr-ada", OP) is not None
    moved = OperatingPoint(OP.name, referable=OP.referable + 0.1, urgent=OP.urgent)
    assert a.result_for(result.sha256, MODEL.sha256, "icdr-ada", moved) is None
