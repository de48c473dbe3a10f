"""The tamper-evident audit log (issue 21) on SQLite and the real PostgreSQL
server: every entry names the person, the workstation and UTC time and is chained
to the one before; an edited row, a removed row and rows removed from the end are
each found; several workstations chain one at a time; an upgraded database keeps
its old entries, marked "before accounts"."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
import sqlalchemy as sa

from eyescreen_desktop.core.records import Patient
from eyescreen_desktop.core.store import ClinicStore, workstation
from eyescreen_desktop.core.store.chain import BEFORE_ACCOUNTS
from eyescreen_desktop.core.store.engine import make_engine

ADMIN_PW = "correct horse battery"


@pytest.fixture
def store(tmp_path, database_url):
    with ClinicStore(database_url, tmp_path / "images") as s:
        yield s


def some_entries(store: ClinicStore, n: int = 4) -> None:
    for i in range(n):
        store.upsert_patient(Patient(f"P{i}", f"Patient {i}"))


def tamper(store: ClinicStore, sql: str, params: tuple = ()) -> None:
    with store._tx() as db:
        db.execute(sql, params)


def test_each_entry_names_person_workstation_and_utc_time_and_the_chain_verifies(store):
    store.add_person("ada", ADMIN_PW, ["admin", "nurse"])
    store.sign_in("ada", ADMIN_PW)
    some_entries(store)
    last = store.audit()[-1]
    assert (last.user, last.workstation, last.era) == ("ada", workstation(), "")
    assert last.at.utcoffset() == dt.timedelta(0)
    check = store.verify_audit()
    assert check.ok and check.entries == len(store.audit())


def test_an_edited_row_is_found_at_its_own_entry(store):
    some_entries(store)
    target = store.audit()[2].audit_id
    tamper(store, "UPDATE audit_log SET details = '{}' WHERE audit_id = ?", (target,))
    check = store.verify_audit()
    assert not check.ok and check.broken_at == target and "changed" in check.problem


def test_a_row_removed_from_the_middle_breaks_the_next_link(store):
    some_entries(store)
    entries = store.audit()
    tamper(store, "DELETE FROM audit_log WHERE audit_id = ?", (entries[1].audit_id,))
    check = store.verify_audit()
    assert check.broken_at == entries[2].audit_id and "does not follow" in check.problem


def test_rows_removed_from_the_end_are_found_by_the_head_kept_apart(store):
    some_entries(store)
    entries = store.audit()
    tamper(store, "DELETE FROM audit_log WHERE audit_id >= ?", (entries[-2].audit_id,))
    check = store.verify_audit()
    assert not check.ok and check.broken_at is None and "removed from the end" in check.problem


def test_several_workstations_writing_at_once_chain_one_at_a_time(tmp_path, database_url):
    images = tmp_path / "images"
    with ClinicStore(database_url, images) as a, ClinicStore(database_url, images) as b:
        barrier = threading.Barrier(2)

        def write(store: ClinicStore, prefix: str) -> None:
            barrier.wait()
            for i in range(15):
                store.upsert_patient(Patient(f"{prefix}{i}", prefix))

        threads = [threading.Thread(target=write, args=(s, p)) for s, p in ((a, "A"), (b, "B"))]
        [t.start() for t in threads]
        [t.join() for t in threads]
        check = a.verify_audit()
        assert check.ok, check.problem
        assert check.entries == len(a.audit()) >= 30


def test_an_upgraded_database_keeps_its_old_entries_marked_before_accounts_with_a_backup(tmp_path, database_url):
    from alembic import command

    from eyescreen_desktop.core.store.migrate import _config

    engine = make_engine(database_url)
    with engine.begin() as conn:            # a clinic database as the previous EyeScreen left it
        command.upgrade(_config(conn), "0002")
        for i in range(3):
            conn.execute(sa.text('INSERT INTO audit_log (at, "user", action, entity, details, workstation) '
                                 "VALUES (:at, 'maria', 'patient created', :entity, '{}', 'desk-1')"),
                         {"at": f"2025-01-0{i + 1}T09:00:00", "entity": f"patient:P{i}"})
    engine.dispose()
    with ClinicStore(database_url, tmp_path / "images") as store:
        old = store.audit()
        assert [(e.user, e.era) for e in old] == [("maria", BEFORE_ACCOUNTS)] * 3
        store.add_person("ada", ADMIN_PW, ["admin"])
        check = store.verify_audit()
        assert check.ok and check.before_accounts == 3 and check.entries == 4
        if store.path is not None:
            assert store.path.with_name(f"{store.path.name}.0002.bak").is_file()
