"""``eyescreen screen``: screen folders of eye photographs into the clinic queues.

``eyescreen screen INPUT... --out DIR [--patients CSV] [--model PATH] [--data-dir DIR]
[--protocol NAME] [--no-pdf] [--backend auto|keras|onnx]``

What it does, and why it is built this way:

* **Every file is accounted for.** Each image-like file found gets one row in
  ``DIR/results.csv``, including files that are broken, not photographs or not
  gradable (those always go to ``review``, never ``annual``).
* **Who and which eye.** From the ``--patients`` CSV (columns ``file`` relative
  to the input folder, ``patient_id``, ``name``, ``birth_date``, optional ``sex``,
  ``eye``), else from names like ``<patient>_<L|R|OD|OS|left|right>.<ext>``,
  else from a per-patient sub-folder. A photograph none of these names is still
  screened but goes under one heading, "no patient ID in the file name"
  (``domain.eyes.NO_PATIENT_ID``): never a patient invented from its file name.
* **Resumable.** The batch is identified by a key (hash of the resolved inputs,
  the protocol and the model's weights hash). Each file's result is committed
  in its own transaction, so after a crash or ``kill -9`` running the same
  command again screens only what is missing, reusing the batch's encounters:
  nothing lost, nothing counted twice. Running it again after it finished just
  rewrites the outputs (new files in the folders are screened and added).
* **Every patient leaves with a document.** A referral slip for urgent and
  routine (``DIR/referrals/``), a review slip for review (``DIR/review/``), a
  result letter for annual (``DIR/letters/``), each named
  ``<patient>_<encounter>.pdf`` (``core.report_names``), and ``DIR/summary.pdf``,
  through ``core.reports``; ``--no-pdf`` skips them.
* **One rule.** Each result is saved and its encounter queued in one
  transaction by ``protocol.encounter_decision`` (current photograph per eye;
  never annual without both eyes or a recorded reason), as in the window.

``run_batch`` is the callable behind the command (used by tests, the benchmark
and the GUI); ``core.batch_cli.run`` adds the progress bar and the one-screen
summary. This module is the run (screening into the store, claims shared with
other workstations, queueing by the rule) and the batch's one import; each other
job lives in its own module:

* ``batch_plan``: the ``--patients`` list, the files with their patient and eye, the batch key;
* ``batch_writer``: the writer thread that commits results beside the model;
* ``batch_outputs``: the run's report, ``results.csv`` and the patients' PDFs;
* ``batch_cli``: the ``eyescreen screen`` command (arguments, progress bar, summary, exit codes).
"""

from __future__ import annotations

import collections
import contextlib
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ..domain.eyes import NO_PATIENT_ID
from .batch_plan import (
    BatchFile,
    BatchUsageError,
    PatientRow,
    batch_key,
    file_patient_and_eye,
    patient_and_eye,
    plan_files,
    read_patients_csv,
    resolve_inputs,
)
from .batch_outputs import (
    CSV_COLUMNS,
    BatchReport,
    _write_pdfs,
    safe_file_name,
    write_results_csv,
)
from .batch_writer import _Writer
from .cancel import BatchCancelled, _check
from .classifier import Classifier, read_card, resolve_card_path, served_weights, verify_file
from .paths import data_paths, default_model_dir
from .protocol import DEFAULT_PROTOCOL, Protocol, get_protocol, is_external_eye, rejected
from .recording import record
from .records import EncounterSummary, ModelInfo, OperatingPoint, Queue, Status
from .photo_fit import noted_result
from .screening import ScreenItem, Screener, site_gate
from .store import BatchFileRow, ClinicStore, claimant

# what the command, the window's batch jobs, the benchmark and the tests import from here: the
# batch is one import, wherever each of its parts lives
__all__ = [
    "BatchCancelled", "BatchFile", "BatchReport", "BatchUsageError", "_check", "batch_key", "CSV_COLUMNS",
    "file_patient_and_eye", "load_for_batch", "patient_and_eye", "PatientRow", "pipeline_threads", "plan_files",
    "Progress", "queue_batch_encounters", "read_patients_csv", "resolve_inputs", "run_batch", "safe_file_name",
    "write_results_csv",
]

Progress = Callable[[int, int, str], None]   # (files done, files in the batch, file just done)


# ---------------------------------------------------------------------- the run


def run_batch(inputs: Sequence[Path | str], out_dir: Path | str, patients_csv: Path | str | None = None,
              model: Path | str | Classifier | None = None, data_dir: Path | str | None = None,
              protocol: str = DEFAULT_PROTOCOL, pdf: bool = True, progress: Progress | None = None,
              backend: str = "auto", user: str | None = None, batch_size: int | None = None,
              decode_workers: int | None = None, store: ClinicStore | None = None,
              cancelled: Callable[[], bool] | None = None, database: str | None = None,
              operating_point: OperatingPoint | str | None = None) -> BatchReport:
    """Screen the inputs into the clinic database and write the outputs.

    ``model`` is a model folder (default: the shipped model) or an already loaded
    Classifier. ``store`` is an open ClinicStore to use (the GUI's; left open),
    else the one under ``data_dir`` is opened and closed. ``batch_size`` and
    ``decode_workers`` default to the classifier's preferred batch and
    :func:`pipeline_threads`. ``operating_point``: a clinic's own (from
    ``eyescreen calibrate``), a name in the model card, or None for its default. Raises BatchUsageError,
    ModelError or StoreError before any file is screened when the command cannot
    run; a bad photograph never raises. ``cancelled()`` is asked between the steps
    of every phase (screening, queueing, results.csv, each PDF) and True stops the
    run with BatchCancelled; an exception from ``progress`` stops it too. Either
    way every result screened is saved and queued (each in the transaction that
    saved it) and a rerun resumes.
    """
    started = time.monotonic()
    proto = _protocol(protocol)
    roots = resolve_inputs(inputs)
    listed = read_patients_csv(Path(patients_csv)) if patients_csv else None
    files = plan_files(roots, listed)
    model_path = None if _is_classifier(model) else Path(model or default_model_dir())
    info: ModelInfo = model.info if model_path is None else _checked_model(model_path, backend)
    key = batch_key(roots, proto.name, info.sha256, operating_point if isinstance(operating_point, OperatingPoint)
                    else None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with _store(store, data_dir, database) as store:
        resumed = not store.begin_batch(key, proto.name, info.sha256, [str(r) for r in roots], user)
        _register_patients(store, files, listed, user)
        done = store.batch_done_files(key)
        todo = [f for f in files if f.file not in done]
        if todo:  # a finished batch run again only rewrites its outputs: no model loading
            classifier = model if model_path is None else load_for_batch(model_path, backend)
            screener = Screener(classifier, proto, operating_point, gate=site_gate(store.applied_quality_threshold()),
                                batch_size=batch_size or classifier.preferred_batch,
                                decode_workers=decode_workers or pipeline_threads()[0],
                                heatmaps=pdf)  # the slips show where the network looked
            op = screener.operating_point  # the cache keys on its thresholds, not its name
            gate = screener.gate.version if screener.gate else ""
            screener.cache = lambda sha: store.result_for(sha, info.sha256, proto.name, op, gate)
            _screen_into_store(store, screener, key, todo, len(files) - len(todo), len(files), progress, user,
                               cancelled)
            _await_other_workstations(store, screener, key, files, progress, user, cancelled)
        summaries = _finish_encounters(store, key, user, cancelled)
        store.finish_batch(key, user)
        rows = {r.file: r for r in store.batch_rows(key)}
    report = _report(key, out, info, proto, files, rows, summaries, len(todo), resumed)
    _check(cancelled)
    write_results_csv(report.results_csv, files, rows, {s.encounter_id: s for s in summaries}, info, proto.name)
    if pdf:
        _write_pdfs(report, cancelled)
    report.seconds = time.monotonic() - started
    return report


def pipeline_threads(cores: int | None = None) -> tuple[int, int]:
    """(decode threads, model threads) for a batch: half the cores decode and
    gate, the others grade, so neither waits on the other's thread barriers.
    Measured on 2 cores (docs/performance.md): one decode thread beside a
    single-threaded ONNX model grading one photograph per call screened 69
    photographs/s, both stages on both cores 58."""
    cores = cores or os.cpu_count() or 1
    decode = max(1, cores // 2)
    return decode, max(1, cores - decode)


def load_for_batch(model: Path | str, backend: str = "auto") -> Classifier:
    """The classifier as a batch run loads it: with the model threads of :func:`pipeline_threads`."""
    return Classifier.load(Path(model), backend, threads=pipeline_threads()[1])


@contextlib.contextmanager
def _store(given: ClinicStore | None, data_dir: Path | str | None,
           database: str | None = None) -> Iterator[ClinicStore]:
    """The caller's store (left open) or ``database`` / the one under the data folder (closed after)."""
    if given is not None:
        yield given
        return
    with ClinicStore.open(data_paths(data_dir), database) as opened:
        yield opened


def _protocol(name: str) -> Protocol:
    try:
        return get_protocol(name)
    except ValueError as exc:
        raise BatchUsageError(str(exc)) from None


def _checked_model(path: Path, backend: str = "auto") -> ModelInfo:
    """Card and weights hash checked up front (cheap), so an unusable model is a usage
    error before anything is written; TensorFlow is loaded only when there is work."""
    card = read_card(path)
    served, sha256 = served_weights(card, backend)
    verify_file(resolve_card_path(path).parent / served, sha256)
    return card.info


def _is_classifier(model: Any) -> bool:
    return model is not None and hasattr(model, "predict") and hasattr(model, "card")


def _register_patients(store: ClinicStore, files: Sequence[BatchFile], listed: dict[str, PatientRow] | None,
                       user: str | None) -> None:
    """Patients from the list are created or updated; others are created by ID only
    (an existing record's name and birth date are never blanked)."""
    from_list = {row.patient.patient_id: row.patient for row in (listed or {}).values()}
    with store.transaction():
        for pid in dict.fromkeys(f.patient_id for f in files):
            if pid in from_list:
                store.upsert_patient(from_list[pid], user)
            else:
                store.ensure_patient(pid, user)


def _screen_into_store(store: ClinicStore, screener: Screener, key: str, todo: Sequence[BatchFile],
                       already: int, total: int, progress: Progress | None, user: str | None,
                       cancelled: Callable[[], bool] | None = None) -> None:
    """Screen the files not yet on record, committing each result on its own.

    Commits (a copy into the image store, a transaction with fsync) run on a writer
    thread so the model goes on grading meanwhile; when the run stops early (an
    exception, a cancel from ``progress``) every result already screened is still
    committed before this returns, and a result that was not is screened again by
    the next run."""
    if progress:
        progress(already, total, "")
    started = store.batch_started_at(key)
    encounters: dict[str, str] = {}
    mine: collections.deque[BatchFile] = collections.deque()
    me = claimant()

    def claimed() -> Iterator[ScreenItem]:
        """The files this process wins the claim of (another workstation screening the
        same batch takes the others), in order, as the screener asks for them."""
        for f in todo:
            if store.claim_batch_file(key, f.file, me):
                mine.append(f)
                yield ScreenItem(f.path, f.eye)

    stream = screener.screen(claimed())
    with _Writer(screener.lookahead) as writer, contextlib.closing(stream):
        for n, result in enumerate(stream, start=already + 1):
            f = mine.popleft()
            if f.patient_id not in encounters:
                encounters[f.patient_id] = store.batch_encounter(key, f.patient_id, screener.protocol.name,
                                                                 started, user)
            result = noted_result(result, f.path, f.patient_id, f.file)   # other eye / patient: noted, not asked
            writer.put(record, store, screener, encounters[f.patient_id], result, user, (key, f.file))
            if progress:
                progress(n, total, f.file)
            if n < total:
                _check(cancelled)


AWAIT_POLL_S = 0.5
"""How often a batch that finished its own files looks for the other workstations' ones."""


def _await_other_workstations(store: ClinicStore, screener: Screener, key: str, files: Sequence[BatchFile],
                              progress: Progress | None, user: str | None,
                              cancelled: Callable[[], bool] | None) -> None:
    """Wait until every file of the batch is on record: files another process claimed
    are screened by it; a claim left by a process that died is taken over and
    screened here. So the outputs written next hold the whole batch."""
    while True:
        done = store.batch_done_files(key)
        missing = [f for f in files if f.file not in done]
        if not missing:
            return
        _check(cancelled)
        before = len(done)
        _screen_into_store(store, screener, key, missing, before, len(files), progress, user, cancelled)
        if len(store.batch_done_files(key)) == before:
            time.sleep(AWAIT_POLL_S)


def queue_batch_encounters(store: ClinicStore, encounter_ids: Sequence[str], user: str | None = None,
                           cancelled: Callable[[], bool] | None = None) -> None:
    """Queue encounters by the one rule (``protocol.encounter_decision`` through
    ``ClinicStore.requeue_encounter``): a finished batch, a cancelled one and the
    camera folder all call this. Each result was already queued as it was saved;
    this catches encounters whose inputs changed since (e.g. a recorded missing eye)."""
    for encounter_id in encounter_ids:
        _check(cancelled)
        store.requeue_encounter(encounter_id, user)


def _finish_encounters(store: ClinicStore, key: str, user: str | None,
                       cancelled: Callable[[], bool] | None = None) -> list[EncounterSummary]:
    """Queue every encounter of the batch by the rule; their summaries for the outputs."""
    encounter_ids = store.batch_encounters(key)
    queue_batch_encounters(store, encounter_ids, user, cancelled)
    return store.encounter_summaries(encounter_ids, heatmaps=True)  # heat maps for the slips


def _report(key: str, out: Path, info: ModelInfo, proto: Protocol, files: Sequence[BatchFile],
            rows: dict[str, BatchFileRow], summaries: list[EncounterSummary], screened: int,
            resumed: bool) -> BatchReport:
    current = [rows[f.file] for f in files if f.file in rows]
    patients = [s for s in summaries if s.patient.patient_id != NO_PATIENT_ID]   # the group is nobody's visit
    return BatchReport(
        batch_key=key, out_dir=out, results_csv=out / "results.csv", model=info, protocol=proto.name,
        files=len(files), screened=screened, resumed=resumed, seconds=0.0,
        status_counts=dict(Counter(r.result.status for r in current)),
        queue_counts={q: sum(s.queue is q for s in patients) for q in Queue},
        encounters=patients,
        rejected=[(r.file, r.result) for r in current if rejected(r.result)],
        eye_checks=sum(1 for r in current if is_external_eye(r.result) and r.result.status is Status.OK),
        unidentified=[(r.file, r.result) for r in current if r.patient_id == NO_PATIENT_ID],
    )
