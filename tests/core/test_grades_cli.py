"""``eyescreen grades import`` and ``export`` end to end on a real database (SQLite
and PostgreSQL) with real photographs: bad rows refuse the whole file and are each
reported, a good file moves the queues, importing it again changes nothing, and an
export filled in by a reading centre imports back."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pytest

from eyescreen_desktop import cli
from eyescreen_desktop.core.records import Eye, Queue
from eyescreen_desktop.core.store import ClinicStore
from tests.core.grading_fixtures import VISIT, screened

HEADER = "patient_id,eye,icdr_grade,maculopathy,gradable,date,grader,findings\n"


@pytest.fixture
def clinic(tmp_path, database_url):
    """Four screened patients: P001 (one visit, both eyes annual), P003 (two visits),
    P004 (right eye only), P006 (AI urgent)."""
    images = tmp_path / "data" / "images"
    with ClinicStore(database_url, image_store=images) as store:
        ids = {"P001": screened(store, "P001", 0, 0),
               "P003a": screened(store, "P003", 0, 0),
               "P003b": screened(store, "P003", 1, 0, started=VISIT + dt.timedelta(days=30)),
               "P004": screened(store, "P004", 0, eyes=(Eye.RIGHT,)),
               "P006": screened(store, "P006", 4, 0)}
    return database_url, ids


def grades_cli(tmp_path: Path, url: str, *args: str) -> int:
    return cli.main(["grades", *args, "--database", url, "--data-dir", str(tmp_path / "data"), "--user", "clerk"])


def snapshot(url: str, tmp_path: Path) -> tuple:
    with ClinicStore(url, image_store=tmp_path / "data" / "images") as store:
        queues = sorted((s.encounter_id, s.queue.value, s.due_date) for s in store.encounters())
        return queues, len(store.grades()), len(store.audit())


def test_a_good_file_moves_the_queues_and_importing_it_again_changes_nothing(tmp_path, clinic, capsys):
    url, ids = clinic
    f = tmp_path / "centre.csv"
    f.write_text(HEADER + "P001,R,3,,1,,,\nP001,L,0,0,1,,,cataract\n"
                 f"P003,R,1,,1,{VISIT.date()},,\nP004,R,,,0,,Dr Row,\n", encoding="utf-8")
    assert grades_cli(tmp_path, url, "import", str(f), "--grader", "Reading Centre") == 0
    with ClinicStore(url, image_store=tmp_path / "data" / "images") as store:
        assert store.encounter_summary(ids["P001"]).queue is Queue.URGENT
        assert store.encounter_summary(ids["P001"]).due_date == VISIT.date() + dt.timedelta(days=14)
        graded = {(g.encounter_id, g.eye): g for g in store.grades()}
        assert graded[(ids["P001"], Eye.RIGHT)].grader == "Reading Centre"
        assert graded[(ids["P001"], Eye.LEFT)].findings == ("cataract",)
        assert graded[(ids["P001"], Eye.LEFT)].maculopathy == "no"
        assert graded[(ids["P004"], Eye.RIGHT)].grader == "Dr Row" and graded[(ids["P004"], Eye.RIGHT)].icdr_grade is None
        assert (ids["P003a"], Eye.RIGHT) in graded and all(g.recorded_by == "clerk" for g in graded.values())
        assert store.encounter_grading(ids["P001"]).state == "final"
        assert store.audit("file:centre.csv")[0].action == "grades imported"
    before = snapshot(url, tmp_path)
    assert grades_cli(tmp_path, url, "import", str(f), "--grader", "Reading Centre") == 0
    assert snapshot(url, tmp_path) == before


def test_every_bad_row_is_reported_and_nothing_is_applied(tmp_path, clinic, capsys):
    url, _ = clinic
    first = tmp_path / "first.csv"
    first.write_text(HEADER + "P006,R,4,,1,,Dr A,\n", encoding="utf-8")
    assert grades_cli(tmp_path, url, "import", str(first)) == 0
    before = snapshot(url, tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER
                   + "P001,R,2,,1,,Dr A,\n"              # 2: good, but the file is refused
                   + "P999,R,0,,1,,Dr A,\n"              # 3: unknown patient
                   + "P003,R,0,,1,,Dr A,\n"              # 4: several encounters and no date
                   + "P003,R,0,,1,2020-01-01,Dr A,\n"    # 5: no encounter on that date
                   + "P004,L,0,,1,,Dr A,\n"              # 6: no photograph of that eye
                   + "P001,X,0,,1,,Dr A,\n"              # 7: unknown eye
                   + "P001,L,7,,1,,Dr A,\n"              # 8: grade out of range
                   + "P001,L,,,1,,Dr A,\n"               # 9: gradable contradicting the grade
                   + "P001,R,2,,1,,Dr A,\n"              # 10: duplicate of line 2
                   + "P006,R,1,,1,,Dr A,\n"              # 11: a different grade from the same grader
                   + "P006,L,0,,1,,,\n",                 # 12: no grader
                   encoding="utf-8")
    capsys.readouterr()
    assert grades_cli(tmp_path, url, "import", str(bad)) == 1
    err = capsys.readouterr().err
    reasons = {int(line.split(":")[0].split()[1]): line for line in err.splitlines() if line.startswith("line ")}
    assert sorted(reasons) == list(range(3, 13))
    for line, words in {3: "unknown patient", 4: "several encounters and no date", 5: "no encounter on that date",
                        6: "no photograph of that eye", 7: "unknown eye", 8: "grade out of range",
                        9: "gradable contradicts the grade", 10: "duplicate row", 12: "no grader",
                        11: "a different grade from the same grader for the same eye"}.items():
        assert words in reasons[line], reasons[line]
    queues, n_grades, n_audit = snapshot(url, tmp_path)
    assert (queues, n_grades) == before[:2]
    assert n_audit == before[2] + 1
    with ClinicStore(url, image_store=tmp_path / "data" / "images") as store:
        refused = store.audit("file:bad.csv")
        assert [a.action for a in refused] == ["import refused"] and refused[0].user == "clerk"
        assert refused[0].details["lines"] == list(range(3, 13))


def test_an_export_filled_in_by_a_reading_centre_imports_back(tmp_path, clinic):
    url, ids = clinic
    out = tmp_path / "export"
    assert grades_cli(tmp_path, url, "export", "--out", str(out), "--qa-rate", "1", "--seed", "3") == 0
    with open(out / "to-grade.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    # qa-rate 1: every annual encounter is drawn, with the review (P004) and the urgent one (P006)
    assert {(r["patient_id"], r["eye"]) for r in rows} == {
        ("P001", "R"), ("P001", "L"), ("P003", "R"), ("P003", "L"), ("P004", "R"), ("P006", "R"), ("P006", "L")}
    assert len([r for r in rows if r["patient_id"] == "P003"]) == 4           # both visits
    for r in rows:
        assert (out / r["photo"]).stat().st_size > 10_000                     # the real photograph
        assert r["icdr_grade"] == "" and "queue" not in r                     # blind: nothing of the AI
        r.update(icdr_grade="0", gradable="1", grader="Centre")
    with open(out / "to-grade.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert grades_cli(tmp_path, url, "import", str(out / "to-grade.csv")) == 0
    with ClinicStore(url, image_store=tmp_path / "data" / "images") as store:
        assert store.encounter_summary(ids["P006"]).queue is Queue.ANNUAL     # imported grades are final
        assert store.encounter_summary(ids["P004"]).queue is Queue.REVIEW     # one eye only: never annual
        assert store.to_grade() == []


def test_with_accounts_a_grader_imports_but_only_a_coordinator_exports(tmp_path):
    """`grades export` writes identifiable photographs for a reading centre: the
    coordinator's role (issue 21), while a grader imports; each refused with exit 6."""
    from eyescreen_desktop import cli
    from eyescreen_desktop.core.paths import data_paths
    from eyescreen_desktop.core.store import ClinicStore

    data = tmp_path / "data"
    with ClinicStore.open(data_paths(data)) as store:
        store.add_person("ada", "admin-password-1", ["admin"])
        store.sign_in("ada", "admin-password-1")
        store.add_person("gina", "grader-password-1", ["grader"])
        store.add_person("cora", "coordinator-pw-1", ["coordinator"])
    csv_file = tmp_path / "empty.csv"
    csv_file.write_text("patient_id,eye,icdr_grade,maculopathy,gradable,grader\n", encoding="utf-8")

    def as_person(name: str, password: str, *args: str) -> int:
        import io
        import sys

        stdin = sys.stdin
        sys.stdin = io.StringIO(password + "\n")
        try:
            assert cli.main(["login", "--user", name, "--password-stdin", "--data-dir", str(data)]) == 0
        finally:
            sys.stdin = stdin
        return cli.main([*args, "--data-dir", str(data)])

    assert as_person("gina", "grader-password-1", "grades", "export", "--out", str(tmp_path / "g")) == 6
    assert as_person("cora", "coordinator-pw-1", "grades", "import", str(csv_file)) == 6
    assert as_person("cora", "coordinator-pw-1", "grades", "export", "--out", str(tmp_path / "c")) == 0
    assert as_person("gina", "grader-password-1", "grades", "import", str(csv_file)) == 0
