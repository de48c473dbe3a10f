"""``eyescreen screen``: the command over :func:`core.batch.run_batch` (what it does is
told there): its arguments, a clinic's operating point checked against the model, the
terminal's progress bar, the one-screen summary and the exit codes every command shares."""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Sequence, TextIO

from ..domain.eyes import NO_PATIENT_ID, NO_PATIENT_ID_ADVICE
from .batch import run_batch
from .batch_outputs import BatchReport
from .batch_plan import BatchUsageError
from .calibration import CalibrationError, load_operating_point
from .classifier import ModelError, read_card
from .paths import data_paths, default_model_dir
from .protocol import DEFAULT_PROTOCOL, PROTOCOLS
from .records import EyeResult, OperatingPoint, Queue, Status
from .store import ClinicStore, StoreError, add_database_argument


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
