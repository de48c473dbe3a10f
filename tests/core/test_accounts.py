"""Accounts and roles in the clinic database (issue 21), on SQLite and on the
test run's real PostgreSQL server: no accounts works as before; the first admin
starts them; the services themselves refuse who may not; sign-in failures are
audited and lock the account for 30 s; sessions expire and end on disable."""

from __future__ import annotations

import datetime as dt

import pytest

from eyescreen_desktop.core.records import Eye, Patient, Queue
from eyescreen_desktop.core.roles import PERMISSIONS, Action, Role, role_needed
from eyescreen_desktop.core.store import (
    ClinicStore,
    FixedClock,
    NotSignedIn,
    PasswordRefused,
    RoleRefused,
    SignInRefused,
)
from eyescreen_desktop.core.store.accounts import LOCKOUT, MAX_FAILURES
from tests.core.report_fixtures import MODEL, OP, SEVERE
from tests.core.test_store_safety import real

ADMIN_PW = "correct horse battery"
NURSE_PW = "nurse-password-1"


@pytest.fixture
def store(tmp_path, database_url):
    with ClinicStore(database_url, tmp_path / "images") as s:
        yield s


def Clock() -> FixedClock:   # noqa: N802 - reads like the clock it makes
    """The store's clock, moved by hand."""
    return FixedClock(dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC))


def with_people(store: ClinicStore) -> None:
    """An admin, a nurse and a coordinator; the store is left signed out."""
    store.add_person("ada", ADMIN_PW, ["admin"])
    store.sign_in("ada", ADMIN_PW)
    store.add_person("nina", NURSE_PW, ["nurse"])
    store.add_person("cora", "coordinator-pw", ["coordinator", "nurse"])
    store.sign_out()


def screened_encounter(store: ClinicStore) -> str:
    store.upsert_patient(Patient("P1", "Ann"))
    enc = store.start_encounter("P1", dt.datetime(2025, 3, 12, 9))
    store.save_result(enc, real("P031_R.jpg", Eye.RIGHT, SEVERE), MODEL, "icdr-ada", OP)
    return enc


def test_a_database_without_accounts_works_as_before_without_sign_in(store):
    assert not store.has_accounts()
    enc = screened_encounter(store)
    store.mark_referred(enc)
    assert store.encounter_summary(enc).state == "referred"


def test_the_first_account_must_be_an_admin_and_starts_accounts(store):
    with pytest.raises(RoleRefused, match="admin"):
        store.add_person("nina", NURSE_PW, ["nurse"])
    assert not store.has_accounts()
    store.add_person("ada", ADMIN_PW, ["admin", "coordinator"])
    assert store.has_accounts()
    with pytest.raises(NotSignedIn, match="sign in first: eyescreen login"):   # from now on, sign-in everywhere
        store.upsert_patient(Patient("P1", "Ann"))
    with pytest.raises(NotSignedIn):
        store.add_person("eve", "another-password", ["admin"])


def test_passwords_are_argon2id_at_the_production_cost_and_at_least_ten_characters(store, monkeypatch):
    from eyescreen_desktop.core.store import accounts

    monkeypatch.setattr(accounts, "_hasher", accounts.password_hasher)   # not the suite's cheap one
    with pytest.raises(PasswordRefused, match="10 characters"):
        store.add_person("ada", "short-pw", ["admin"])
    store.add_person("ada", ADMIN_PW, ["admin"])
    stored = store._query("SELECT password_hash FROM people WHERE name = 'ada'")[0][0]
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$") and ADMIN_PW not in stored
    with pytest.raises(SignInRefused, match="wrong name or password"):
        store.sign_in("ada", ADMIN_PW.upper())
    assert store.sign_in("ada", ADMIN_PW).roles == (Role.ADMIN,)


def test_a_nurse_calling_a_coordinators_service_directly_is_refused_naming_the_role(store):
    with_people(store)
    store.sign_in("nina", NURSE_PW)
    enc = screened_encounter(store)                     # a nurse screens
    with pytest.raises(RoleRefused, match="coordinator") as refused:
        store.mark_referred(enc)
    assert refused.value.role is Role.COORDINATOR
    with pytest.raises(RoleRefused, match="coordinator"):
        store.override_queue(enc, Queue.ANNUAL, "seen elsewhere")
    with pytest.raises(RoleRefused, match="admin"):
        store.add_person("mal", "another-password", ["admin"])
    with pytest.raises(RoleRefused, match="admin"):
        store.apply_operating_point("ab" * 32)
    assert store.encounter_summary(enc).state == "open"
    store.sign_in("cora", "coordinator-pw")
    store.mark_referred(enc)
    assert store.encounter_summary(enc).state == "referred"
    assert store.audit(f"encounter:{enc}")[-1].user == "cora"   # who did it, not the OS user


def test_a_person_may_hold_several_roles_and_the_table_names_each_actions_role():
    assert role_needed(Action.CHANGE_QUEUE) is Role.COORDINATOR
    assert role_needed(Action.USERS) is Role.ADMIN
    assert role_needed(Action.SCREEN) is Role.NURSE
    assert role_needed(Action.GRADE) is Role.GRADER
    assert all(any(action in allowed for allowed in PERMISSIONS.values()) for action in Action)


def test_disable_and_reset_are_audited_and_no_account_is_ever_deleted(store):
    with_people(store)
    store.sign_in("ada", ADMIN_PW)
    store.reset_password("nina", "a-brand-new-one")
    store.disable_person("nina")
    with pytest.raises(ValueError, match="last admin"):
        store.disable_person("ada")
    listed = {p.name: p for p in store.people()}
    assert listed["nina"].disabled and not listed["ada"].disabled and len(listed) == 3
    actions = [(e.action, e.entity, e.user) for e in store.audit("person")]
    assert ("password reset", "person:nina", "ada") in actions
    assert ("person disabled", "person:nina", "ada") in actions
    with pytest.raises(SignInRefused, match="disabled"):
        store.sign_in("nina", "a-brand-new-one")


def test_five_failures_in_a_row_lock_the_account_for_30_s_a_refusal_not_a_sleep(store):
    with_people(store)
    clock = store.clock = Clock()
    for _ in range(MAX_FAILURES):
        with pytest.raises(SignInRefused, match="wrong name or password"):
            store.sign_in("nina", "not-her-password")
    with pytest.raises(SignInRefused, match="sign in again in 30 s"):
        store.sign_in("nina", NURSE_PW)                 # even the right password, for now
    store.sign_in("cora", "coordinator-pw")             # counted per account
    clock.at += LOCKOUT - dt.timedelta(seconds=1)
    with pytest.raises(SignInRefused, match="in 1 s"):
        store.sign_in("nina", NURSE_PW)
    clock.at += dt.timedelta(seconds=1)
    assert store.sign_in("nina", NURSE_PW).name == "nina"
    failed = [e for e in store.audit("person:nina") if e.action == "sign-in failed"]
    assert len(failed) == MAX_FAILURES + 2
    assert failed[MAX_FAILURES - 1].details["failures_in_a_row"] == MAX_FAILURES


def test_a_session_expires_after_8_hours_ends_on_sign_out_and_on_disable(store):
    with_people(store)
    clock = store.clock = Clock()
    store.sign_in("nina", NURSE_PW)
    token = store.start_session()
    store.person = None
    assert store.resume_session(token).name == "nina"
    clock.at += dt.timedelta(hours=8)
    with pytest.raises(NotSignedIn, match="expired"):
        store.resume_session(token)
    clock.at -= dt.timedelta(hours=7)
    store.sign_in("ada", ADMIN_PW)
    service = store.start_session("service", "nina")
    store.disable_person("nina")
    for ended in (token, service):
        with pytest.raises(NotSignedIn, match="ended"):
            store.resume_session(ended)
    assert token not in str(store._query("SELECT * FROM sign_in_sessions"))   # only its hash is kept


def test_opening_a_patients_record_is_audited_with_who_viewed_whom(store):
    with_people(store)
    store.sign_in("nina", NURSE_PW)
    store.upsert_patient(Patient("P1", "Ann"))
    assert store.open_record("P1").name == "Ann"
    viewed = store.audit("patient:P1")[-1]
    assert (viewed.action, viewed.user) == ("record opened", "nina")
    store.sign_in("ada", ADMIN_PW)
    with pytest.raises(RoleRefused):
        store.open_record("P1")


def test_only_the_applied_operating_point_is_allowed_to_people_who_are_not_admins(store):
    with_people(store)
    store.sign_in("ada", ADMIN_PW)
    store.apply_operating_point("a" * 64, "site-2026")
    store.check_operating_point("b" * 64)              # an admin may try another
    store.sign_in("nina", NURSE_PW)
    store.check_operating_point("a" * 64)
    with pytest.raises(RoleRefused, match="admin"):
        store.check_operating_point("b" * 64)


def test_a_batch_keeps_running_as_the_person_who_started_it_after_switch_person(store):
    import threading

    with_people(store)
    nina = store.sign_in("nina", NURSE_PW)
    started, switched = threading.Event(), threading.Event()

    def batch() -> None:
        with store.acting_as(nina):
            store.upsert_patient(Patient("B1", "first"))
            started.set()
            switched.wait()
            store.upsert_patient(Patient("B2", "second"))

    worker = threading.Thread(target=batch)
    worker.start()
    started.wait()
    store.sign_in("cora", "coordinator-pw")           # someone else takes the workstation
    switched.set()
    worker.join()
    assert [e.user for e in store.audit("patient")] == ["nina", "nina"]
    assert store.person.name == "cora"


def test_a_batch_visit_names_the_signed_in_person_not_the_user_it_was_given(store):
    """created_by (like the audit entry beside it) is who signed in, whatever name the caller passed."""
    with_people(store)
    store.sign_in("nina", NURSE_PW)
    store.upsert_patient(Patient("P2", "Bea"))
    enc = store.batch_encounter("batch-1", "P2", "icdr-ada", dt.datetime(2025, 3, 12, 9), user="os-login")
    row = store._query("SELECT created_by FROM encounters WHERE encounter_id = ?", (enc,))[0]
    assert row[0] == "nina"
    assert store.audit(f"encounter:{enc}")[-1].user == "nina"
