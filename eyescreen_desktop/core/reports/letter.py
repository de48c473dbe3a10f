"""The result letter: what a patient with no referral takes home.

Screening programmes write to every patient, not only to those referred: the
letter says that no referral is needed, when the next screening is due, that a
screening result is not a diagnosis, and what to do if the eyesight changes
before then. It speaks to the patient (plain words, no probabilities); the
trace (model, protocol) is kept small at the bottom for staff.
"""

from __future__ import annotations

from pathlib import Path

from reportlab.lib import colors
from reportlab.lib.units import mm
from reportlab.platypus import Flowable, KeepTogether, Spacer, Table, TableStyle

from ..protocol import IN_PERSON_EXAM, unexamined_eyes
from ..records import EncounterSummary, Eye, EyeResult, Status
from .layout import (
    SlipSettings,
    U,
    _header,
    _patient_block,
    _provenance_block,
    _qr_block,
    _write_atomic,
    decision_box,
    format_date,
    grading_words,
    missing_words,
    patient_pdf,
)

NOT_A_DIAGNOSIS = (
    "This result comes from a screening test: photographs of the back of your eyes, checked by "
    "a computer program for signs of diabetic eye disease. It is not a diagnosis and does not "
    "replace a full eye examination. Screening can miss disease, and other eye conditions are "
    "not looked for."
)
VISION_CHANGES = (
    "Do not wait for your next screening if your eyesight changes. Contact your doctor, an "
    "optician or an eye clinic straight away if you notice: blurred or reduced vision, sudden "
    "loss of vision, new floaters or flashes of light, a dark shadow or curtain over your "
    "vision, straight lines looking wavy, or pain or redness in an eye."
)
LOOK_AFTER = (
    "Keeping your blood sugar, blood pressure and cholesterol under control lowers the risk of "
    "diabetic eye disease. Please bring this letter to your next screening."
)


def _eye_line(side: Eye, result: EyeResult | None, summary: EncounterSummary) -> str:
    """One eye in plain words for the patient."""
    name = {Eye.RIGHT: "Right eye", Eye.LEFT: "Left eye"}.get(side, "Eye")
    if result is None:
        why = missing_words(summary, side)
        return f"{name}: not photographed" + (f" ({why})" if why else "")
    if result.status is Status.OK and result.decision is not None:
        finding = result.decision.finding
        return f"{name}: {finding} (no referral needed)"
    return f"{name}: the photograph could not be assessed"


def _result_sentence(summary: EncounterSummary) -> str:
    """What the letter can truthfully say: an eye nobody photographed (other than no eye,
    or one an eye clinic follows) was not screened and needs an examination in person."""
    unexamined = unexamined_eyes(summary.eyes, summary.missing_eyes)
    if not unexamined:
        return "Your screening photographs showed no diabetic eye disease that needs an eye clinic."
    sides = " and ".join(e.label for e in unexamined)
    needs = "they need" if len(unexamined) > 1 else "it needs"
    return (f"Your {sides} could not be screened with a photograph: {needs} an eye examination in person "
            f"({IN_PERSON_EXAM}). Please ask your doctor or an eye clinic to arrange it.")


def _result_box(summary: EncounterSummary, width: float) -> Table:
    """The result in large type: no referral, and the rescreen date boxed."""
    left = [U("NO REFERRAL NEEDED", "queue"), U(_result_sentence(summary), "action")]
    if summary.override_reason:
        left += [Spacer(1, 3), U(f"Decided by a clinician: {summary.override_reason}", "body")]
    if grading_words(summary):
        left += [Spacer(1, 3), U(grading_words(summary), "body")]
    if summary.supersedes:
        left += [Spacer(1, 2), U(summary.supersedes, "small")]
    due = [U("NEXT SCREENING BY", "due_label"), U(format_date(summary.due_date), "due"),
           U("you will be invited", "due_note")]
    return decision_box(summary.queue, left, due, width)


def _boxed(title: str, text: str, width: float, ink: str = "#333333", tint: str = "#FFFFFF") -> Table:
    """A titled box of plain text (the two notices every letter carries)."""
    table = Table([[[U(title, "finding"), Spacer(1, 2), U(text, "body")]]], colWidths=[width])
    table.setStyle(TableStyle([
        ("BOX", (0, 0), (-1, -1), 0.8, colors.HexColor(ink)),
        ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor(tint)),
        ("LEFTPADDING", (0, 0), (-1, -1), 8), ("TOPPADDING", (0, 0), (-1, -1), 5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 7),
    ]))
    return table


def _eyes_lines(summary: EncounterSummary) -> list[Flowable]:
    """Each eye on its own line, right eye first."""
    by_side = {e.eye: e for e in summary.eyes if e.eye is not Eye.UNKNOWN}
    lines = [U(_eye_line(side, by_side.get(side), summary), "body") for side in (Eye.RIGHT, Eye.LEFT)]
    lines += [U(_eye_line(Eye.UNKNOWN, e, summary), "body") for e in summary.eyes if e.eye is Eye.UNKNOWN]
    return [U("What the photographs showed", "finding"), Spacer(1, 2), *lines]


def letter_story(summary: EncounterSummary, settings: SlipSettings) -> list[Flowable]:
    """The flowables of one result letter (exposed for tests and previews)."""
    width = settings.pagesize[0] - 28 * mm
    return [
        _header(settings, "Your diabetic eye screening result", width, _qr_block(summary.encounter_id)),
        Spacer(1, 4), _patient_block(summary, width), Spacer(1, 8),
        _result_box(summary, width), Spacer(1, 8),
        *_eyes_lines(summary), Spacer(1, 8),
        _boxed("If your eyesight changes", VISION_CHANGES, width, "#B71C1C", "#FDECEA"), Spacer(1, 6),
        _boxed("This is not a diagnosis", NOT_A_DIAGNOSIS, width), Spacer(1, 6),
        U(LOOK_AFTER, "body"), Spacer(1, 10),
        KeepTogether([_provenance_block(summary, settings, width)]),
    ]


def letter_pdf_bytes(summary: EncounterSummary, settings: SlipSettings | None = None) -> bytes:
    """The result letter as PDF bytes."""
    return patient_pdf(summary, letter_story, settings, "Result letter")


def write_result_letter(summary: EncounterSummary, path: Path, settings: SlipSettings | None = None) -> Path:
    """Write one patient's result letter to ``path`` (PDF)."""
    return _write_atomic(letter_pdf_bytes(summary, settings), Path(path))
