"""What a batch leaves behind: its report (counts for the summary screen, the files
written), ``results.csv`` (one row per file found, written atomically) and every
patient's document with the batch summary (through ``core.reports``; a failure there
is reported, never undoes the screening)."""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from .batch_plan import BatchFile
from .cancel import _check
from .gate import QUALITY_PROBABILITY
from .records import EncounterSummary, Eye, EyeResult, ModelInfo, Queue, Status
from .report_names import ReportNames, safe_name
from .store import BatchFileRow

log = logging.getLogger(__name__)

CSV_COLUMNS = (
    "file", "patient_id", "eye", "status", "queue", "grade", "p_referable", "p_urgent",
    "p_maculopathy",           # "" where the model has no maculopathy output or the eye was not graded
    "p_quality_reject",        # the learned gate's probability that the photograph is not good enough
    "message",
    "due_date", "patient_queue", "finding", "code", "quality_reasons", "model", "model_version", "protocol",
    "modality", "p_checkup",   # external-eye photographs: modality external_eye, p_checkup, never a grade
    "gate",                    # the learned gate that judged the picture (core.gate), "" for none
)
REFERRED_QUEUES = (Queue.URGENT, Queue.ROUTINE)   # queues whose patients get a referral slip


@dataclass
class BatchReport:
    """What a batch run did: counts for the summary screen and the files written."""

    batch_key: str
    out_dir: Path
    results_csv: Path
    model: ModelInfo
    protocol: str
    files: int
    screened: int                       # files screened in this run (the rest were on record)
    resumed: bool                       # the batch was on record before this run
    seconds: float
    status_counts: dict[Status, int]
    queue_counts: dict[Queue, int]      # patients per queue
    encounters: list[EncounterSummary]
    rejected: list[tuple[str, EyeResult]]   # (file, result) for every file not graded
    summary_pdf: Path | None = None
    referral_pdfs: list[Path] = field(default_factory=list)    # referral slips (urgent, routine)
    documents: list[Path] = field(default_factory=list)        # every patient's document, slips included
    pdf_error: str = ""
    eye_checks: int = 0                 # external-eye photographs checked (counted among "graded": status ok)
    unidentified: list[tuple[str, EyeResult]] = field(default_factory=list)   # (file, result): no patient ID

    @property
    def patients(self) -> int:
        return len(self.encounters)


def write_results_csv(path: Path, files: Sequence[BatchFile], rows: dict[str, BatchFileRow],
                      encounters: dict[str, EncounterSummary], info: ModelInfo, protocol: str) -> Path:
    """One row per file found, written atomically (a crash never leaves half a CSV)."""
    first_of: dict[str, str] = {}
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for bf in files:
            row = rows.get(bf.file)
            if row is None:  # cannot happen after a completed run; never drop a file silently
                writer.writerow({"file": bf.file, "patient_id": bf.patient_id, "eye": _eye(bf.eye),
                                 "status": Status.ERROR.value, "queue": Queue.REVIEW.value,
                                 "message": "not screened: run the command again"})
                continue
            writer.writerow(_csv_row(bf, row, encounters.get(row.encounter_id), info, protocol, first_of))
    os.replace(tmp, path)
    return path


def _csv_row(bf: BatchFile, row: BatchFileRow, enc: EncounterSummary | None, info: ModelInfo, protocol: str,
             first_of: dict[str, str]) -> dict[str, Any]:
    r = row.result
    message = r.message
    if r.sha256 and r.status is not Status.ERROR:
        first = first_of.setdefault(r.sha256, bf.file)
        if first != bf.file:
            message = (message + " " if message else "") + f"(identical to {first})"
    p = r.prediction if r.status is Status.OK else None
    info = row.model or info        # the model stored with the row made it (the eye check's own, for one)
    return {
        "file": bf.file, "patient_id": row.patient_id, "eye": _eye(r.eye), "status": r.status.value,
        "queue": r.queue.value, "grade": "" if r.grade is None else r.grade,
        "p_referable": f"{p.p_referable:.4f}" if p else "", "p_urgent": f"{p.p_urgent:.4f}" if p else "",
        "p_maculopathy": f"{p.p_maculopathy:.4f}" if p and p.p_maculopathy is not None else "",
        "p_quality_reject": _quality_probability(r),
        "message": message, "due_date": enc.due_date.isoformat() if enc else "",
        "patient_queue": enc.queue.value if enc else "",
        "finding": r.decision.finding if r.decision else "", "code": r.decision.code if r.decision else "",
        "quality_reasons": " ".join(r.quality.reasons) if r.quality else "",
        "model": info.name, "model_version": info.version, "protocol": protocol,
        "modality": r.modality, "p_checkup": "" if r.p_checkup is None else f"{r.p_checkup:.4f}",
        "gate": r.gate,
    }


def _quality_probability(result: EyeResult) -> str:
    """The learned gate's p_reject as a CSV cell; "" where it did not judge (no gate,
    not a fundus photograph, or refused before the learned head)."""
    value = result.quality.metrics.get(QUALITY_PROBABILITY) if result.quality else None
    return "" if value is None else f"{float(value):.4f}"


def _eye(eye: Eye) -> str:
    return "" if eye is Eye.UNKNOWN else eye.value


def safe_file_name(text: str) -> str:
    """A patient ID made safe as a file name on every platform (``report_names.safe_name``)."""
    return safe_name(text)


def _write_pdfs(report: BatchReport, cancelled: Callable[[], bool] | None = None) -> None:
    """Every patient's document (referral slip, review slip or result letter) and the
    batch summary through core.reports; a failure here is reported but does not
    undo the screening (the database and CSV are complete). Cancelling stops
    between documents; those written stay."""
    try:
        from . import reports
    except ImportError as exc:
        missing = isinstance(exc, ModuleNotFoundError) and not (exc.name or "").startswith("eyescreen_desktop")
        report.pdf_error = (f"PDF reports are not available in this installation ({exc}); use --no-pdf" if missing
                            else f"the PDF reports failed to load ({exc}): this installation is damaged; "
                                 "reinstall EyeScreen")
        log.error(report.pdf_error)
        return
    names = ReportNames()
    failures = []
    for s in report.encounters:
        _check(cancelled)
        try:
            path = Path(reports.write_patient_document(s, report.out_dir, names=names))
        except Exception as exc:  # noqa: BLE001 - one document must not cost the others
            log.exception("document for %s failed", s.patient.patient_id)
            failures.append(f"{s.patient.patient_id}: {exc}")
            continue
        report.documents.append(path)
        if reports.document_kind(s) == reports.REFERRAL:
            report.referral_pdfs.append(path)
    _check(cancelled)
    try:
        report.summary_pdf = Path(reports.write_batch_summary(report.encounters, [r for _, r in report.rejected],
                                                              report.out_dir / "summary.pdf",
                                                              unidentified=report.unidentified))
    except Exception as exc:  # noqa: BLE001 - any failure here is logged or reported, and must not stop the rest
        log.exception("batch summary PDF failed")
        failures.append(f"summary.pdf: {exc}")
    if failures:
        report.pdf_error = f"{len(failures)} PDF(s) could not be written: " + "; ".join(failures[:3])
