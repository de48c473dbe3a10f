"""Batch panel: a folder of real photographs screened on the worker thread and
cancelled part-way, resumed, and a camera hot folder fed file by file."""

from __future__ import annotations

import csv
import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from eyescreen_desktop.core.batch import batch_key, resolve_inputs
from eyescreen_desktop.core.paths import data_paths
from eyescreen_desktop.core.records import Status
from eyescreen_desktop.core.store import ClinicStore
from eyescreen_desktop.gui.batch_panel import BatchPanel, HotFolderWatcher
from eyescreen_desktop.gui.messages import Messages
from eyescreen_desktop.gui.queues import QueuesWidget
from eyescreen_desktop.gui.worker import ScreeningEngine
from tests.conftest import FUNDUS_DR

WAIT_MS = 60_000
PATIENTS = 20   # 40 photographs: enough that Cancel lands part-way


@pytest.fixture(scope="module")
def clinic(tmp_path_factory):
    with ClinicStore.open(data_paths(tmp_path_factory.mktemp("data"))) as store:
        yield store


@pytest.fixture(scope="module")
def engine(qapp, clinic, tiny_model_dir, tmp_path_factory):
    """The window's real worker thread with the tiny model (loaded once for the module)."""
    engine = ScreeningEngine(clinic, tmp_path_factory.mktemp("captures"))
    engine.start(tiny_model_dir)
    yield engine
    assert engine.stop()


@pytest.fixture
def panel(qtbot, engine, clinic, tmp_path):
    widget = BatchPanel(engine, clinic, paths=data_paths(tmp_path / "out"), messages=Messages(dialogs=False))
    qtbot.addWidget(widget)
    yield widget
    widget.stop_watching()
    if widget.running:  # never leave a job on the shared worker
        with qtbot.waitSignal(widget.storeChanged, timeout=WAIT_MS):
            widget.cancel()


def _photos(folder: Path, patients: list[str]) -> list[Path]:
    """Real photographs copied from ../shared (never into the repository)."""
    folder.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy(FUNDUS_DR / "images" / f"{p}_{eye}.jpg", folder)) for p in patients for eye in "LR"]


def _patient_ids(count: int) -> list[str]:
    names = sorted({p.name.split("_")[0] for p in (FUNDUS_DR / "images").glob("*_L.jpg")
                    if (FUNDUS_DR / "images" / p.name.replace("_L.", "_R.")).exists()})
    assert len(names) >= count, "not enough patients with both eyes in ../shared/datasets/fundus-dr"
    return names[:count]


def test_folder_batch_cancel_keeps_what_was_done_then_resumes(qtbot, panel, clinic, engine, tmp_path):
    folder = tmp_path / "clinic day"
    patients = _patient_ids(PATIENTS)
    _photos(folder, patients)
    queues = QueuesWidget(clinic)
    qtbot.addWidget(queues)
    panel.storeChanged.connect(queues.refresh)          # as the main window wires it
    panel.pdf_box.setChecked(False)
    panel.folder_edit.setText(str(folder))
    finished: list[object] = []
    panel.batchFinished.connect(finished.append)

    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    assert panel.running and panel.cancel_button.isEnabled() and not panel.start_button.isEnabled()
    qtbot.waitUntil(lambda: panel.progress.value() >= 3, timeout=WAIT_MS)
    with qtbot.waitSignal(panel.storeChanged, timeout=WAIT_MS):
        qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)

    done = panel._done
    assert finished == [None] and not panel.running and panel.start_button.isEnabled()
    assert 3 <= done < 2 * PATIENTS, "cancel should land part-way"
    assert f"Cancelled after {done} of {2 * PATIENTS}" in panel.status.text()
    key = batch_key(resolve_inputs([folder]), "icdr-ada", engine.card.info.sha256)
    kept = clinic.batch_done_files(key)
    assert len(kept) == done                                  # every photograph reported done is saved
    kept_patients = {f.split("_")[0] for f in kept}
    queued = clinic.encounters()
    assert {s.patient.patient_id for s in queued} == kept_patients   # ... and already in the queues
    assert sum(clinic.queue_counts().values()) == len(kept_patients)
    tab_total = sum(int(queues.tabs.tabText(i).split("(")[1].rstrip(")")) for i in range(4))
    assert tab_total == len(kept_patients)                    # the queue views were refreshed

    with qtbot.waitSignal(panel.batchFinished, timeout=WAIT_MS) as signal:
        qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    report = signal.args[0]
    assert (report.files, report.patients, report.resumed) == (2 * PATIENTS, PATIENTS, True)
    assert report.screened == 2 * PATIENTS - done             # only the rest was screened
    assert len(clinic.encounters()) == PATIENTS               # nobody counted twice
    with open(report.results_csv, newline="", encoding="utf-8") as f:
        assert len(list(csv.DictReader(f))) == 2 * PATIENTS
    assert "Done: 40 photographs of 20 patients" in panel.status.text()
    qtbot.waitUntil(lambda: sum(int(queues.tabs.tabText(i).split("(")[1].rstrip(")")) for i in range(4))
                    == PATIENTS)


def test_hot_folder_screens_a_new_photo_once_the_camera_finished_writing(qtbot, panel, clinic, tmp_path):
    camera = tmp_path / "camera"
    patients = _patient_ids(PATIENTS + 3)[PATIENTS:]
    for old in _photos(camera, patients[:1]):                # there long before watching: left alone
        os.utime(old, (time.time() - 3600, time.time() - 3600))
    panel.watcher.timer.setInterval(20)
    panel.watcher.settle_s = 3600                            # nothing settles until the test says so
    assert panel.watch(camera) and panel.watching
    newcomer = patients[1]
    data = (FUNDUS_DR / "images" / f"{newcomer}_R.jpg").read_bytes()
    target = camera / f"{newcomer}_R.jpg"
    target.write_bytes(data[: len(data) // 3])               # the camera is still writing
    qtbot.waitUntil(lambda: target in panel.watcher.pending, timeout=WAIT_MS)
    for _ in range(3):                                       # polls see it, none hands it on
        _poll(qtbot, panel.watcher)
    assert target in panel.watcher.pending and not panel.watcher.handed
    panel.watcher.settle_s = 0.2
    with qtbot.waitSignal(panel.hotFolderScreened, timeout=WAIT_MS) as signal:
        with open(target, "ab") as f:                        # ... and finishes
            f.write(data[len(data) // 3:])
    outcome = signal.args[0]
    assert [(rel, pid) for rel, pid, _ in outcome.files] == [(target.name, newcomer)]
    assert outcome.files[0][2].status is not Status.ERROR     # graded whole, not half-copied
    assert outcome.files[0][2].sha256 == clinic.encounter_summary(outcome.encounter_ids[0]).eyes[0].sha256
    assert clinic.get_patient(patients[0]) is None            # the photograph already there was not screened

    with qtbot.waitSignal(panel.hotFolderScreened, timeout=WAIT_MS) as signal:
        shutil.copy(FUNDUS_DR / "images" / f"{newcomer}_L.jpg", camera)
    assert signal.args[0].encounter_ids == outcome.encounter_ids   # the fellow eye joins the same visit
    summary = clinic.encounter_summary(outcome.encounter_ids[0])
    assert sorted(e.eye.value for e in summary.eyes) == ["L", "R"] and summary.complete
    assert summary in clinic.encounters(queue=summary.queue)
    assert panel.log_list.count() >= 2 and newcomer in panel.log_list.item(0).text()


def _poll(qtbot, watcher: HotFolderWatcher) -> None:
    """One poll, waited for (it runs on the watcher's scan thread)."""
    with qtbot.waitSignal(watcher.scanned, timeout=WAIT_MS):
        watcher.check()


def test_watcher_reports_complete_files_until_released(qtbot, tmp_path):
    (tmp_path / "old.jpg").write_bytes(b"there before")
    os.utime(tmp_path / "old.jpg", (time.time() - 3600, time.time() - 3600))
    watcher = HotFolderWatcher(interval_ms=3_600_000)         # polls driven by hand below
    watcher.settle_s = 0                                      # complete = unchanged between two polls
    reported: list[list[Path]] = []
    watcher.filesReady.connect(reported.append)
    with qtbot.waitSignal(watcher.scanned, timeout=WAIT_MS):
        watcher.start(tmp_path)
    (tmp_path / "new.jpg").write_bytes(b"12345")
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a photograph")
    _poll(qtbot, watcher)
    assert reported == []                                     # seen once: not yet known to be complete
    _poll(qtbot, watcher)
    assert reported == [[tmp_path / "new.jpg"]]
    _poll(qtbot, watcher)
    assert reported == [[tmp_path / "new.jpg"]]               # not twice while its job runs; the empty file never
    watcher.release([tmp_path / "new.jpg"])                   # the job failed: nothing on record
    _poll(qtbot, watcher)
    assert reported == [[tmp_path / "new.jpg"]] * 2           # so it is tried again
    watcher.stop()


def test_the_poll_lists_the_folder_off_the_gui_thread(qtbot, tmp_path, monkeypatch):
    from eyescreen_desktop.gui import batch_panel

    threads = []
    real = batch_panel.discover
    monkeypatch.setattr(batch_panel, "discover", lambda roots: threads.append(threading.current_thread()) or
                        real(roots))
    watcher = HotFolderWatcher(interval_ms=3_600_000)
    with qtbot.waitSignal(watcher.scanned, timeout=WAIT_MS):
        watcher.start(tmp_path)
    _poll(qtbot, watcher)
    watcher.stop()
    assert threads and threading.main_thread() not in threads


def test_watcher_says_when_the_folder_disappears(qtbot, tmp_path):
    folder = tmp_path / "share"
    folder.mkdir()
    watcher = HotFolderWatcher(interval_ms=3_600_000)
    with qtbot.waitSignal(watcher.scanned, timeout=WAIT_MS):
        watcher.start(folder)
    folder.rmdir()
    with qtbot.waitSignal(watcher.problem, timeout=WAIT_MS) as signal:
        watcher.check()
    assert str(folder) in signal.args[0] and "connected" in signal.args[0]
    with qtbot.assertNotEmitted(watcher.problem):
        _poll(qtbot, watcher)                                 # said once, not every second
    watcher.stop()


def test_camera_folder_work_comes_from_the_database(qtbot, panel, clinic, tmp_path, monkeypatch):
    """A photograph that arrived while the app was closed is screened at the next
    start; a failed job is retried; stopping loses nothing."""
    from eyescreen_desktop.gui import batch_jobs

    camera = tmp_path / "camera"
    camera.mkdir()
    panel.watcher.timer.setInterval(20)
    assert panel.watch(camera)                                # first watch: the folder's start is recorded
    panel.stop_watching()                                     # ... the app is closed
    patient = _patient_ids(PATIENTS + 6)[PATIENTS + 4]
    (arrived,) = _photos(camera, [patient])[:1]               # a photograph lands meanwhile
    real_job = batch_jobs.hot_folder_job
    attempts = []

    def failing_once(*args, **kwargs):
        job = real_job(*args, **kwargs)

        def run(ctx):
            attempts.append(list(args[1]))
            if len(attempts) == 1:
                raise OSError("database is locked")           # the first job fails before saving anything
            return job(ctx)
        return run

    monkeypatch.setattr("eyescreen_desktop.gui.batch_panel.hot_folder_job", failing_once)
    with qtbot.waitSignal(panel.hotFolderScreened, timeout=WAIT_MS) as signal:
        assert panel.watch(camera)                            # next start: found from the database
    assert len(attempts) == 2 and arrived in attempts[0]      # failed once, retried
    assert arrived.name in {rel for rel, _pid, _r in signal.args[0].files}
    assert clinic.get_patient(patient) is not None
    assert clinic.hot_folder_done(str(camera.resolve()), [arrived.name]) == {arrived.name}
    assert "tried again" in panel.messages.history[-1].text or any(
        "tried again" in m.text for m in panel.messages.history)


def test_a_folder_that_does_not_exist_is_explained(qtbot, panel, tmp_path):
    assert panel.screen_folder(tmp_path / "nowhere") is None
    assert not panel.running
    assert "is not a folder" in panel.messages.history[-1].text
    assert not panel.watch(tmp_path / "nowhere") and not panel.watching


FRESH_PROCESS_BATCH = r"""
import sys
from pathlib import Path
from PySide6.QtCore import QEventLoop, QTimer
from PySide6.QtWidgets import QApplication
app = QApplication([])
from eyescreen_desktop.core.paths import data_paths
from eyescreen_desktop.core.store import ClinicStore
from eyescreen_desktop.gui.batch_panel import BatchPanel
from eyescreen_desktop.gui.worker import ScreeningEngine
model, folder, data = map(Path, sys.argv[1:4])
assert "tensorflow" not in sys.modules
store = ClinicStore.open(data_paths(data))
engine = ScreeningEngine(store, data / "captures")
engine.start(model)
panel = BatchPanel(engine, store, paths=data_paths(data))
panel.pdf_box.setChecked(False)
reports = []
panel.batchFinished.connect(reports.append)
loop = QEventLoop()
panel.batchFinished.connect(lambda _r: loop.quit())
QTimer.singleShot(90_000, loop.quit)
panel.screen_folder(folder)
loop.exec()
engine.stop()
print("patients", reports[0].patients if reports and reports[0] else None, flush=True)
"""


def test_folder_batch_in_a_fresh_process_like_the_real_app(tiny_model_dir, tmp_path):
    """In-process tests import Keras on the main thread (the model fixture), which hides
    crashes of the real app, where TensorFlow is imported on the worker thread only."""
    import subprocess
    import sys

    folder = tmp_path / "photos"
    _photos(folder, _patient_ids(4))
    run = subprocess.run([sys.executable, "-c", FRESH_PROCESS_BATCH, str(tiny_model_dir), str(folder),
                          str(tmp_path / "data")], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"})
    assert run.returncode == 0, run.stderr[-2000:]
    assert "patients 4" in run.stdout


def test_the_camera_folder_files_a_photograph_without_an_id_under_one_heading(qtbot, panel, clinic, tmp_path):
    """Issue 24 item 11: ``IMG_0001.jpg`` from the camera is screened but filed under
    "no patient ID in the file name" with what to do, never as a patient "IMG_0001"."""
    from eyescreen_desktop.domain.eyes import NO_PATIENT_ID

    camera = tmp_path / "camera"
    camera.mkdir()
    panel.watcher.timer.setInterval(20)
    panel.watcher.settle_s = 0.2
    assert panel.watch(camera)
    with qtbot.waitSignal(panel.hotFolderScreened, timeout=WAIT_MS) as signal:
        shutil.copy(FUNDUS_DR / "images" / "P001_R.jpg", camera / "IMG_0001.jpg")
    outcome = signal.args[0]
    assert [(rel, pid) for rel, pid, _ in outcome.files] == [("IMG_0001.jpg", NO_PATIENT_ID)]
    assert outcome.files[0][2].status is Status.OK                 # still screened
    assert clinic.get_patient("IMG_0001") is None
    assert clinic.encounter_summary(outcome.encounter_ids[0]).patient.patient_id == NO_PATIENT_ID
    logged = panel.log_list.item(0).text()                          # newest first
    assert f"IMG_0001.jpg: {NO_PATIENT_ID}" in logged and "PATIENTID_R.jpg" in logged
