"""Every saved result names the model that made it (issue 20, defect 1): an eye-check
(external-eye) photograph screened at the desk or from the camera folder is recorded
with the eye-check model, never with the DR grader that happens to be loaded, and
results.csv keeps the name stored with the row, not whatever eye-check model is
installed when the file is written. The shipped grader and eye-check model, a real
cataract close-up from ../shared/datasets, a real SQLite file."""

from __future__ import annotations

import csv
import shutil
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from eyescreen_desktop.core.batch import run_batch
from eyescreen_desktop.core.classifier import Classifier
from eyescreen_desktop.core.paths import default_model_dir
from eyescreen_desktop.core.records import Eye, Patient
from eyescreen_desktop.core.screening import ScreenItem
from eyescreen_desktop.core.store import ClinicStore
from eyescreen_desktop.gui.batch_jobs import hot_folder_job
from eyescreen_desktop.gui.worker import ScreeningEngine
from tests.conftest import FUNDUS_DR, SHARED

WAIT_MS = 60_000
CLOSE_UP = SHARED / "external-eye" / "images" / "cataract_cataract_0611.jpg"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with ClinicStore(tmp_path_factory.mktemp("provenance") / "clinic.sqlite3") as s:
        yield s


@pytest.fixture(scope="module")
def grader():
    return Classifier.load(default_model_dir(), backend="onnx", threads=1)


def test_the_desk_records_the_eye_check_model(qtbot, qapp, store, tmp_path):
    engine = ScreeningEngine(store, tmp_path / "captures")
    engine.start(default_model_dir())
    try:
        patient = Patient(f"D{uuid.uuid4().hex[:6]}", "Eye Check")
        with qtbot.waitSignal(engine.encounterSaved, timeout=WAIT_MS, check_params_cb=lambda *a: True) as saved:
            engine.screen_files([ScreenItem(CLOSE_UP, Eye.RIGHT)], patient, visit="v1")
        summary = saved.args[1]
        assert summary.eyes[0].modality == "external_eye"
        assert summary.model.name == "eyescreen-external"
    finally:
        assert engine.stop()


def test_the_camera_folder_records_the_eye_check_model(store, grader, tmp_path):
    camera = tmp_path / "camera"
    camera.mkdir()
    close_up = Path(shutil.copy(CLOSE_UP, camera / "P950_R.jpg"))
    fundus = Path(shutil.copy(FUNDUS_DR / "images" / "P001_L.jpg", camera / "P950_L.jpg"))
    ctx = SimpleNamespace(classifier=grader, store=store, cancelled=lambda: False,
                          progress_or_stop=lambda *a: None, result=lambda r: None)
    outcome = hot_folder_job(camera, [close_up, fundus])(ctx)
    (eid,) = outcome.encounter_ids
    models = {e.eye: m for e, m in _models(store, eid)}
    assert models == {Eye.RIGHT: "eyescreen-external", Eye.LEFT: "eyescreen-dr"}


def _models(store, encounter_id):
    """(eye result, model name) of each photograph of the encounter, from the results table."""
    rows = store._query("SELECT ei.eye AS eye, r.model_name AS model FROM results r JOIN encounter_images ei "
                        "ON ei.encounter_image_id = r.encounter_image_id WHERE ei.encounter_id = ?",
                        (encounter_id,))
    return [(SimpleNamespace(eye=Eye(r["eye"])), r["model"]) for r in rows]


def test_results_csv_names_the_model_that_made_the_row(grader, tmp_path, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(CLOSE_UP, folder / "P951_R.jpg")
    report = run_batch([folder], tmp_path / "out", model=grader, data_dir=tmp_path / "data", pdf=False)
    # the eye-check model is then removed (or replaced): the rows already made keep its name
    for module in ("batch", "screening"):   # (batch.py once looked the installed one up itself)
        monkeypatch.setattr(f"eyescreen_desktop.core.{module}.default_external_model", lambda: None, raising=False)
    run_batch([folder], tmp_path / "out", model=grader, data_dir=tmp_path / "data", pdf=False)
    with open(report.results_csv, newline="", encoding="utf-8") as f:
        (row,) = list(csv.DictReader(f))
    assert (row["modality"], row["model"]) == ("external_eye", "eyescreen-external")
