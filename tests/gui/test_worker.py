"""The worker thread that owns the model: background loading, requests in and
results out as signals, encounters queued by their newest photo of each eye,
errors reported instead of raised, and cancelling a batch keeps what was done."""

from __future__ import annotations

import datetime as dt
import threading
import uuid

import pytest

from eyescreen_desktop.core.records import Eye, Patient, Queue, Status
from eyescreen_desktop.core.screening import Screener, ScreenItem
from eyescreen_desktop.core.store import ClinicStore, FixedClock
from eyescreen_desktop.gui.worker import ScreeningEngine
from tests.gui.conftest import GOOD_PHOTO

WAIT_MS = 60_000
DAY = dt.date(2026, 3, 16)
"""The clinic's day in these tests (the store's clock), so none drifts across midnight."""


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    clock = FixedClock(dt.datetime.combine(DAY, dt.time(10, 15)))
    with ClinicStore(tmp_path_factory.mktemp("worker") / "clinic.sqlite3", clock=clock) as s:
        yield s


def _engine(qapp, store, model_dir, tmp_path_factory):
    engine = ScreeningEngine(store, tmp_path_factory.mktemp("captures"))
    engine.start(model_dir)
    return engine


@pytest.fixture(scope="module")
def urgent_engine(qapp, store, urgent_model_dir, tmp_path_factory):
    engine = _engine(qapp, store, urgent_model_dir, tmp_path_factory)
    yield engine
    assert engine.stop()


@pytest.fixture(scope="module")
def annual_engine(qapp, store, annual_model_dir, tmp_path_factory):
    engine = _engine(qapp, store, annual_model_dir, tmp_path_factory)
    yield engine
    assert engine.stop()


def _ready(qtbot, engine):
    if not engine.ready:
        qtbot.waitUntil(lambda: engine.ready or bool(engine.model_error), timeout=WAIT_MS)
    assert engine.ready, engine.model_error


def _is(rid):
    return lambda request_id, *_: request_id == rid


def test_requests_posted_while_loading_are_answered_once_ready(qtbot, urgent_engine, good_photo):
    """Nothing blocks: a request can be posted at once; it waits for the model."""
    patient = Patient(f"W{uuid.uuid4().hex[:6]}", "Ada Lovelace")
    with qtbot.waitSignal(urgent_engine.encounterSaved, timeout=WAIT_MS, check_params_cb=lambda *a: True) as saved:
        with qtbot.waitSignal(urgent_engine.eyeScreened, timeout=WAIT_MS) as screened:
            rid = urgent_engine.screen_files([ScreenItem(good_photo, Eye.LEFT)], patient, visit="v1")
    assert urgent_engine.ready and urgent_engine.card.name == "fixed-urgent"
    rid_seen, eye = screened.args
    assert rid_seen == rid
    assert eye.result.status is Status.OK and eye.result.queue is Queue.URGENT
    assert eye.photo is not None and eye.photo.shape == (512, 512, 3)
    assert eye.result.heatmap is not None and float(eye.result.heatmap.max()) > 0
    summary = saved.args[1]
    assert summary.patient.patient_id == patient.patient_id and summary.queue is Queue.URGENT
    assert summary.due_date == dt.date(2026, 3, 30)   # urgent: within 14 days of the visit
    assert urgent_engine.worker.store.get_patient(patient.patient_id).name == "Ada Lovelace"


def test_a_visit_keeps_one_encounter_across_requests(qtbot, urgent_engine, good_photo, blurred_photo):
    _ready(qtbot, urgent_engine)
    patient = Patient(f"W{uuid.uuid4().hex[:6]}")
    first = urgent_engine.screen_files([ScreenItem(blurred_photo, Eye.RIGHT)], patient, visit="v2")
    with qtbot.waitSignal(urgent_engine.encounterSaved, timeout=WAIT_MS, check_params_cb=lambda r, s: r != first) \
            as saved:
        urgent_engine.screen_files([ScreenItem(good_photo, Eye.LEFT)], patient, visit="v2")
    summary = saved.args[1]
    assert sorted(e.eye for e in summary.eyes) == [Eye.LEFT, Eye.RIGHT]
    assert summary.queue is Queue.URGENT   # the most urgent eye decides
    store = urgent_engine.worker.store
    assert len([s for s in store.encounters() if s.patient.patient_id == patient.patient_id]) == 1


def test_a_retake_replaces_the_ungradable_photo_it_retakes(qtbot, annual_engine, good_photo, blurred_photo):
    _ready(qtbot, annual_engine)
    patient = Patient(f"W{uuid.uuid4().hex[:6]}")
    with qtbot.waitSignal(annual_engine.encounterSaved, timeout=WAIT_MS) as saved:
        annual_engine.screen_files([ScreenItem(blurred_photo, Eye.RIGHT)], patient, visit="v3")
    assert saved.args[1].queue is Queue.REVIEW
    with qtbot.waitSignal(annual_engine.encounterSaved, timeout=WAIT_MS) as saved:
        annual_engine.screen_files([ScreenItem(good_photo, Eye.RIGHT)], patient, visit="v3")
    retaken = saved.args[1]
    assert [(e.eye, e.status) for e in retaken.eyes] == [(Eye.RIGHT, Status.OK)]   # the retake replaced it
    assert retaken.queue is Queue.REVIEW and not retaken.complete                  # one eye is never annual
    with qtbot.waitSignal(annual_engine.encounterSaved, timeout=WAIT_MS) as saved:
        annual_engine.screen_files([ScreenItem(GOOD_PHOTO.with_name("P001_R.jpg"), Eye.LEFT)], patient, visit="v3")
    assert saved.args[1].queue is Queue.ANNUAL and saved.args[1].complete


def test_ungradable_photo_goes_to_review_with_advice(qtbot, annual_engine, blurred_photo):
    _ready(qtbot, annual_engine)
    with qtbot.waitSignal(annual_engine.eyeScreened, timeout=WAIT_MS) as screened:
        annual_engine.screen_files([ScreenItem(blurred_photo, Eye.RIGHT)])
    result = screened.args[1].result
    assert result.status is Status.UNGRADABLE and result.queue is Queue.REVIEW
    assert "blurred" in result.quality.reasons and result.message


def test_captured_frame_is_kept_as_a_file_and_screened(qtbot, urgent_engine, good_rgb):
    _ready(qtbot, urgent_engine)
    with qtbot.waitSignal(urgent_engine.eyeScreened, timeout=WAIT_MS) as screened:
        urgent_engine.screen_frame(good_rgb, Eye.LEFT, Patient("W-CAM"), visit="cam")
    eye = screened.args[1]
    assert eye.result.eye is Eye.LEFT and eye.result.status is Status.OK
    assert eye.result.path.endswith("-L.jpg") and eye.encounter_id
    assert urgent_engine.worker.store.image_file(eye.result.sha256) is not None


def test_failing_job_is_reported_and_the_worker_goes_on(qtbot, urgent_engine, good_photo):
    _ready(qtbot, urgent_engine)

    def broken(ctx):
        raise RuntimeError("disk on fire")

    with qtbot.waitSignal(urgent_engine.failed, timeout=WAIT_MS) as failed:
        rid = urgent_engine.run_batch(broken)
    assert failed.args[0] == rid and "disk on fire" in failed.args[1]
    with qtbot.waitSignal(urgent_engine.eyeScreened, timeout=WAIT_MS):
        urgent_engine.screen_files([ScreenItem(good_photo)])


def test_cancelled_batch_keeps_what_was_done(qtbot, urgent_engine, good_photo):
    _ready(qtbot, urgent_engine)
    gate = threading.Event()
    items = [ScreenItem(good_photo)] * 6

    def job(ctx):
        done = 0
        for result in Screener(ctx.classifier, batch_size=1).screen(items):
            done += 1
            ctx.result(result)
            ctx.progress(done, len(items), "photo")
            gate.wait(WAIT_MS / 1000)   # hold until the test has pressed Cancel
            if ctx.cancelled():
                break
        return done

    with qtbot.waitSignal(urgent_engine.progress, timeout=WAIT_MS):
        rid = urgent_engine.run_batch(job)
    urgent_engine.cancel(rid)
    with qtbot.waitSignal(urgent_engine.requestDone, timeout=WAIT_MS, check_params_cb=_is(rid)) as done:
        with qtbot.waitSignal(urgent_engine.batchDone, timeout=WAIT_MS) as outcome:
            gate.set()
    assert outcome.args == [rid, 1]
    assert done.args == [rid, True]
    assert not urgent_engine.busy


def test_a_job_stopped_by_the_cores_cancel_is_a_cancel_not_a_failure(qtbot, urgent_engine):
    """One BatchCancelled: what core.batch raises when Cancel is pressed ends a window
    job as cancelled (batchDone with None), never as an error dialog."""
    from eyescreen_desktop.core import batch

    _ready(qtbot, urgent_engine)
    failures = []
    urgent_engine.failed.connect(lambda rid, message: failures.append(message))

    def job(ctx):
        batch._check(lambda: True)     # what run_batch does between steps once cancelled

    with qtbot.waitSignal(urgent_engine.batchDone, timeout=WAIT_MS) as outcome:
        rid = urgent_engine.run_batch(job)
    assert outcome.args == [rid, None]
    assert failures == []


def test_missing_model_is_reported_and_requests_get_a_clear_failure(qtbot, qapp, store, tmp_path, good_photo):
    engine = ScreeningEngine(store, tmp_path / "captures")
    try:
        with qtbot.waitSignal(engine.modelFailed, timeout=WAIT_MS) as failed:
            engine.start(tmp_path / "no-model")
        assert "no model card" in failed.args[0] and "--model" in failed.args[0]
        with qtbot.waitSignal(engine.failed, timeout=WAIT_MS) as request_failed:
            engine.screen_files([ScreenItem(good_photo)])
        assert "No photograph can be graded" in request_failed.args[1]
    finally:
        assert engine.stop()


def test_the_worker_does_not_queue_again_what_save_result_queued(qtbot, urgent_engine, good_photo, monkeypatch):
    """save_result queues by the one rule in the result's transaction; the worker
    only reads the visit back (no second requeue, no second audit row)."""
    _ready(qtbot, urgent_engine)
    store = urgent_engine.worker.store
    requeued: list[str] = []
    monkeypatch.setattr(store, "requeue_encounter", lambda encounter_id, *a, **k: requeued.append(encounter_id))
    patient = Patient(f"W{uuid.uuid4().hex[:6]}")
    with qtbot.waitSignal(urgent_engine.encounterSaved, timeout=WAIT_MS) as saved:
        urgent_engine.screen_files([ScreenItem(good_photo, Eye.LEFT)], patient, visit="v9")
    summary = saved.args[1]
    assert requeued == [] and summary.queue is Queue.URGENT
    queued = [a for a in store.audit(f"encounter:{summary.encounter_id}") if a.action == "encounter queued"]
    assert len(queued) == 1


def test_a_patient_screened_twice_in_a_day_has_one_visit(qtbot, urgent_engine, good_photo):
    """Two desk visits of the same patient on one day (another room, or after Next
    patient) join the day's encounter instead of starting a second one."""
    _ready(qtbot, urgent_engine)
    patient = Patient(f"W{uuid.uuid4().hex[:6]}")
    ids = []
    for visit in ("room-1", "room-2"):   # this patient's saves only: the engine is shared with other tests
        with qtbot.waitSignal(urgent_engine.encounterSaved, timeout=WAIT_MS,
                              check_params_cb=lambda _rid, s: s.patient.patient_id == patient.patient_id) as saved:
            urgent_engine.screen_files([ScreenItem(good_photo, Eye.LEFT)], patient, visit=visit)
        ids.append(saved.args[1].encounter_id)
    assert ids[0] == ids[1]
