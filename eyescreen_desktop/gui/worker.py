"""The one worker thread that owns the grading model.

Why a single worker: the model is big, slow to load and not thread-safe, so
exactly one thread loads it (in the background at start-up, importing
TensorFlow there and nowhere else in the GUI) and runs every request on it, one
after the other. The window talks to it only through queued signals:

* in: :class:`ScreeningEngine` methods (``screen_files``, ``screen_frame``,
  ``run_batch``) post requests; ``cancel(request_id)`` sets the request's
  cancel flag, which the worker checks between photographs;
* out: ``modelReady`` / ``modelFailed``, ``eyeScreened`` (one per photograph),
  ``encounterSaved``, ``progress``, ``failed`` and ``requestDone``.

The worker catches every exception and turns it into ``failed`` with a message
for staff; it never touches a widget (Picard's ``util/thread.py``, superqt's
thread workers). Results of desk screening are written to the clinic database
here too, so no database write or fsync ever blocks the window.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import itertools
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PySide6.QtCore import QCoreApplication, QObject, QRunnable, QThread, QThreadPool, Signal, Slot

from ..core.cancel import BatchCancelled
from ..core.classifier import Classifier, ModelCard, ModelError
from ..core.records import EncounterSummary, Eye, EyeResult, OperatingPoint, Patient, Status
from ..core.recording import record
from ..core.screening import Screener, ScreenItem, site_gate

log = logging.getLogger(__name__)

BACKGROUND_THREADS = 2    # the small pool for GUI chores (photo decoding, slip previews, database reads)
PHOTO_SIDE = 512          # the display crop sent with each result (heat map framing)
STOP_WAIT_MS = 60_000     # longest wait for the worker at shutdown (a model still loading)


@dataclass(frozen=True)
class ScreenRequest:
    """Screen photographs for a patient's encounter.

    ``patient`` set: the patient is saved and the results go to the encounter of
    ``visit`` (a key the window makes per visit; the worker starts the encounter on
    the visit's first photograph and reuses it after, even for requests already
    queued), or to ``encounter_id`` when reopening one from the queues.
    ``patient`` None: screened only, nothing saved."""

    request_id: int
    items: tuple[ScreenItem, ...]
    patient: Patient | None = None
    visit: str = ""
    encounter_id: str | None = None
    protocol: str = "icdr-ada"
    operating_point: OperatingPoint | str | None = None
    heatmaps: bool = True
    cancel: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)


@dataclass(frozen=True)
class FrameRequest:
    """A camera frame (RGB uint8) to keep as a file and screen like any photograph."""

    request_id: int
    rgb: np.ndarray = field(repr=False)
    eye: Eye
    patient: Patient | None = None
    visit: str = ""
    encounter_id: str | None = None
    protocol: str = "icdr-ada"
    operating_point: OperatingPoint | str | None = None
    cancel: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)


@dataclass
class BatchContext:
    """What a batch job gets on the worker thread: the loaded model, the store,
    and the callbacks that talk back to the window."""

    classifier: Classifier
    store: Any
    cancelled: Callable[[], bool]
    progress: Callable[[int, int, str], None]
    result: Callable[[EyeResult], None]

    def progress_or_stop(self, done: int, total: int, what: str = "") -> None:
        """Report progress, then raise BatchCancelled if Cancel was pressed: pass
        this as ``run_batch(progress=...)``, which has no cancel flag of its own."""
        self.progress(done, total, what)
        if self.cancelled():
            raise BatchCancelled()


SIGNED_IN = object()
"""``ScreeningEngine.run_batch``'s default person: whoever is signed in when it is asked."""


@dataclass(frozen=True)
class BatchRequest:
    """A batch job: ``job(context)`` runs on the worker thread (typically
    ``core.batch.run_batch`` with the context's classifier, store, progress and
    cancel flag); its return value comes back in ``batchDone``."""

    request_id: int
    job: Callable[[BatchContext], Any]
    cancel: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)
    person: Any = None   # who started it: the batch runs as them even after Switch person


@dataclass(frozen=True)
class UpdateRequest:
    """``change(store)`` on a saved encounter of ``patient_id`` (e.g. ``store.set_photo_eye``);
    the encounter's new summary comes back in ``encounterSaved``."""

    request_id: int
    encounter_id: str
    change: Callable[[Any], Any]
    patient_id: str = ""
    cancel: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)


@dataclass(frozen=True)
class ScreenedEye:
    """One photograph's result as the window shows it: the engine's result, a
    crop of the field of view framed like the heat map, and its encounter."""

    result: EyeResult
    photo: np.ndarray | None = field(default=None, repr=False)
    encounter_id: str | None = None


def _guarded(method: Callable[..., None]) -> Callable[..., None]:
    """Run a request; any exception becomes ``failed`` + ``requestDone``."""

    @functools.wraps(method)
    def wrapper(self: "ScreeningWorker", request: Any) -> None:
        rid = getattr(request, "request_id", -1)
        try:
            method(self, request)
        except Exception as exc:  # noqa: BLE001 - the worker must survive anything
            log.exception("request %s failed", rid)
            self.failed.emit(rid, _staff_message(exc))
            self.requestDone.emit(rid, False)

    return wrapper


def _staff_message(exc: Exception) -> str:
    """Our own errors already say what to do; others get a generic next step."""
    if isinstance(exc, (ModelError, ValueError, KeyError, OSError)):
        return str(exc).strip("'\"")
    return f"{type(exc).__name__}: {exc}. Try again; if it happens again, restart EyeScreen."


class ScreeningWorker(QObject):
    """Lives on the worker thread; owns the classifier. Never touches widgets."""

    modelReady = Signal(object)          # ModelCard
    modelFailed = Signal(str)            # what went wrong and what to do
    eyeScreened = Signal(int, object)    # request_id, ScreenedEye
    encounterSaved = Signal(int, object)  # request_id, EncounterSummary
    progress = Signal(int, int, int, str)  # request_id, done, total (0 = unknown), what
    failed = Signal(int, str)            # request_id (-1: none), message for staff
    requestDone = Signal(int, bool)      # request_id, cancelled
    batchDone = Signal(int, object)      # request_id, the batch job's return value

    def __init__(self, store: Any, captures_dir: Path, backend: str = "auto"):
        super().__init__()
        self.store = store
        self.captures_dir = Path(captures_dir)
        self.backend = backend
        self.classifier: Classifier | None = None
        self._visits: dict[str, tuple[str, str]] = {}   # the window's visit key -> (encounter ID, patient ID)
        self.load_error = "the model is still loading"

    # ------------------------------------------------------------------ model

    @Slot(str)
    def loadModel(self, path: str) -> None:
        """Load and warm up the model (TensorFlow is imported here, on this thread)."""
        try:
            classifier = Classifier.load(Path(path), backend=self.backend)
            size = classifier.input_size
            # trace both compiled functions now, on this thread: a first trace later (a batch's
            # plain predict) crashed the process when TensorFlow was imported on this thread
            warm = np.zeros((1, size, size, 3), np.float32)
            classifier.predict_with_heatmaps(warm)
            classifier.predict(warm)
            # the gate and the eye-check model now too: a damaged one refuses to grade, said on screen
            # at start (ModelError), not found out at the first photograph
            from ..core.external_eye import default_external_model
            from ..core.screening import default_gate

            default_gate()
            default_external_model()
        except Exception as exc:  # noqa: BLE001 - any failure here is logged or reported, and must not stop the rest
            if isinstance(exc, ModelError):
                log.error("model %s could not be loaded: %s", path, exc)
            else:
                log.exception("model %s could not be loaded", path)
            self.load_error = _staff_message(exc) if isinstance(exc, ModelError) else \
                f"the model in {path} could not be loaded ({exc}): reinstall it or choose another in Settings"
            self.modelFailed.emit(self.load_error)
            return
        self.classifier = classifier
        self.modelReady.emit(classifier.card)

    def _model(self) -> Classifier:
        if self.classifier is None:
            raise ModelError(f"No photograph can be graded: {self.load_error}")
        return self.classifier

    # ------------------------------------------------------------------ desk screening

    @Slot(object)
    @_guarded
    def screenFiles(self, request: ScreenRequest) -> None:
        """Screen files (opened or dropped) for one patient's encounter."""
        self._screen(request, request.items, request.heatmaps)

    @Slot(object)
    @_guarded
    def screenFrame(self, request: FrameRequest) -> None:
        """Keep a camera frame as a JPEG in the captures folder, then screen it."""
        path = save_capture(request.rgb, request.eye, self.captures_dir)
        self._screen(request, (ScreenItem(path, request.eye),), True)

    def _screen(self, request: ScreenRequest | FrameRequest, items: Sequence[ScreenItem], heatmaps: bool) -> None:
        screener = Screener(self._model(), request.protocol, request.operating_point or None, decode_workers=1,
                            batch_size=4, heatmaps=heatmaps, gate=site_gate(self.store.applied_quality_threshold()))
        encounter_id = None
        if request.patient is not None:
            encounter_id = self._encounter(request, screener.protocol.name)
        cancelled = self._run(request, screener, items, encounter_id)
        if encounter_id is not None:
            self.encounterSaved.emit(request.request_id, self._queue_encounter(encounter_id))
        self.requestDone.emit(request.request_id, cancelled)

    def _run(self, request: Any, screener: Screener, items: Sequence[ScreenItem],
             encounter_id: str | None) -> bool:
        """Screen and save each photograph; True when cancelled part-way."""
        results = screener.screen(items)
        try:
            for done, result in enumerate(results, 1):
                if encounter_id is not None:
                    record(self.store, screener, encounter_id, result)
                self.eyeScreened.emit(request.request_id, ScreenedEye(result, display_photo(result), encounter_id))
                self.progress.emit(request.request_id, done, len(items), Path(result.path).name)
                if request.cancel.is_set() and done < len(items):
                    return True
        finally:
            results.close()
        return False

    def _encounter(self, request: ScreenRequest | FrameRequest, protocol: str) -> str:
        """The encounter of the request's patient: the one named, else the visit's,
        else the patient's visit of the day (one per patient and day, whichever
        workstation started it first; :meth:`ClinicStore.day_encounter`). A request whose
        patient is not the encounter's is refused before anything is saved, so a
        photograph can never land under another patient."""
        patient = request.patient
        assert patient is not None
        encounter_id = request.encounter_id
        if encounter_id is None and request.visit in self._visits:
            encounter_id, owner = self._visits[request.visit]
        elif encounter_id is not None:
            owner = self.store.encounter_patient_id(encounter_id)
        if encounter_id is not None and owner != patient.patient_id:
            raise ValueError(f"Refused: this visit is patient {owner}'s, so the photograph was not saved "
                             f"under {patient.patient_id}. Press Ctrl+N for the next patient, then add it again.")
        self.store.upsert_patient(patient)
        if encounter_id is None:
            # the patient's visit of the day: another workstation may have started it already
            encounter_id = self.store.day_encounter(patient.patient_id, protocol=protocol)
        if request.visit:
            self._visits[request.visit] = (encounter_id, patient.patient_id)
        return encounter_id

    def _queue_encounter(self, encounter_id: str) -> EncounterSummary:
        """The visit as saved. Not queued again here: ``save_result`` queued it by the
        one rule (``protocol.encounter_decision``) in the result's own transaction,
        and every change to the rule's inputs (eye side, missing eye) re-queues in its own."""
        return self.store.encounter_summary(encounter_id)

    @Slot(object)
    @_guarded
    def updateEncounter(self, request: "UpdateRequest") -> None:
        """A change staff made to a saved visit (side of a photograph, why an eye was
        not photographed), written here after any photograph still being saved."""
        owner = self.store.encounter_patient_id(request.encounter_id)
        if request.patient_id and owner != request.patient_id:
            raise ValueError(f"Refused: this visit is patient {owner}'s, not {request.patient_id}'s.")
        request.change(self.store)
        self.encounterSaved.emit(request.request_id, self._queue_encounter(request.encounter_id))
        self.requestDone.emit(request.request_id, False)

    # ------------------------------------------------------------------ batch

    @Slot(object)
    @_guarded
    def runBatch(self, request: BatchRequest) -> None:
        """Run a batch job with the loaded model; cancelling keeps what was done."""
        rid = request.request_id
        context = BatchContext(
            classifier=self._model(), store=self.store, cancelled=request.cancel.is_set,
            progress=lambda done, total, what="": self.progress.emit(rid, int(done), int(total), str(what)),
            result=lambda result: self.eyeScreened.emit(rid, ScreenedEye(result)),
        )
        try:
            acting = getattr(self.store, "acting_as", None)
            with acting(request.person) if acting is not None else contextlib.nullcontext():
                outcome = request.job(context)
        except BatchCancelled:
            outcome = None
        self.batchDone.emit(rid, outcome)
        self.requestDone.emit(rid, request.cancel.is_set())


def save_capture(rgb: np.ndarray, eye: Eye, folder: Path) -> Path:
    """Write a camera frame as a high-quality JPEG (what fundus cameras save), so
    the capture is on record like any other photograph."""
    import cv2

    if rgb is None or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError("the camera gave no picture: check the camera and capture again")
    folder.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    path = folder / f"capture-{stamp}-{Eye(eye).value.replace('?', 'U')}.jpg"
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise OSError(f"the capture could not be encoded as {path.name}: capture again")
    path.write_bytes(data.tobytes())
    return path


def display_photo(result: EyeResult, side: int = PHOTO_SIDE) -> np.ndarray | None:
    """The photograph as the result view shows it: for a fundus photograph the
    square around its field of view (the heat map's framing), else the whole
    picture scaled down; None when the file cannot be read."""
    if result.status is Status.ERROR:
        return None
    from ..core.imageio import read_image
    from ..core.preprocess import model_square

    try:
        rgb = read_image(Path(result.path), max_side=1024)
        if result.status is Status.NOT_FUNDUS:
            return _fit(rgb, side)
        return model_square(rgb, side)     # the model's own frame: the heat map sits where it looked
    except Exception:  # noqa: BLE001 - a missing thumbnail must not lose the result
        log.warning("no thumbnail for %s", result.path, exc_info=True)
        return None


def _fit(rgb: np.ndarray, side: int) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    scale = min(1.0, side / max(h, w))
    if scale >= 1.0:
        return rgb
    return cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


class _TaskSignals(QObject):
    """Carries one background task's outcome back to the GUI thread (it lives there)."""

    done = Signal(object)
    failed = Signal(str)


class _Task(QRunnable):
    def __init__(self, function: Callable[[], Any], signals: _TaskSignals):
        super().__init__()
        self.function, self.signals = function, signals

    def run(self) -> None:
        try:
            value = self.function()
        except Exception as exc:  # noqa: BLE001 - reported to the caller, never lost
            log.exception("background task failed")
            self.signals.failed.emit(_staff_message(exc))
            return
        self.signals.done.emit(value)


_pool: QThreadPool | None = None
_in_flight: set[_TaskSignals] = set()


def background_pool() -> QThreadPool:
    """The GUI's small thread pool (child of the application, so Qt owns it)."""
    global _pool
    if _pool is None:
        _pool = QThreadPool(QCoreApplication.instance())
        _pool.setMaxThreadCount(BACKGROUND_THREADS)
        _pool.destroyed.connect(_forget_pool)
    return _pool


def _forget_pool(*_args: object) -> None:
    global _pool
    _pool = None


def run_in_background(function: Callable[[], Any], done: Callable[[Any], None],
                      failed: Callable[[str], None] | None = None) -> None:
    """Run ``function()`` off the GUI thread; ``done(value)`` (or ``failed(message)``)
    then runs on the GUI thread. The one helper for GUI chores that would stall
    the window: decoding photographs, building slip previews, reading the
    database while a batch holds its lock. ``function`` must not touch widgets.
    Pass bound methods of widgets as callbacks: Qt drops the call when the
    widget is gone."""
    signals = _TaskSignals()
    _in_flight.add(signals)
    signals.done.connect(done)
    if failed is not None:
        signals.failed.connect(failed)
    for signal in (signals.done, signals.failed):
        signal.connect(lambda *_args, s=signals: _in_flight.discard(s))
    background_pool().start(_Task(function, signals))


def wait_for_background(timeout_ms: int = STOP_WAIT_MS) -> bool:
    """Wait for every background chore (at shutdown, before Qt objects go)."""
    return _pool.waitForDone(timeout_ms) if _pool is not None else True


class ScreeningEngine(QObject):
    """The window's handle on the worker: starts the thread, posts requests,
    cancels them, and re-emits the worker's signals on the GUI thread.

    Pass the ``store`` (``ClinicStore``) and the folder for camera captures.
    Every request method returns the request's ID, which comes back with its
    results. Used by the main window and the batch panel alike."""

    modelReady = Signal(object)
    modelFailed = Signal(str)
    eyeScreened = Signal(int, object)
    encounterSaved = Signal(int, object)
    progress = Signal(int, int, int, str)
    failed = Signal(int, str)
    requestDone = Signal(int, bool)
    batchDone = Signal(int, object)

    _loadRequested = Signal(str)
    _filesRequested = Signal(object)
    _frameRequested = Signal(object)
    _batchRequested = Signal(object)
    _updateRequested = Signal(object)

    def __init__(self, store: Any, captures_dir: Path, parent: QObject | None = None, backend: str = "auto"):
        super().__init__(parent)
        self.card: ModelCard | None = None
        self.model_error = ""
        self._ids = itertools.count(1)
        self._pending: dict[int, threading.Event] = {}
        self.thread = QThread(self)   # a parent: Qt never destroys it before the engine
        self.thread.setObjectName("eyescreen-worker")
        self.worker = ScreeningWorker(store, captures_dir, backend)
        self.worker.moveToThread(self.thread)
        self._connect()

    def _connect(self) -> None:
        w = self.worker
        self._loadRequested.connect(w.loadModel)
        self._filesRequested.connect(w.screenFiles)
        self._frameRequested.connect(w.screenFrame)
        self._batchRequested.connect(w.runBatch)
        self._updateRequested.connect(w.updateEncounter)
        w.modelReady.connect(self._on_ready)
        w.modelFailed.connect(self._on_failed)
        for name in ("eyeScreened", "encounterSaved", "progress", "failed", "batchDone"):
            getattr(w, name).connect(getattr(self, name))
        w.requestDone.connect(self._on_done)
        self.thread.finished.connect(w.deleteLater)

    # ------------------------------------------------------------------ life cycle

    def start(self, model_path: Path | str) -> None:
        """Start the worker thread and load the model there (returns at once)."""
        self.thread.start()
        self._loadRequested.emit(str(model_path))

    @property
    def ready(self) -> bool:
        """True once the model is loaded."""
        return self.card is not None

    @property
    def busy(self) -> bool:
        """True while any request is waiting or running."""
        return bool(self._pending)

    def stop(self, timeout_ms: int = STOP_WAIT_MS) -> bool:
        """Cancel everything, end the thread and wait for it; True when it ended."""
        self.cancel_all()
        if not self.thread.isRunning():
            return True
        self.thread.quit()
        ended = self.thread.wait(timeout_ms)
        if not ended:
            log.error("the screening worker did not stop within %d ms", timeout_ms)
        return ended

    @Slot(object)
    def _on_ready(self, card: ModelCard) -> None:
        self.card = card
        self.model_error = ""
        self.modelReady.emit(card)

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self.model_error = message
        self.modelFailed.emit(message)

    @Slot(int, bool)
    def _on_done(self, request_id: int, cancelled: bool) -> None:
        self._pending.pop(request_id, None)
        self.requestDone.emit(request_id, cancelled)

    # ------------------------------------------------------------------ requests

    def _new_id(self) -> tuple[int, threading.Event]:
        rid, flag = next(self._ids), threading.Event()
        self._pending[rid] = flag
        return rid, flag

    def screen_files(self, items: Sequence[ScreenItem], patient: Patient | None = None, visit: str = "",
                     encounter_id: str | None = None, protocol: str = "icdr-ada",
                     operating_point: OperatingPoint | str | None = None, heatmaps: bool = True) -> int:
        """Screen files (saved to ``patient``'s visit when given); returns the request ID."""
        rid, flag = self._new_id()
        self._filesRequested.emit(ScreenRequest(rid, tuple(items), patient, visit, encounter_id, protocol,
                                                operating_point, heatmaps, flag))
        return rid

    def screen_frame(self, rgb: np.ndarray, eye: Eye, patient: Patient | None = None, visit: str = "",
                     encounter_id: str | None = None, protocol: str = "icdr-ada",
                     operating_point: OperatingPoint | str | None = None) -> int:
        """Keep and screen a camera frame; returns the request ID."""
        rid, flag = self._new_id()
        self._frameRequested.emit(FrameRequest(rid, np.array(rgb, copy=True), Eye(eye), patient, visit,
                                               encounter_id, protocol, operating_point, flag))
        return rid

    def run_batch(self, job: Callable[[BatchContext], Any], person: Any = SIGNED_IN) -> int:
        """Run ``job(context)`` on the worker thread as ``person`` (default: whoever is
        signed in now, kept for the whole job); returns the request ID."""
        rid, flag = self._new_id()
        if person is SIGNED_IN:
            person = getattr(self.worker.store, "person", None)
        self._batchRequested.emit(BatchRequest(rid, job, flag, person))
        return rid

    def update_encounter(self, encounter_id: str, change: Callable[[Any], Any], patient_id: str = "") -> int:
        """Run ``change(store)`` for a saved encounter on the worker (after the
        photographs already posted); returns the request ID."""
        rid, flag = self._new_id()
        self._updateRequested.emit(UpdateRequest(rid, encounter_id, change, patient_id, flag))
        return rid

    def cancel(self, request_id: int) -> None:
        """Ask a request to stop after the photograph in hand (what is done is kept)."""
        if flag := self._pending.get(request_id):
            flag.set()

    def cancel_all(self) -> None:
        """Cancel every waiting or running request."""
        for flag in self._pending.values():
            flag.set()
