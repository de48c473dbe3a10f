"""Which document a screened patient leaves with, and where it is written.

Every screened patient gets one: a referral slip (urgent or routine), a review
slip (retake or examine in person) or a result letter (annual: no referral).
The window, the batch and ``eyescreen report`` all ask :func:`patient_document`,
so the same patient never gets a letter from one and a slip from another.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..records import EncounterSummary, Queue
from ..report_names import ReportNames, remove_stale, report_path
from .layout import SlipSettings, _write_atomic
from .letter import letter_pdf_bytes
from .referral import slip_pdf_bytes
from .review import review_pdf_bytes

REFERRAL, REVIEW, LETTER = "referral", "review", "letter"
# kind -> (folder under an output folder, title for staff)
DOCUMENT_KINDS: dict[str, tuple[str, str]] = {
    REFERRAL: ("referrals", "Referral slip"),
    REVIEW: ("review", "Review slip (retake or examine in person)"),
    LETTER: ("letters", "Result letter (no referral)"),
}
_BUILDERS: dict[str, Callable[[EncounterSummary, SlipSettings | None], bytes]] = {
    REFERRAL: slip_pdf_bytes, REVIEW: review_pdf_bytes, LETTER: letter_pdf_bytes,
}


@dataclass(frozen=True)
class PatientDocument:
    """One patient's document: its kind, a title for staff and the PDF bytes."""

    kind: str
    title: str
    data: bytes

    @property
    def folder(self) -> str:
        """The sub-folder of an output folder this kind is written into."""
        return DOCUMENT_KINDS[self.kind][0]


def document_kind(summary: EncounterSummary) -> str:
    """``referral`` for urgent and routine, ``review`` for review, ``letter`` for annual
    (the effective queue, a clinician's override included)."""
    return {Queue.URGENT: REFERRAL, Queue.ROUTINE: REFERRAL, Queue.REVIEW: REVIEW}.get(summary.queue, LETTER)


def patient_document(summary: EncounterSummary, settings: SlipSettings | None = None) -> PatientDocument:
    """The document this patient leaves with, built as PDF bytes (preview, print or save)."""
    kind = document_kind(summary)
    return PatientDocument(kind, DOCUMENT_KINDS[kind][1], _BUILDERS[kind](summary, settings))


def document_path(out_dir: Path, summary: EncounterSummary, names: ReportNames | None = None) -> Path:
    """Where the patient's document goes under an output folder:
    ``<out>/<referrals|review|letters>/<patient>_<encounter>.pdf``."""
    folder = Path(out_dir) / DOCUMENT_KINDS[document_kind(summary)][0]
    return report_path(folder, summary.patient.patient_id, summary.encounter_id, names=names)


def write_patient_document(summary: EncounterSummary, out_dir: Path, settings: SlipSettings | None = None,
                           names: ReportNames | None = None) -> Path:
    """Write the patient's document under ``out_dir`` and remove this encounter's
    document of another kind left by an earlier run (a patient moved from review
    to referral keeps only the referral slip); never touches another encounter's."""
    document = patient_document(summary, settings)
    path = document_path(out_dir, summary, names)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(document.data, path)
    for kind, (folder, _title) in DOCUMENT_KINDS.items():
        if kind != document.kind:
            remove_stale(Path(out_dir) / folder, path, summary.patient.patient_id, summary.encounter_id)
    return path
