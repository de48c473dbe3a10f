"""Opening the clinic database does not read it all (issue 12, item 12): the
repair at open reads only results newer than its watermark, and the queue views
count and page from their index, through the store's public paging API."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest

from eyescreen_desktop.core.records import Eye, Patient, Queue
from eyescreen_desktop.core.store import ClinicStore
from eyescreen_desktop.core.store.results import ORPHANS_SQL, REPAIR_WATERMARK
from tests.core.report_fixtures import MODEL, OP, SEVERE
from tests.core.test_store_safety import real, visit


def plan(db: sqlite3.Connection, sql: str, params: tuple = ()) -> str:
    return " | ".join(r[-1] for r in db.execute("EXPLAIN QUERY PLAN " + sql, params))


def test_an_orphan_after_the_watermark_is_repaired_and_older_results_are_not_read(tmp_path):
    db = tmp_path / "clinic.sqlite3"
    with ClinicStore(db) as s:
        old = visit(s, "P1", real("P001_R.jpg", Eye.RIGHT), real("P001_L.jpg", Eye.LEFT))
    with ClinicStore(db) as s:                       # checks P1's results, raises the watermark
        checked = s._meta_int(REPAIR_WATERMARK)
        assert checked == s._query("SELECT MAX(result_id) FROM results")[0][0] > 0
        new = visit(s, "P2", real("P031_R.jpg", Eye.RIGHT, SEVERE))
    with sqlite3.connect(db) as raw:
        raw.execute("DELETE FROM queue_state")       # both lose their queue entry
    with ClinicStore(db) as s:
        queued = dict(s._query("SELECT encounter_id, queue FROM queue_state"))
        assert queued == {new: "urgent"}             # newer than the watermark: repaired
        assert old not in queued                     # at or below it: never read again
        assert s._meta_int(REPAIR_WATERMARK) > checked
    with sqlite3.connect(db) as raw:
        steps = plan(raw, ORPHANS_SQL, (checked,))
    assert "INTEGER PRIMARY KEY (rowid>?)" in steps and "SCAN r" not in steps, steps


def test_opening_with_nothing_new_reads_no_result(tmp_path):
    db = tmp_path / "clinic.sqlite3"
    with ClinicStore(db) as s:
        visit(s, "P1", real("P001_R.jpg", Eye.RIGHT), real("P001_L.jpg", Eye.LEFT))
    with ClinicStore(db) as s:
        statements: list[str] = []
        s._db.set_trace_callback(statements.append)
        assert s.repair_queues() == []
        assert not any("NOT EXISTS" in sql for sql in statements), statements


def clinic(store: ClinicStore) -> dict[str, str]:
    """Four patients: two urgent (one overridden to routine), one annual, one review."""
    ids = {"urgent": visit(store, "U1", real("P031_R.jpg", Eye.RIGHT, SEVERE)),
           "annual": visit(store, "A1", real("P001_R.jpg", Eye.RIGHT), real("P001_L.jpg", Eye.LEFT)),
           "review": visit(store, "R1", real("P001_R.jpg", Eye.RIGHT))}
    store.upsert_patient(Patient("U2", ""))
    ids["moved"] = store.start_encounter("U2", dt.datetime(2025, 3, 11, 9))
    store.save_result(ids["moved"], real("P031_R.jpg", Eye.RIGHT, SEVERE), MODEL, "icdr-ada", OP)
    store.override_queue(ids["moved"], Queue.ROUTINE, "seen by the ophthalmologist already")
    return ids


def test_the_paging_api_matches_the_full_listing(tmp_path):
    with ClinicStore(tmp_path / "c.sqlite3") as s:
        ids = clinic(s)
        for queue in [*Queue, None]:
            for state in ("open", "closed", None):
                full = [e.encounter_id for e in s.encounters(queue, state)]
                assert s.queue_view_count(queue, state) == len(full)
                assert s.queue_view_ids(queue, state, 0, 100) == full
                assert [e.encounter_id for e in s.queue_view_page(queue, state, 1, 1)] == full[1:2]
                for row, encounter_id in enumerate(full):
                    assert s.queue_view_position(queue, state, encounter_id) == row
        assert s.queue_view_position(Queue.URGENT, "open", ids["moved"]) == -1   # overridden away
        assert {q: s.queue_view_count(q, "open") for q in Queue} == s.queue_counts() == {
            Queue.URGENT: 1, Queue.ROUTINE: 1, Queue.REVIEW: 1, Queue.ANNUAL: 1}
        assert s.queue_view_overdue(None, "open", dt.date(2030, 1, 1)) == 4
        assert s.queue_view_overdue(None, "open", dt.date(2025, 3, 1)) == 0
        assert s.encounter_patient_id(ids["annual"]) == "A1"
        with pytest.raises(KeyError):
            s.encounter_patient_id("no-such-visit")


def test_queue_counts_read_the_view_index_made_by_a_migration(tmp_path):
    db = tmp_path / "c.sqlite3"
    with ClinicStore(db) as s:
        clinic(s)
    with sqlite3.connect(db) as raw:
        assert raw.execute("SELECT 1 FROM sqlite_master WHERE name = 'queue_state_view'").fetchone()
        steps = plan(raw, "SELECT COUNT(*) FROM queue_state q WHERE COALESCE(q.override_queue, q.queue) = ? "
                          "AND q.state = ?", ("urgent", "open"))
    assert "queue_state_view" in steps and "SCAN" not in steps, steps
