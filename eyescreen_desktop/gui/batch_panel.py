"""Screen a whole folder, or watch the folder a fundus camera saves into.

The work runs on the one screening worker thread (``ScreeningEngine.run_batch``),
which owns the model, so the window never freezes however big the folder; the
panel only posts jobs (see ``batch_jobs``), shows progress and passes Cancel on.
Cancel stops after the photograph in hand and keeps everything screened so far.

The hot folder is polled (a timer, which also works on network shares where
file-system notifications are unreliable), but the listing, the ``stat`` of
every file and the database look-up run on a small scan thread, never on the
GUI thread. A new file is screened only once it is complete: its size and
modification time unchanged across two checks, so a photograph still being
written by the camera is never graded half-copied. What is still to do comes
from the DATABASE (``batch_jobs.pending_hot_files``): a file counts as done only
once its result is committed, so a failed job is retried at the next poll, a
stop loses nothing, and a photograph that arrived while EyeScreen was closed is
screened at the next start. Photographs older than the first time the folder
was watched are left alone (use "Screen folder" for those).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from PySide6.QtCore import QObject, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..core.imageio import discover
from ..core.paths import data_paths
from ..core.protocol import DEFAULT_PROTOCOL
from ..domain.eyes import NO_PATIENT_ID, NO_PATIENT_ID_ADVICE
from .batch_jobs import HotFolderOutcome, folder_identity, folder_job, hot_folder_job, pending_hot_files

log = logging.getLogger(__name__)

POLL_MS = 1000
MAX_LOG_LINES = 500
MAX_ATTEMPTS = 3   # a camera file whose job failed this often is left until watching restarts


Stamp = tuple[int, int]                          # (size in bytes, modification time in ns)
PendingFn = Callable[[Path, list[Path]], list[Path]]
SINCE_SLACK_S = 2.0   # files modified this long before watching began still count as new
SETTLE_S = 1.0        # a file counts as complete once unchanged for this long (not just for two polls)


@dataclass(frozen=True)
class FolderScan:
    """What one poll of the watched folder found (built on the scan thread)."""

    stamps: dict[Path, Stamp]        # every photograph-like file in the folder, new enough to matter
    ready: list[Path]                # complete and not yet on record: to screen
    done: dict[Path, Stamp]          # complete and on record (with the stamp they had)
    error: str = ""                  # the folder cannot be read


def scan_folder(folder: Path, previous: dict[Path, Stamp], done: dict[Path, Stamp], handed: set[Path],
                since: float, pending: PendingFn, settle_s: float = SETTLE_S) -> FolderScan:
    """One poll (no Qt, runs on the scan thread): list and stat the photographs,
    keep those complete (stamp unchanged since ``previous`` and last modified at
    least ``settle_s`` ago, so two quick polls of a busy machine cannot catch a
    camera between two writes; not empty), not handed
    to a job yet and not known done, then ask ``pending`` (the database) which of
    them still need screening."""
    try:
        stamps: dict[Path, Stamp] = {}
        for path in discover([folder]):
            st = path.stat()
            if st.st_mtime >= since - SINCE_SLACK_S:
                stamps[path] = (st.st_size, st.st_mtime_ns)
    except OSError as exc:
        return FolderScan({}, [], {}, f"The watched folder {folder} cannot be read ({exc.strerror or exc}): "
                                      "check that the camera or network drive is connected. Still watching.")
    settled_before_ns = time.time_ns() - int(settle_s * 1e9)
    complete = [p for p, s in stamps.items()
                if s[0] > 0 and previous.get(p) == s and s[1] <= settled_before_ns
                and p not in handed and done.get(p) != s]
    ready = pending(folder, complete) if complete else []
    todo = set(ready)
    return FolderScan(stamps, sorted(ready), {p: stamps[p] for p in complete if p not in todo})


class HotFolderWatcher(QObject):
    """Polls a folder on a scan thread and reports the complete photographs that
    the database does not have yet.

    ``pending(folder, files)`` says which complete files still need screening
    (default: all); ``since(folder)`` the time (epoch seconds) before which files
    are left alone (default: when watching starts). A reported file is not
    reported again until :meth:`release` (its job finished, well or not): then the
    next poll asks the database again, so a failed file is retried."""

    filesReady = Signal(list)   # list[Path]: complete photographs to screen
    problem = Signal(str)       # the folder cannot be read (unplugged share...)
    scanned = Signal()          # a poll finished (tests and status lines wait for it)
    _scanFinished = Signal(object, int)   # (FolderScan, generation) from the scan thread

    def __init__(self, interval_ms: int = POLL_MS, parent: QObject | None = None,
                 pending: PendingFn | None = None, since: Callable[[Path], float] | None = None) -> None:
        super().__init__(parent)
        self.folder: Path | None = None
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.check)
        self.pending: dict[Path, Stamp] = {}     # seen but not yet complete (still being written)
        self.handed: set[Path] = set()           # reported, their job not finished
        self._pending_fn = pending or (lambda folder, files: list(files))
        self.settle_s = SETTLE_S
        self._since_fn = since
        self._since: float | None = None
        self._stamps: dict[Path, Stamp] = {}
        self._done: dict[Path, Stamp] = {}       # confirmed on record by the database
        self._failing = False
        self._generation = 0
        self._executor: ThreadPoolExecutor | None = None
        self._polling = False
        self._scanFinished.connect(self._scan_finished)

    @property
    def active(self) -> bool:
        return self.timer.isActive()

    def start(self, folder: Path) -> None:
        """Watch ``folder``: every photograph newer than ``since(folder)`` and not on record is reported."""
        self.stop()
        self.folder = Path(folder)
        self._generation += 1
        self.pending, self.handed, self._stamps, self._done = {}, set(), {}, {}
        self._since = None
        self._failing = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="eyescreen-hot-folder")
        self.timer.start()
        self.check()

    def stop(self) -> None:
        """Stop watching and wait for a poll in progress (the scan thread is joined).
        Nothing is forgotten: the next start asks the database again."""
        self.timer.stop()
        self._generation += 1
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self._polling = False

    def release(self, files: Sequence[Path]) -> None:
        """The job for ``files`` is over (screened or failed): check them again."""
        self.handed.difference_update(files)

    @Slot()
    def check(self) -> None:
        """Start one poll on the scan thread (none when one is still running)."""
        if self.folder is None or self._executor is None or self._polling:
            return
        self._polling = True  # cleared when its result reaches the GUI thread
        self._executor.submit(self._scan, self.folder, dict(self._stamps), dict(self._done),
                                             set(self.handed), self._generation)

    def _scan(self, folder: Path, previous: dict[Path, Stamp], done: dict[Path, Stamp], handed: set[Path],
              generation: int) -> None:
        """On the scan thread: poll, then hand the result to the GUI thread by a queued signal."""
        try:
            if self._since is None:
                self._since = self._since_fn(folder) if self._since_fn else time.time()
            result = scan_folder(folder, previous, done, handed, self._since, self._pending_fn, self.settle_s)
        except Exception as exc:  # noqa: BLE001 - a database error must not kill the scan thread
            log.exception("polling %s failed", folder)
            result = FolderScan(previous, [], {}, f"New photographs in {folder} could not be checked ({exc}). "
                                                  "Still watching.")
        self._scanFinished.emit(result, generation)

    @Slot(object, int)
    def _scan_finished(self, result: FolderScan, generation: int) -> None:
        if generation != self._generation:
            return  # a poll of a folder no longer watched
        self._polling = False
        if result.error:
            if not self._failing:
                self._failing = True
                self.problem.emit(result.error)
        else:
            self._failing = False
            self._stamps = result.stamps
            self._done.update(result.done)
            self.pending = {p: s for p, s in result.stamps.items()
                            if p not in self._done and p not in self.handed and p not in result.ready}
            fresh = [p for p in result.ready if p not in self.handed]
            self.handed.update(fresh)
            if fresh:
                self.filesReady.emit(fresh)
        self.scanned.emit()


class BatchPanel(QWidget):
    """Folder batch with progress and Cancel, and the camera hot folder.

    ``engine`` is the window's ``ScreeningEngine``; ``store`` the ``ClinicStore``;
    ``settings`` (optional) gives the protocol and operating point; ``paths``
    (optional ``DataPaths``) where batch outputs go; ``messages`` (optional) the
    window's message path. ``storeChanged()`` fires when results were written
    (connect it to the queues' ``refresh``)."""

    storeChanged = Signal()
    batchFinished = Signal(object)        # core.batch.BatchReport, or None when cancelled or failed
    hotFolderScreened = Signal(object)    # batch_jobs.HotFolderOutcome

    def __init__(self, engine: Any, store: Any, settings: Any = None, paths: Any = None,
                 messages: Any = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.engine, self.store, self.settings, self.messages = engine, store, settings, messages
        self.paths = paths or data_paths()
        self.watcher = HotFolderWatcher(
            parent=self, pending=lambda folder, files: pending_hot_files(self.store, folder, files),
            since=lambda folder: self.store.watch_folder_since(folder_identity(folder)).timestamp())
        self._folder_rid: int | None = None
        self._hot_rid: int | None = None
        self._hot_pending: list[Path] = []      # reported by the watcher, waiting for the worker
        self._hot_files: list[Path] = []        # in the hot-folder job now running
        self._hot_failures: dict[Path, int] = {}
        self._done = self._total = 0
        self.interrupted: Any = None              # the newest unfinished folder batch on record, if any
        self._build_ui()
        self._connect()
        if not getattr(self.store, "opening", False):   # a database still opening is asked once it is open
            self.check_interrupted()

    # ------------------------------------------------------------------ UI

    def _build_resume(self) -> QFrame:
        """The banner that offers an interrupted folder batch again (hidden when there is none)."""
        self.resume_box = QFrame()
        self.resume_box.setObjectName("resumeBanner")
        self.resume_box.setFrameShape(QFrame.Shape.StyledPanel)
        self.resume_label = QLabel(wordWrap=True)
        self.resume_button = QPushButton("Resume this batch")
        self.resume_button.setToolTip("Screen the same folder again: what was screened is kept, the rest is done")
        dismiss = QPushButton("Not now")
        self.resume_button.clicked.connect(self.resume_interrupted)
        dismiss.clicked.connect(self.resume_box.hide)
        row = QHBoxLayout(self.resume_box)
        row.addWidget(self.resume_label, 1)
        row.addWidget(self.resume_button)
        row.addWidget(dismiss)
        self.resume_box.setVisible(False)
        return self.resume_box

    def _build_ui(self) -> None:
        self.folder_edit = QLineEdit(placeholderText="Folder of eye photographs")
        self.choose_button = QPushButton("Choose folder…")
        self.pdf_box = QCheckBox("Write referral slips and a summary PDF")
        self.pdf_box.setChecked(True)
        self.start_button = QPushButton("Screen folder")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setFormat("%v of %m photographs")
        self.status = QLabel("Choose a folder to screen every photograph in it (sub-folders too).")
        self.status.setWordWrap(True)
        batch = QGroupBox("Screen a folder")
        grid = QGridLayout(batch)
        grid.addWidget(self.folder_edit, 0, 0, 1, 3)
        grid.addWidget(self.choose_button, 0, 3)
        grid.addWidget(self.pdf_box, 1, 0, 1, 4)
        grid.addWidget(self.start_button, 2, 0)
        grid.addWidget(self.cancel_button, 2, 1)
        grid.addWidget(self.progress, 2, 2, 1, 2)
        grid.addWidget(self.status, 3, 0, 1, 4)
        self.watch_edit = QLineEdit(placeholderText="Folder where the fundus camera saves its photographs")
        self.watch_choose = QPushButton("Choose folder…")
        self.watch_button = QPushButton("Start watching")
        self.watch_button.setCheckable(True)
        self.watch_status = QLabel("Not watching.")
        self.watch_status.setWordWrap(True)
        hot = QGroupBox("Watch a camera folder")
        row = QHBoxLayout()
        row.addWidget(self.watch_edit, 1)
        row.addWidget(self.watch_choose)
        row.addWidget(self.watch_button)
        column = QVBoxLayout(hot)
        column.addLayout(row)
        column.addWidget(self.watch_status)
        self.log_list = QListWidget()
        self.log_list.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self._build_resume())
        layout.addWidget(batch)
        layout.addWidget(hot)
        layout.addWidget(QLabel("Screened here (newest first):"))
        layout.addWidget(self.log_list, 1)

    def _connect(self) -> None:
        self.choose_button.clicked.connect(lambda: self._choose(self.folder_edit, "Folder to screen"))
        self.watch_choose.clicked.connect(lambda: self._choose(self.watch_edit, "Camera folder to watch"))
        self.start_button.clicked.connect(lambda: self.screen_folder(Path(self.folder_edit.text().strip())))
        self.cancel_button.clicked.connect(self.cancel)
        self.watch_button.toggled.connect(self._watch_toggled)
        self.watcher.filesReady.connect(self._files_ready)
        self.watcher.problem.connect(lambda text: self._say("warning", "Camera folder", text))
        self.engine.progress.connect(self._progress)
        self.engine.batchDone.connect(self._batch_done)
        self.engine.failed.connect(self._failed)
        self.engine.requestDone.connect(self._request_done)

    def _choose(self, edit: QLineEdit, title: str) -> None:
        folder = QFileDialog.getExistingDirectory(self, title, edit.text())
        if folder:
            edit.setText(folder)

    def _operating_point(self) -> Any:
        """The clinic's chosen operating point, or False (said why) when it is refused
        for this model: then nothing is screened."""
        from ..core.calibration import CalibrationError

        chosen = getattr(self.settings, "chosen_operating_point", None)
        try:
            return chosen(self.engine.card) if chosen else (getattr(self.settings, "operating_point", "") or None)
        except CalibrationError as exc:
            self._say("error", "Operating point refused", f"{exc}. Nothing was screened.")
            return False

    def _protocol(self) -> str:
        return getattr(self.settings, "protocol", "") or DEFAULT_PROTOCOL

    def _say(self, level: str, title: str, text: str) -> None:
        """Log first, then show: through the window's messages when given."""
        if self.messages is not None:
            getattr(self.messages, level)(title, text)
        else:
            log.warning("%s: %s", title, text)
        self._log(text)

    def _log(self, line: str) -> None:
        self.log_list.insertItem(0, f"{dt.datetime.now():%H:%M:%S}  {line}")
        while self.log_list.count() > MAX_LOG_LINES:
            self.log_list.takeItem(self.log_list.count() - 1)

    # ------------------------------------------------------------------ an interrupted batch

    def check_interrupted(self) -> Any:
        """Read the database for a folder batch that never finished (EyeScreen quit or died,
        or it was cancelled) and offer it again; returns it, or None."""
        finder = getattr(self.store, "interrupted_batches", None)
        batches = [b for b in (finder() if finder else []) if len(b.inputs) == 1]
        self.interrupted = batches[0] if batches and not self.running else None
        if self.interrupted is None:
            self.resume_box.setVisible(False)
            return None
        b = self.interrupted
        folder = Path(b.inputs[0])
        self.resume_label.setText(
            f"<b>A batch was interrupted</b>: {folder.name or folder} (started {b.started_at:%d %b %Y %H:%M}, "
            f"{b.files_done} photograph(s) screened before it stopped). Resume it to screen the rest; what was "
            f"screened is kept.")
        self.resume_label.setToolTip(str(folder))
        self.resume_box.setVisible(True)
        return b

    @Slot()
    def resume_interrupted(self) -> int | None:
        """Screen the interrupted batch's folder again (its done files are skipped)."""
        if self.interrupted is None:
            return None
        folder = Path(self.interrupted.inputs[0])
        self.resume_box.setVisible(False)
        return self.screen_folder(folder)

    # ------------------------------------------------------------------ folder batch

    @property
    def running(self) -> bool:
        """True while a folder batch is being screened."""
        return self._folder_rid is not None

    def screen_folder(self, folder: Path) -> int | None:
        """Screen every photograph under ``folder``; returns the request ID (None: not started)."""
        if self.running:
            return None
        if not str(folder) or not folder.is_dir():
            self._say("warning", "No folder", f"{folder} is not a folder: choose the folder of photographs.")
            return None
        self.folder_edit.setText(str(folder))
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path(self.paths.reports) / "batches" / f"{folder.name or 'batch'}-{stamp}"
        if (op := self._operating_point()) is False:
            return None
        job = folder_job(folder, out, self._protocol(), self.pdf_box.isChecked(), operating_point=op)
        self._folder_rid = self.engine.run_batch(job)
        self._done, self._total = 0, 0
        self.progress.setRange(0, 0)  # busy until the first progress report
        self.status.setText(f"Looking for photographs in {folder}…" if self.engine.ready else
                            "Waiting for the model to finish loading…")
        self._set_running(True)
        return self._folder_rid

    @Slot()
    def cancel(self) -> None:
        """Stop the folder batch after the photograph in hand; what is done is kept."""
        if self._folder_rid is not None:
            self.engine.cancel(self._folder_rid)
            self.cancel_button.setEnabled(False)
            self.status.setText("Cancelling after the photograph in hand…")

    def finish(self) -> None:
        """The app is quitting: stop watching, cancel the batch, say so."""
        if self.watching:
            self.stop_watching()
        if self.running:
            self.cancel()
            self.status.setText("Finishing: stopping after the photograph in hand, then EyeScreen closes…")

    def _set_running(self, running: bool) -> None:
        for widget in (self.start_button, self.choose_button, self.folder_edit, self.pdf_box):
            widget.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    @Slot(int, int, int, str)
    def _progress(self, rid: int, done: int, total: int, what: str) -> None:
        if rid == self._folder_rid:
            self._done, self._total = done, total
            self.progress.setRange(0, max(total, 1))
            self.progress.setValue(done)
            if what:
                self.status.setText(f"Screened {what} ({done} of {total}).")
        elif rid == self._hot_rid and what:
            self.watch_status.setText(f"Screening new photographs: {what} ({done} of {total}).")

    @Slot(int, object)
    def _batch_done(self, rid: int, outcome: Any) -> None:
        if rid == self._folder_rid and outcome is not None:
            self._report_batch(outcome)
            self.batchFinished.emit(outcome)
        elif rid == self._hot_rid and isinstance(outcome, HotFolderOutcome):
            for rel, pid, result in outcome.files:
                who = f"{NO_PATIENT_ID} ({NO_PATIENT_ID_ADVICE})" if pid == NO_PATIENT_ID else f"patient {pid}"
                self._log(f"{rel}: {who}, {result.queue.label.lower()}"
                          + (f" ({result.message})" if result.message else ""))
            self.watch_status.setText(f"Watching {self.watcher.folder}: {len(outcome.files)} new "
                                      f"photograph(s) screened at {dt.datetime.now():%H:%M}.")
            self.hotFolderScreened.emit(outcome)

    def _report_batch(self, report: Any) -> None:
        counts = ", ".join(f"{q.value} {n}" for q, n in report.queue_counts.items() if n)
        rejected = f"; {len(report.rejected)} photograph(s) could not be graded" if report.rejected else ""
        earlier = report.files - report.screened
        if earlier:
            rejected += f"; {earlier} had been screened before and were kept"
        if report.unidentified:
            rejected += (f"; {len(report.unidentified)} photograph(s) with {NO_PATIENT_ID}, filed to no patient: "
                         f"{NO_PATIENT_ID_ADVICE}")
        text = (f"Done: {report.files} photographs of {report.patients} patients ({counts}){rejected}. "
                f"Results are in the queues and in {report.out_dir}.")
        if report.pdf_error:
            text += f" {report.pdf_error}"
        self.status.setText(text)
        self._log(text)

    @Slot(int, str)
    def _failed(self, rid: int, message: str) -> None:
        if rid == self._folder_rid:
            self.status.setText(f"Stopped: {message}")
            self._say("error", "Batch stopped", message)
        elif rid == self._hot_rid:
            given_up = self._count_failures(self._hot_files)
            retry = " They will be tried again." if len(given_up) < len(self._hot_files) else ""
            if given_up:
                retry += (f" Gave up on {', '.join(p.name for p in given_up[:5])} after {MAX_ATTEMPTS} attempts: "
                          "stop and start watching to try again.")
            self._say("error", "Camera folder", f"New photographs were not screened: {message}.{retry}")

    @Slot(int, bool)
    def _request_done(self, rid: int, cancelled: bool) -> None:
        if rid == self._folder_rid:
            self._folder_rid = None
            self._set_running(False)
            self.check_interrupted()   # a cancelled batch is offered again; a finished one no longer
            if cancelled:
                text = (f"Cancelled after {self._done} of {self._total} photographs. Those are saved and in "
                        "the queues; screen the same folder again to finish the rest.")
                self.status.setText(text)
                self._log(text)
                self.batchFinished.emit(None)
            self.storeChanged.emit()
        elif rid == self._hot_rid:
            self._hot_rid = None
            done, self._hot_files = self._hot_files, []
            # what was screened is on record now; what failed is checked (and retried) at the next poll
            self.watcher.release([p for p in done if self._hot_failures.get(p, 0) < MAX_ATTEMPTS])
            self.storeChanged.emit()
            self._start_hot_job()

    # ------------------------------------------------------------------ hot folder

    @property
    def watching(self) -> bool:
        return self.watcher.active

    def watch(self, folder: Path) -> bool:
        """Start watching ``folder``; False (and a message) when it is not a folder."""
        if not folder.is_dir():
            self._say("warning", "Camera folder", f"{folder} is not a folder: choose where the camera saves.")
            self.watch_button.setChecked(False)
            return False
        self.watch_edit.setText(str(folder))
        self._watch_person = getattr(self.store, "person", None)   # the camera folder screens as who started it
        self.watcher.start(folder)
        self.watch_button.setChecked(True)
        self.watch_status.setText(f"Watching {folder}: each new photograph is screened as soon as the camera "
                                  "has finished saving it.")
        return True

    def stop_watching(self) -> None:
        """Stop watching; photographs already reported are still screened, and any
        not screened yet are found again (from the database) when watching restarts."""
        self.watcher.stop()
        self._hot_failures.clear()
        self.watch_button.setChecked(False)
        self.watch_status.setText("Not watching.")

    def _watch_toggled(self, on: bool) -> None:
        self.watch_button.setText("Stop watching" if on else "Start watching")
        self.watch_edit.setEnabled(not on)
        self.watch_choose.setEnabled(not on)
        if on and not self.watching:
            self.watch(Path(self.watch_edit.text().strip()))
        elif not on and self.watching:
            self.stop_watching()

    @Slot(list)
    def _files_ready(self, files: list[Path]) -> None:
        waiting = {*self._hot_pending, *self._hot_files}
        self._hot_pending.extend(p for p in files if p not in waiting)
        self._start_hot_job()

    def _count_failures(self, files: Sequence[Path]) -> list[Path]:
        """Count a failed attempt for each file; those that reached MAX_ATTEMPTS."""
        for path in files:
            self._hot_failures[path] = self._hot_failures.get(path, 0) + 1
        return [p for p in files if self._hot_failures[p] >= MAX_ATTEMPTS]

    def _start_hot_job(self) -> None:
        if self._hot_rid is not None or not self._hot_pending or self.watcher.folder is None:
            return
        if (operating_point := self._operating_point()) is False:
            self.stop_watching()
            return
        files, self._hot_pending = self._hot_pending, []
        self._hot_files = files
        self._hot_rid = self.engine.run_batch(
            hot_folder_job(self.watcher.folder, files, self._protocol(), operating_point),
            person=getattr(self, "_watch_person", None))
        self.watch_status.setText(f"Screening {len(files)} new photograph(s)…")
