"""``eyescreen report`` end to end on a real clinic database (SQLite file built
through ClinicStore with real photographs), reading every export back."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from eyescreen_desktop import cli
from eyescreen_desktop.core.paths import data_paths
from eyescreen_desktop.core.records import Eye, EyeResult, Patient, Status
from eyescreen_desktop.core.store import ClinicStore
from tests.core.report_fixtures import (
    HEALTHY,
    MODEL,
    MODERATE,
    NAMES,
    OP,
    PROTOCOL,
    SEVERE,
    graded,
    image_count,
    not_graded,
    pdf_text,
    photo,
)


def _with_hash(result: EyeResult, path: Path) -> EyeResult:
    """The result as the engine would give it: the file's real content hash."""
    return dataclasses.replace(result, path=str(path), sha256=hashlib.sha256(path.read_bytes()).hexdigest())


def _screen(store: ClinicStore, patient: Patient, eyes: tuple[EyeResult, ...], started: dt.datetime) -> str:
    """Record one encounter the way the batch does."""
    store.upsert_patient(patient)
    eid = store.start_encounter(patient.patient_id, started)
    for e in eyes:
        store.save_result(eid, e, MODEL, PROTOCOL.name, OP)  # queued by the rule as it is saved
    return eid


@pytest.fixture()
def clinic(tmp_path) -> dict:
    """A data folder with five encounters in every queue; the urgent patient's
    photographs were screened from a camera card that was wiped afterwards."""
    paths = data_paths(tmp_path / "data").ensure()
    card = tmp_path / "card"
    card.mkdir()
    for name in ("P031_R.jpg", "P031_L.jpg"):
        shutil.copy(photo(name), card / name)
    day = dt.datetime(2025, 3, 12, 9, 0)
    ids = {}
    with ClinicStore.open(paths) as store:
        ids["urgent"] = _screen(store, Patient("URG/../1", NAMES[2], dt.date(1958, 7, 3), "F"), (
            _with_hash(graded("P031_R.jpg", Eye.RIGHT, SEVERE), card / "P031_R.jpg"),
            _with_hash(not_graded("P031_L.jpg", Eye.LEFT), card / "P031_L.jpg")), day)
        ids["routine"] = _screen(store, Patient("ROU-1", NAMES[0]), (
            _with_hash(graded("P004_R.jpg", Eye.RIGHT, MODERATE), photo("P004_R.jpg")),
            _with_hash(graded("P004_L.jpg", Eye.LEFT, HEALTHY), photo("P004_L.jpg"))), day)
        ids["review"] = _screen(store, Patient("REV-1", NAMES[3]), (
            not_graded(Path("/gone/broken.jpg"), Eye.RIGHT, Status.ERROR, (), "", message="broken.jpg: not an image"),
            _with_hash(graded("P007_L.jpg", Eye.LEFT, HEALTHY), photo("P007_L.jpg"))), day)
        ids["annual"] = _screen(store, Patient("ANN-1", NAMES[1]), (
            _with_hash(graded("P001_R.jpg", Eye.RIGHT, HEALTHY), photo("P001_R.jpg")),
            _with_hash(graded("P001_L.jpg", Eye.LEFT, HEALTHY), photo("P001_L.jpg"))), day)
        ids["old"] = _screen(store, Patient("OLD-1", "Earlier Visit"), (
            _with_hash(graded("P003_R.jpg", Eye.RIGHT, SEVERE), photo("P003_R.jpg")),), day - dt.timedelta(days=40))
    shutil.rmtree(card)  # the card was wiped: slips must use the managed copies
    return {"data": paths.root, "ids": ids, "paths": paths}


def _report(clinic: dict, out: Path, *extra: str) -> int:
    return cli.main(["report", "--data-dir", str(clinic["data"]), "--out", str(out), *extra])


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


def test_all_formats_from_the_database(clinic, tmp_path, capsys):
    out = tmp_path / "out"
    assert _report(clinic, out, "--format", "all", "--clinic-name", "Riverside <Eye>") == 0
    slips = sorted((out / "referrals").glob("*.pdf"))
    assert len(slips) == 3  # urgent, routine and the old urgent one
    assert all(p.parent == out / "referrals" for p in slips)  # "URG/../1" cannot escape the folder
    assert [p.name.split("_")[0] for p in (out / "review").glob("*.pdf")] == ["REV-1"]  # review slip
    assert [p.name.split("_")[0] for p in (out / "letters").glob("*.pdf")] == ["ANN-1"]  # result letter
    urgent = next(p for p in slips if p.name.startswith("URG"))
    text = pdf_text(urgent)
    assert NAMES[2] in text and "URGENT REFERRAL" in text and "26 Mar 2025" in text and "Riverside <Eye>" in text
    assert image_count(urgent) == 3  # logo + both photographs, read from the image store
    summary = pdf_text(out / "summary.pdf")
    assert "Patients in total 5" in summary and "broken.jpg" in summary
    rows = _csv(out / "queues.csv")
    assert [r["queue"] for r in rows] == ["urgent", "urgent", "routine", "review", "annual"]
    bundles = sorted((out / "fhir").glob("*.json"))
    assert len(bundles) == 5
    from fhir.resources.R4B.bundle import Bundle

    for b in bundles:
        Bundle.model_validate(json.loads(b.read_text(encoding="utf-8")))
    assert "5 encounter(s) selected" in capsys.readouterr().out


def test_queue_and_since_filters(clinic, tmp_path):
    out = tmp_path / "urgent"
    assert _report(clinic, out, "--queue", "urgent", "--format", "csv") == 0
    assert {r["patient_id"] for r in _csv(out / "queues.csv")} == {"URG/../1", "OLD-1"}
    assert not (out / "referrals").exists()

    out = tmp_path / "recent"
    assert _report(clinic, out, "--since", "2025-03-01", "--format", "all") == 0
    assert "OLD-1" not in {r["patient_id"] for r in _csv(out / "queues.csv")}
    assert len(list((out / "fhir").glob("*.json"))) == 4


def test_annual_patients_get_a_result_letter(clinic, tmp_path):
    out = tmp_path / "annual"
    assert _report(clinic, out, "--queue", "annual", "--page-size", "Letter") == 0
    assert not (out / "referrals").exists()
    (letter,) = (out / "letters").glob("*.pdf")
    text = " ".join(pdf_text(letter).split())
    assert "NO REFERRAL NEEDED" in text and "Łukasz Żółć" in text and "12 Mar 2026" in text
    assert "not a diagnosis" in text and "If your eyesight changes" in text


def test_mark_printed_records_the_slips(clinic, tmp_path):
    assert _report(clinic, tmp_path / "o", "--queue", "routine", "--mark-printed") == 0
    with ClinicStore.open(clinic["paths"]) as store:
        printed = {s.patient.patient_id: s.slip_printed_at for s in store.encounters()}
    assert printed["ROU-1"] is not None and printed["URG/../1"] is None


def test_without_a_database_the_command_says_so(tmp_path, capsys):
    assert cli.main(["report", "--data-dir", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "no clinic database" in capsys.readouterr().err
    assert not (tmp_path / "empty" / "clinic.sqlite3").exists()  # nothing created by looking


def test_bad_date_is_a_usage_error(clinic, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _report(clinic, tmp_path / "o", "--since", "12/03/2025")
    assert exit_info.value.code == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err


def test_same_patient_twice_gets_two_files(clinic, tmp_path):
    with ClinicStore.open(clinic["paths"]) as store:
        _screen(store, Patient("ROU-1", NAMES[0]), (
            _with_hash(graded("P004_R.jpg", Eye.RIGHT, MODERATE), photo("P004_R.jpg")),),
            dt.datetime(2025, 3, 13, 10, 0))
    out = tmp_path / "twice"
    assert _report(clinic, out, "--queue", "routine", "--format", "fhir") == 0
    assert len(list((out / "fhir").glob("ROU-1_*.json"))) == 2
