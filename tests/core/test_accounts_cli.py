"""``eyescreen users``, ``login``, ``logout``, ``audit`` and the sign-in every
record-changing command asks for (issue 21), run through ``eyescreen_desktop.cli.main``
on a real SQLite file and the test run's PostgreSQL server, with the exit codes
the issue lists: 0 done, 1 content, 5 not signed in, 6 role refused."""

from __future__ import annotations

import csv
import hashlib
import io
import stat

import pytest

from eyescreen_desktop.cli import main
from eyescreen_desktop.core.store import ClinicStore
from tests.core.report_fixtures import photo

ADMIN_PW = "correct horse battery"
NURSE_PW = "nurse-password-1"


@pytest.fixture
def clinic(tmp_path, database_url, monkeypatch, capsys):
    """``run(*args, password=None) -> (exit code, stdout + stderr)`` on one data folder and database."""
    data = tmp_path / "data"

    def run(*args: str, password: str | None = None) -> tuple[int, str]:
        if password is not None:
            monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
            args = (*args, "--password-stdin")
        code = main([args[0], "--data-dir", str(data), "--database", database_url, *args[1:]])
        out = capsys.readouterr()
        return code, out.out + out.err

    run.data = data
    run.url = database_url
    return run


def started(clinic) -> None:
    """An admin (signed in) and a nurse."""
    assert clinic("users", "add", "ada", "--role", "admin", "--role", "coordinator", password=ADMIN_PW)[0] == 0
    assert clinic("login", "--user", "ada", password=ADMIN_PW)[0] == 0
    assert clinic("users", "add", "nina", "--role", "nurse", password=NURSE_PW)[0] == 0


def test_the_first_account_needs_no_sign_in_but_must_be_an_admin(clinic):
    code, said = clinic("users", "add", "nina", "--role", "nurse", password=NURSE_PW)
    assert code == 6 and "admin" in said
    code, said = clinic("users", "add", "ada", "--role", "admin", password=ADMIN_PW)
    assert code == 0 and "accounts have started" in said
    code, said = clinic("users", "add", "nina", "--role", "nurse", password=NURSE_PW)   # now: sign in first
    assert code == 5 and "sign in first: eyescreen login" in said
    code, said = clinic("users", "add", "bob", "--role", "admin", password="too short")
    assert code == 5


def test_login_keeps_a_0600_session_named_by_the_database_url_and_logout_ends_it(clinic):
    started(clinic)
    with ClinicStore(clinic.url, clinic.data / "images") as store:
        url = store.url
    session = clinic.data / "sessions" / hashlib.sha256(url.encode()).hexdigest()
    assert session.is_file() and stat.S_IMODE(session.stat().st_mode) == 0o600
    assert session.read_text().strip() not in str(_rows(clinic.url, "sign_in_sessions"))   # only hashed there
    code, said = clinic("users", "list")
    assert code == 0 and "ada\tcoordinator,admin\tactive" in said and "nina\tnurse\tactive" in said
    assert clinic("logout")[0] == 0 and not session.exists()
    assert clinic("logout") == (0, "not signed in\n")            # without a session: still 0
    assert clinic("users", "list")[0] == 5


def test_a_wrong_password_exits_1_and_a_nurse_is_refused_what_needs_another_role(clinic, tmp_path):
    started(clinic)
    code, said = clinic("login", "--user", "nina", password="not-her-password")
    assert code == 1 and "wrong name or password" in said
    assert clinic("login", "--user", "nina", password=NURSE_PW)[0] == 0
    code, said = clinic("report", "--out", str(tmp_path / "out"), "--format", "csv")
    assert code == 6 and "coordinator" in said
    code, said = clinic("audit", "export", "--out", str(tmp_path / "audit.csv"))
    assert code == 6 and "coordinator" in said
    code, said = clinic("users", "add", "mal", "--role", "admin", password="another-password")
    assert code == 6 and "admin" in said


def test_commands_that_change_records_refuse_without_a_session_and_after_disable(clinic, tmp_path):
    started(clinic)
    assert clinic("logout")[0] == 0
    screen = ("screen", str(photo("P031_R.jpg")), "--out", str(tmp_path / "out"))
    code, said = clinic(*screen)
    assert code == 5 and "sign in first: eyescreen login" in said
    assert clinic("login", "--user", "nina", password=NURSE_PW)[0] == 0
    nina_session = next((clinic.data / "sessions").iterdir()).read_text()
    assert clinic("login", "--user", "ada", password=ADMIN_PW)[0] == 0
    assert clinic("users", "disable", "nina")[0] == 0
    (clinic.data / "sessions" / next((clinic.data / "sessions").iterdir()).name).write_text(nina_session)
    code, said = clinic(*screen)
    assert code == 5 and "ended" in said


def test_a_service_account_token_runs_commands_without_a_person_signed_in(clinic, tmp_path):
    started(clinic)
    assert clinic("users", "add", "camera-room", "--role", "coordinator", password="service-password")[0] == 0
    token = tmp_path / "camera.token"
    assert clinic("users", "token", "camera-room", "--out", str(token))[0] == 0
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert clinic("logout")[0] == 0
    code, said = clinic("audit", "export", "--out", str(tmp_path / "audit.csv"), "--token-file", str(token))
    assert code == 0, said
    with open(tmp_path / "audit.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert ("token issued", "ada") in {(r["action"].replace("service ", ""), r["user"]) for r in rows}


def test_audit_verify_needs_no_sign_in_and_exits_1_at_the_first_edited_row(clinic):
    started(clinic)
    assert clinic("logout")[0] == 0
    code, said = clinic("audit", "verify")
    assert code == 0 and "audit log whole" in said
    with ClinicStore(clinic.url, clinic.data / "images") as store:
        target = store.audit("person:nina")[0].audit_id
        with store._tx() as db:        # someone edits the log behind the application's back
            db.execute("UPDATE audit_log SET \"user\" = 'someone else' WHERE audit_id = ?", (target,))
    code, said = clinic("audit", "verify")
    assert code == 1 and f"entry {target} was changed" in said


def _rows(url: str, table: str) -> list[tuple]:
    with ClinicStore(url, "/nonexistent-images") as store:
        return [tuple(r) for r in store._query(f"SELECT * FROM {table}")]


def test_screen_refuses_an_operating_point_other_than_the_one_an_admin_applied(clinic, tmp_path):
    import hashlib as h

    started(clinic)
    point = tmp_path / "my-own-point.json"
    point.write_text('{"not": "the clinic point"}')
    assert clinic("login", "--user", "nina", password=NURSE_PW)[0] == 0
    screen = ("screen", str(photo("P031_R.jpg")), "--out", str(tmp_path / "out"), "--operating-point", str(point))
    code, said = clinic(*screen)
    assert code == 6 and "admin" in said
    with ClinicStore(clinic.url, clinic.data / "images") as store:
        store.sign_in("ada", ADMIN_PW)
        store.apply_operating_point(h.sha256(point.read_bytes()).hexdigest(), point.name)
    code, said = clinic(*screen)          # the applied point passes the check (and is then read as a point file)
    assert code == 2 and "admin" not in said


def test_report_on_a_database_it_cannot_reach_exits_4_like_every_command(tmp_path, capsys):
    code = main(["report", "--data-dir", str(tmp_path / "data"), "--database",
                 "postgresql://nobody@127.0.0.1:1/clinic", "--out", str(tmp_path / "out")])
    assert code == 4 and "eyescreen report:" in capsys.readouterr().err
