"""The store's clock: injectable, so no test drifts with the day it runs, and
timestamps kept in UTC (ordered the same on every workstation) but shown in
local time; an older database's naive local times are converted in place."""

from __future__ import annotations

import datetime as dt
import time

import pytest
import sqlalchemy as sa

from eyescreen_desktop.core.protocol import get_protocol
from eyescreen_desktop.core.records import Patient, Queue
from eyescreen_desktop.core.store import ClinicStore, FixedClock
from eyescreen_desktop.core.store.migrate import head_revision

PROTOCOL = get_protocol("icdr-ada")


@pytest.fixture
def far_from_utc(monkeypatch):
    """This process in a time zone 5 hours behind UTC (New York in winter), so a
    local time and its UTC text differ and a mix-up between them shows."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _raw(store: ClinicStore, sql: str) -> list[tuple]:
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql))]


def test_a_fixed_clock_dates_the_visit_its_due_date_and_the_audit(tmp_path, far_from_utc):
    # 22:30 in New York on 16 January is already 17 January in UTC: the visit is the clinic's 16 January
    evening = dt.datetime(2026, 1, 16, 22, 30)
    with ClinicStore(tmp_path / "clinic.sqlite3", clock=FixedClock(evening)) as store:
        store.upsert_patient(Patient("P1", "Ada"), user="nurse")
        encounter = store.day_encounter("P1", user="nurse")
        store.finish_encounter(encounter, Queue.URGENT, PROTOCOL.due_date(Queue.URGENT, store.today()), user="nurse")
        summary = store.encounter_summary(encounter)
        assert store.today() == dt.date(2026, 1, 16)
        assert summary.started_at == evening.astimezone()
        assert summary.started_at.strftime("%Y-%m-%d %H:%M") == "2026-01-16 22:30"   # shown in local time
        assert summary.due_date == dt.date(2026, 1, 30)
        assert {e.at for e in store.audit()} == {evening.astimezone()}
        # kept as UTC text with its offset
        assert _raw(store, "SELECT started_at, visit_day FROM encounters") == [
            ("2026-01-17T03:30:00+00:00", "2026-01-16")]
        assert {r[0] for r in _raw(store, "SELECT at FROM audit_log")} == {"2026-01-17T03:30:00+00:00"}


def test_audit_times_follow_the_clock_not_the_wall(tmp_path):
    clock = FixedClock(dt.datetime(2030, 1, 2, 8, 0, tzinfo=dt.timezone.utc))
    with ClinicStore(tmp_path / "clinic.sqlite3", clock=clock) as store:
        store.upsert_patient(Patient("P1", "Ada"), user="nurse")
        clock.advance(hours=3)
        store.upsert_patient(Patient("P1", "Ada King"), user="nurse")
        times = [e.at.astimezone(dt.timezone.utc) for e in store.audit("patient:P1")]
    assert times == [dt.datetime(2030, 1, 2, 8, 0, tzinfo=dt.timezone.utc),
                     dt.datetime(2030, 1, 2, 11, 0, tzinfo=dt.timezone.utc)]


def test_naive_local_times_of_an_older_database_become_utc_on_upgrade(database_url, tmp_path, far_from_utc):
    """A database at revision 0002 wrote naive local times; opening it with this
    EyeScreen converts every moment (not the calendar dates) to UTC, after a backup."""
    morning = dt.datetime(2026, 1, 16, 9, 30)
    with ClinicStore(database_url, image_store=tmp_path / "images", clock=FixedClock(morning)) as store:
        store.upsert_patient(Patient("P1", "Ada"), user="nurse")
        encounter = store.day_encounter("P1", user="nurse")
        store.finish_encounter(encounter, Queue.ANNUAL, dt.date(2027, 3, 16), user="nurse")
        with store.engine.begin() as conn:   # as EyeScreen before this revision wrote them
            for table, column in (("encounters", "started_at"), ("audit_log", "at"), ("patients", "created_at"),
                                  ("queue_state", "updated_at")):
                conn.execute(sa.text(f'UPDATE {table} SET "{column}" = :t'), {"t": "2026-01-16T09:30:00"})
            for table in ("qa_sample", "qa_draws", "encounter_grading", "human_grades"):   # revision 0004's
                conn.execute(sa.text(f"DROP TABLE {table}"))
            conn.execute(sa.text("UPDATE alembic_version SET version_num = '0002'"))
    with ClinicStore(database_url, image_store=tmp_path / "images") as store:
        assert _raw(store, "SELECT version_num FROM alembic_version") == [(head_revision(),)]
        assert _raw(store, "SELECT started_at, visit_day FROM encounters") == [
            ("2026-01-16T14:30:00+00:00", "2026-01-16")]
        for table, column in (("audit_log", "at"), ("patients", "created_at"), ("queue_state", "updated_at")):
            assert {r[0] for r in _raw(store, f'SELECT "{column}" FROM {table}')} <= {
                "2026-01-16T14:30:00+00:00"}, table
        assert _raw(store, "SELECT due_date FROM queue_state") == [("2027-03-16",)]   # a date stays a date
        assert store.encounter_summary(encounter).started_at.strftime("%H:%M") == "09:30"
    if database_url.startswith("sqlite"):
        assert (tmp_path / "clinic.sqlite3.0002.bak").is_file()   # the upgrade can be undone
