"""The review slip: a patient whose eyes could not all be graded.

It is for the staff who act on it the same day ("retake the photograph now, or
examine the eye in person"), so it says, eye by eye, what went wrong and what
to do, including an eye that was not photographed at all, with the photographs
below so the retake can be judged against them.
"""

from __future__ import annotations

from pathlib import Path

from reportlab.lib.units import mm
from reportlab.platypus import Flowable, KeepTogether, Spacer

from ..protocol import IN_PERSON_EXAM, OTHER_EYE_NOT_PHOTOGRAPHED, unexamined_eyes
from ..records import EncounterSummary, Eye, Status
from .layout import (
    SlipSettings,
    U,
    _decision_block,
    _disclaimer,
    _eyes_block,
    _header,
    _patient_block,
    _provenance_block,
    _qr_block,
    _warning_box,
    _write_atomic,
    patient_pdf,
    quality_advice,
    quality_note,
)


_SIDE = {Eye.RIGHT: "Right eye", Eye.LEFT: "Left eye", Eye.UNKNOWN: "Eye of unknown side"}


def review_reasons(summary: EncounterSummary) -> list[str]:
    """What needs doing, one line per eye or reason: the current photographs not
    graded, an eye with no photograph, and a clinician's reason."""
    lines = []
    for e in summary.eyes:
        if e.status is not Status.OK:
            lines.append(f"{quality_note(e)}. {quality_advice(e)}")
    photographed = {e.eye for e in summary.eyes}
    recorded = {m.eye: m for m in summary.missing_eyes}
    for side in (Eye.RIGHT, Eye.LEFT):
        if side not in photographed and side not in recorded and summary.queue_note:
            lines.append(f"{_SIDE[side]}: not photographed. Photograph it, or record "
                         "why it cannot be (e.g. prosthetic eye, patient declined).")
    for side in unexamined_eyes(summary.eyes, summary.missing_eyes):
        lines.append(f"{_SIDE[side]} not photographed: {recorded[side].words}. Examine it in person: "
                     f"{IN_PERSON_EXAM}.")
    if summary.queue_note and summary.queue_note != OTHER_EYE_NOT_PHOTOGRAPHED and not lines:
        lines.append(summary.queue_note[:1].upper() + summary.queue_note[1:] + ".")
    if summary.override_reason:
        lines.append(f"Queue set by a clinician: {summary.override_reason}")
    return lines or ["Examine the patient in person."]


def review_story(summary: EncounterSummary, settings: SlipSettings) -> list[Flowable]:
    """The flowables of one review slip (exposed for tests and previews)."""
    width = settings.pagesize[0] - 28 * mm
    todo = _warning_box([U("What to do", "finding"), *(U(line, "body") for line in review_reasons(summary))])
    return [
        _header(settings, "Review slip \u2013 retake the photograph or examine in person", width,
                _qr_block(summary.encounter_id)),
        Spacer(1, 4), _patient_block(summary, width), Spacer(1, 6),
        _decision_block(summary, width), Spacer(1, 6), todo, Spacer(1, 8),
        *_eyes_block(summary, width, settings), Spacer(1, 2),
        KeepTogether([_provenance_block(summary, settings, width), Spacer(1, 6), _disclaimer(width)]),
    ]


def review_pdf_bytes(summary: EncounterSummary, settings: SlipSettings | None = None) -> bytes:
    """The review slip as PDF bytes."""
    return patient_pdf(summary, review_story, settings, "Review slip")


def write_review_slip(summary: EncounterSummary, path: Path, settings: SlipSettings | None = None) -> Path:
    """Write one patient's review slip to ``path`` (PDF)."""
    return _write_atomic(review_pdf_bytes(summary, settings), Path(path))
