"""Issue 24 item 2: one patient has one visit a day, whichever folder, path or
workstation a photograph comes from. A photograph already on record for the
patient (same SHA-256) is recognised, not screened again; a new photograph of
the same eye that day replaces the old one as "retaken"; what staff did to the
visit (referred, a clinician's queue, a slip issued) survives any later batch.
Real photographs from ../shared, the batch API, SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import shutil
from pathlib import Path

import pytest

from eyescreen_desktop import cli
from eyescreen_desktop.core.batch import run_batch
from eyescreen_desktop.core.classifier import Classifier
from eyescreen_desktop.core.paths import DataPaths
from eyescreen_desktop.core.records import Eye, Patient, Queue
from eyescreen_desktop.core.store import ClinicStore
from tests.core.screen_inputs import IMAGES, model_with_thresholds

FOLDER = {"P001_L.jpg": "P001_L.jpg", "P001_R.jpg": "P001_R.jpg", "P003_L.jpg": "P003_L.jpg",
          "P003_R.jpg": "P003_R.jpg"}


@pytest.fixture(scope="module")
def classifier(tiny_model_dir, tmp_path_factory) -> Classifier:
    """The tiny model with thresholds it never reaches: graded eyes go to annual."""
    return Classifier.load(model_with_thresholds(tiny_model_dir, tmp_path_factory.mktemp("m") / "annual",
                                                 0.99, 0.99), backend="keras")


@pytest.fixture
def store(tmp_path, database_url):
    with ClinicStore.open(DataPaths(tmp_path / "data"), database_url) as s:
        yield s


def folder(root: Path, names: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for target, source in names.items():
        shutil.copy(IMAGES / source, root / target)
    return root


def screen(store, classifier, inputs: Path, out: Path):
    return run_batch([inputs], out, model=classifier, store=store, pdf=False, batch_size=2, decode_workers=1)


def visits(store, pid: str):
    return [s for s in store.encounters() if s.patient.patient_id == pid]


def test_a_copy_of_a_folder_is_the_same_visit_and_keeps_what_staff_did(tmp_path, store, classifier):
    first = screen(store, classifier, folder(tmp_path / "camera", FOLDER), tmp_path / "out1")
    (p1,) = visits(store, "P001")
    (p3,) = visits(store, "P003")
    assert p1.queue is Queue.ANNUAL and p1.complete
    store.mark_slip_printed(p1.encounter_id, user="nurse")
    store.mark_referred(p1.encounter_id, user="nurse")
    store.override_queue(p3.encounter_id, Queue.ROUTINE, "drusen seen at the slit lamp", user="dr a")

    copy = tmp_path / "usb-stick" / "copy of camera"
    shutil.copytree(tmp_path / "camera", copy)
    second = screen(store, classifier, copy, tmp_path / "out2")

    (again,) = visits(store, "P001")                                    # one visit, still referred
    assert again.encounter_id == p1.encounter_id and again.state == "referred"
    assert again.slip_issued_at is not None and not again.referred_without_slip
    assert len(again.eyes) == 2 and again.retaken == ()                 # recognised, not added twice
    (p3_again,) = visits(store, "P003")
    assert p3_again.encounter_id == p3.encounter_id
    assert p3_again.queue is Queue.ROUTINE and p3_again.override_reason == "drusen seen at the slit lamp"
    assert {s.encounter_id for s in second.encounters} == {p1.encounter_id, p3.encounter_id}
    assert len(first.encounters) == len(second.encounters) == 2
    audit = [a.action for a in store.audit(f"encounter:{p1.encounter_id}")]
    assert audit.count("photograph already on record") == 2

    out = tmp_path / "report"
    assert cli.main(["report", "--data-dir", str(tmp_path / "data"), "--database", store.url, "--out", str(out),
                     "--format", "csv"]) == 0
    with open(out / "queues.csv", newline="", encoding="utf-8-sig") as f:
        listed = [row["patient_id"] for row in csv.DictReader(f)]
    assert sorted(listed) == ["P001", "P003"]                           # each patient once


def test_a_new_photograph_of_the_same_eye_that_day_is_a_retake(tmp_path, store, classifier):
    screen(store, classifier, folder(tmp_path / "morning", FOLDER), tmp_path / "out1")
    (before,) = visits(store, "P001")
    old_right = next(e for e in before.eyes if e.eye is Eye.RIGHT)
    screen(store, classifier, folder(tmp_path / "afternoon", {"P001_R.jpg": "P004_R.jpg"}), tmp_path / "out2")
    (after,) = visits(store, "P001")
    assert after.encounter_id == before.encounter_id
    right = next(e for e in after.eyes if e.eye is Eye.RIGHT)
    assert right.sha256 != old_right.sha256 and [e.sha256 for e in after.retaken] == [old_right.sha256]


def test_the_desk_and_a_batch_share_the_day_visit(tmp_path, store, classifier):
    store.upsert_patient(Patient("P001", "Zoë Ñúñez"))
    desk = store.day_encounter("P001", dt.date.today())
    screen(store, classifier, folder(tmp_path / "camera", FOLDER), tmp_path / "out")
    (visit,) = visits(store, "P001")
    assert visit.encounter_id == desk and len(visit.eyes) == 2
    (batch_visit,) = visits(store, "P003")                              # the batch first, then the desk
    assert store.day_encounter("P003", dt.date.today()) == batch_visit.encounter_id
