"""Which document a screened patient leaves with, and where it is written.

Every screened patient gets one: a referral slip (urgent or routine), a review
slip (retake or examine in person) or a result letter (annual: no referral).
The window, the batch and ``eyescreen report`` all ask :func:`patient_document`,
so the same patient never gets a letter from one and a slip from another.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from ..records import EncounterSummary, Queue
from ..report_names import ReportNames, report_path
from .layout import SlipSettings, _write_atomic
from .letter import letter_pdf_bytes
from .referral import slip_pdf_bytes
from .review import review_pdf_bytes
from .superseded import keep_superseded, replaces_words

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


@dataclass(frozen=True)
class WrittenDocument:
    """Where a patient's document was written, and the earlier documents of the same
    encounter it superseded (kept, moved under ``superseded/``)."""

    path: Path
    superseded: tuple[Path, ...] = ()


def write_document(summary: EncounterSummary, out_dir: Path, settings: SlipSettings | None = None,
                   names: ReportNames | None = None) -> WrittenDocument:
    """Write the patient's document under ``out_dir``. An earlier document of THIS
    encounter (of any kind: the letter of a patient a grader now refers) is never
    overwritten or deleted: it is kept as superseded (:mod:`.superseded`) and the new
    document says which file it replaces. Another encounter's document is never touched."""
    out_dir = Path(out_dir)
    path = document_path(out_dir, summary, names)
    kept = []
    for folder, _title in DOCUMENT_KINDS.values():
        earlier = path.parent.parent / folder / path.name if folder != path.parent.name else path
        moved = keep_superseded(out_dir, earlier)
        if moved is not None:
            kept.append(moved)
    if kept:
        summary = replace(summary, supersedes=" ".join(replaces_words(out_dir, k) for k in kept))
    document = patient_document(summary, settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(document.data, path)
    return WrittenDocument(path, tuple(kept))


def write_patient_document(summary: EncounterSummary, out_dir: Path, settings: SlipSettings | None = None,
                           names: ReportNames | None = None) -> Path:
    """Write the patient's document under ``out_dir`` (:func:`write_document`: an
    earlier one of this encounter is kept as superseded) and return its path."""
    return write_document(summary, out_dir, settings, names).path
