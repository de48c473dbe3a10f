"""Issue 24 item 2 through the camera folder: photographs arriving in a watched
folder join the patient's visit of the day (started by a batch of a copy of the
same photographs) and never undo "referred". The job runs synchronously here,
as the worker thread runs it; real photographs, SQLite and PostgreSQL."""

from __future__ import annotations

import shutil

import pytest

from eyescreen_desktop.core.batch import run_batch
from eyescreen_desktop.core.classifier import Classifier
from eyescreen_desktop.core.paths import DataPaths
from eyescreen_desktop.core.records import Eye
from eyescreen_desktop.core.store import ClinicStore
from eyescreen_desktop.gui.batch_jobs import hot_folder_job
from eyescreen_desktop.gui.worker import BatchContext
from tests.core.screen_inputs import IMAGES, model_with_thresholds


@pytest.fixture(scope="module")
def classifier(tiny_model_dir, tmp_path_factory) -> Classifier:
    return Classifier.load(model_with_thresholds(tiny_model_dir, tmp_path_factory.mktemp("m") / "annual",
                                                 0.99, 0.99), backend="keras")


@pytest.fixture
def store(tmp_path, database_url):
    with ClinicStore.open(DataPaths(tmp_path / "data"), database_url) as s:
        yield s


def test_the_camera_folder_joins_the_day_visit_and_keeps_referred(tmp_path, store, classifier):
    batch = tmp_path / "batch"
    batch.mkdir()
    for name in ("P001_L.jpg", "P001_R.jpg"):
        shutil.copy(IMAGES / name, batch / name)
    run_batch([batch], tmp_path / "out", model=classifier, store=store, pdf=False, batch_size=2, decode_workers=1)
    (visit,) = store.encounters()
    store.mark_referred(visit.encounter_id, user="nurse")

    camera = tmp_path / "camera"
    camera.mkdir()
    shutil.copy(IMAGES / "P001_L.jpg", camera / "P001_L.jpg")        # the same photograph again
    shutil.copy(IMAGES / "P004_R.jpg", camera / "P001_R.jpg")        # a new one of the right eye: a retake
    context = BatchContext(classifier, store, lambda: False, lambda *a: None, lambda r: None)
    outcome = hot_folder_job(camera, sorted(camera.iterdir()))(context)

    (after,) = store.encounters()
    assert after.encounter_id == visit.encounter_id and outcome.encounter_ids == (visit.encounter_id,)
    assert after.state == "referred"
    assert len(after.eyes) == 2 and [e.eye for e in after.retaken] == [Eye.RIGHT]
