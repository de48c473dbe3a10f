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
and the GUI); ``run`` adds the progress bar and the one-screen summary.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import logging
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TextIO

from ..domain.eyes import NO_PATIENT_ID, NO_PATIENT_ID_ADVICE
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
from .calibration import CalibrationError, load_operating_point
from .cancel import BatchCancelled, _check
from .classifier import Classifier, ModelError, read_card, resolve_card_path, served_weights, verify_file
from .paths import data_paths, default_model_dir
from .protocol import DEFAULT_PROTOCOL, PROTOCOLS, Protocol, get_protocol, rejected
from .recording import record
from .records import EncounterSummary, EyeResult, ModelInfo, OperatingPoint, Queue, Status
from .protocol import is_external_eye
from .photo_fit import noted_result
from .screening import ScreenItem, Screener, site_gate
from .store import BatchFileRow, ClinicStore, StoreError, add_database_argument, claimant

log = logging.getLogger(__name__)

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


# ---------------------------------------------------------------------- terminal


class ProgressBar:
    """A plain one-line progress bar for a terminal (no extra dependency), redrawn
    at most ten times a second."""

    def __init__(self, stream: TextIO, width: int = 30):
        self.stream, self.width, self._last = stream, width, 0.0

    def __call__(self, done: int, total: int, file: str) -> None:
        now = time.monotonic()
        if done < total and now - self._last < 0.1:
            return
        self._last = now
        filled = self.width * done // max(total, 1)
        name = file if len(file) <= 32 else "..." + file[-29:]
        self.stream.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} {name:<32}")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def format_summary(report: BatchReport, max_rejected: int = 8) -> str:
    """The one-screen summary printed at the end of a run."""
    s = report.status_counts
    lines = [
        f"{report.files} file(s) of {report.patients} patient(s): {report.screened} screened now in "
        f"{report.seconds:.1f} s" + (f", {report.files - report.screened} already on record"
                                     if report.files != report.screened else "")
        + f" (model {report.model.name} {report.model.version}, protocol {report.protocol})",
        "Patients per queue:   " + "   ".join(f"{q.value} {report.queue_counts.get(q, 0)}" for q in Queue),
        f"Files: graded {s.get(Status.OK, 0)}, ungradable {s.get(Status.UNGRADABLE, 0)}, "
        f"not a fundus photo {s.get(Status.NOT_FUNDUS, 0)}, unreadable {s.get(Status.ERROR, 0)}"
        + (f" (of the graded, {report.eye_checks} external-eye photograph(s) had the eye check, no retinopathy "
           "grade)" if report.eye_checks else ""),
    ]
    if report.files == 0:
        lines.append("No photographs were found in the inputs (looked for JPEG, PNG, TIFF, BMP, WebP, DICOM).")
    if report.rejected:
        reasons = Counter(_why(r) for _, r in report.rejected)
        lines.append(f"Files rejected ({len(report.rejected)}), sent to review: "
                     + ", ".join(f"{why} {n}" for why, n in reasons.most_common()))
        for file, r in report.rejected[:max_rejected]:
            lines.append(f"  {file}: {r.message or r.status.value}")
        if len(report.rejected) > max_rejected:
            lines.append(f"  ... and {len(report.rejected) - max_rejected} more (see results.csv)")
    lines += _unidentified_lines(report.unidentified, max_rejected)
    lines.append(f"Results: {report.results_csv}")
    if report.summary_pdf or report.documents:
        lines.append(f"Patient documents: {len(report.documents)} ({len(report.referral_pdfs)} referral slips in "
                     f"referrals/, review slips in review/, result letters in letters/) under {report.out_dir}; "
                     f"summary: {report.summary_pdf}")
    if report.pdf_error:
        lines.append(f"Warning: {report.pdf_error}")
    return "\n".join(lines)


def _unidentified_lines(unidentified: Sequence[tuple[str, EyeResult]], most: int) -> list[str]:
    """The summary's group of photographs whose name gives no patient ID: how many,
    what to do, and which (screened, but filed to no patient)."""
    if not unidentified:
        return []
    lines = [f"{NO_PATIENT_ID[0].upper()}{NO_PATIENT_ID[1:]} ({len(unidentified)} file(s)), screened but filed to "
             f"no patient: {NO_PATIENT_ID_ADVICE}"]
    lines += [f"  {file}" for file, _ in unidentified[:most]]
    if len(unidentified) > most:
        lines.append(f"  ... and {len(unidentified) - most} more (see results.csv)")
    return lines


def _why(r: EyeResult) -> str:
    if r.status is Status.ERROR:
        return "unreadable"
    if r.status is Status.NOT_FUNDUS:
        return "not a fundus photo"
    return " ".join(x.replace("_", " ") for x in (r.quality.reasons if r.quality else ())) or "ungradable"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``eyescreen screen``."""
    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="photographs or folders (recursive)")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR",
                        help="folder for results.csv, the patients' documents (referrals/, review/, letters/) and summary.pdf")
    parser.add_argument("--patients", type=Path, metavar="CSV",
                        help="patient list: file, patient_id, name, birth_date[, sex, eye]")
    parser.add_argument("--model", type=Path, metavar="PATH", help="model folder (default: the shipped model)")
    parser.add_argument("--data-dir", type=Path, metavar="DIR", help="clinic data folder (database, image store)")
    add_database_argument(parser)
    from .signin import add_token_argument

    add_token_argument(parser)
    parser.add_argument("--protocol", default=DEFAULT_PROTOCOL, choices=sorted(PROTOCOLS),
                        help=f"screening protocol (default {DEFAULT_PROTOCOL})")
    parser.add_argument("--no-pdf", action="store_true", help="skip the patients' documents and the summary PDF")
    parser.add_argument("--backend", default="auto", choices=("auto", "keras", "onnx"),
                        help="inference runtime (auto: ONNX when the model ships one)")
    parser.add_argument("--operating-point", type=Path, metavar="OP.json",
                        help="this clinic's operating point from `eyescreen calibrate` (default: the model's)")


def site_operating_point(path: Path, model: Path | None = None) -> OperatingPoint:
    """A clinic's operating point file, refused when it was calibrated for other weights."""
    op = load_operating_point(path)
    op.check_model(read_card(Path(model or default_model_dir())))
    return op.operating_point


def run(args: argparse.Namespace) -> int:
    """Run the command; 0 when the batch completed (even with rejected files),
    2 for a usage error, 3 for an unusable model, 4 when the database or the
    output folder cannot be used (what was committed stays; run it again), 1 when
    everything was screened and saved but some patients' documents (PDFs) failed,
    5 when nobody is signed in on a database with accounts, 6 when the person's role
    may not screen (the exit codes every command shares: core/signin.py)."""
    from . import signin
    from .classifier import sha256_file
    from .roles import Action
    from .store import AccessRefused

    bar = ProgressBar(sys.stderr) if sys.stderr.isatty() else None
    paths = data_paths(args.data_dir)
    try:
        with ClinicStore.open(paths, args.database) as store:
            signin.act_as_signed_in(store, paths, args.token_file, Action.SCREEN)   # runs as the signed-in person
            if args.operating_point and args.operating_point.is_file():   # only the point an admin applied, unless an admin screens
                store.check_operating_point(sha256_file(args.operating_point))
            op = site_operating_point(args.operating_point, args.model) if args.operating_point else None
            report = run_batch(args.inputs, args.out, patients_csv=args.patients, model=args.model,
                               protocol=args.protocol, pdf=not args.no_pdf, store=store,
                               progress=bar, backend=args.backend, operating_point=op)
    except AccessRefused as exc:
        return signin.refuse("screen", exc)
    except CalibrationError as exc:
        print(f"eyescreen screen: {exc}", file=sys.stderr)
        return 2
    except (BatchUsageError, ModelError, StoreError, OSError) as exc:
        code = 2 if isinstance(exc, BatchUsageError) else 3 if isinstance(exc, ModelError) else 4
        print(f"eyescreen screen: {' '.join(str(exc).split())}", file=sys.stderr)
        return code
    print(format_summary(report))
    return 1 if report.pdf_error else 0   # screened and saved, but a document is missing: not done
