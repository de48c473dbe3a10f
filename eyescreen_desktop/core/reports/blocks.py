"""The blocks a patient's document is built from, besides the eyes: who the
patient is, the decision in large type with its due date, what traces the result
(model, weights hash, gate, protocol, operating point), the "screening aid, not
a diagnosis" statement and the encounter's QR code."""

from __future__ import annotations

import datetime as dt
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.units import mm
from reportlab.platypus import Flowable, Paragraph, Spacer, Table, TableStyle

from ... import __version__
from ..records import EncounterSummary, Queue
from .pictures import qr_code
from .style import HEADLINES, QUEUE_COLOURS, P, SlipSettings, U, clean_text
from .words import age_on, due_label, due_note, format_date, format_datetime, operating_point_text, protocol_text

DISCLAIMER = (
    "The findings come from an automated analysis of "
    "fundus photographs and must be confirmed by an eye-care professional. A result without referral "
    "does not rule out eye disease: a patient with new visual symptoms needs an eye examination whatever "
    "the screening result."
)


def _field(label: str, value: object, style: str = "value") -> list[Paragraph]:
    """A labelled value: small grey label above the (escaped) value."""
    return [P(escape(label.upper()), "label"), U(value if value not in (None, "") else "not recorded", style)]


def _patient_block(summary: EncounterSummary, width: float) -> Table:
    """Name, ID, birth date (with age), sex, when screened and the encounter ID."""
    p = summary.patient
    age = age_on(p.birth_date, summary.started_at.date())
    born = format_date(p.birth_date) + (f" (age {age})" if age is not None else "") if p.birth_date else ""
    diabetes = " ".join(x for x in (clean_text(p.diabetes_type),
                                    f"for {p.diabetes_years} years" if p.diabetes_years is not None else "") if x)
    rows = [
        [_field("Patient", p.name or "(no name recorded)", "name"), "", _field("Patient ID", p.patient_id, "name"), ""],
        [_field("Birth date", born), _field("Sex", p.sex), _field("Screened", format_datetime(summary.started_at)),
         _field("Diabetes", diabetes)],
        [_field("Encounter ID", summary.encounter_id, "cell"), "", "", ""],
    ]
    table = Table(rows, colWidths=[width * f for f in (0.27, 0.18, 0.30, 0.25)])
    table.setStyle(TableStyle([
        ("SPAN", (0, 0), (1, 0)), ("SPAN", (2, 0), (3, 0)), ("SPAN", (0, 2), (3, 2)),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LEFTPADDING", (0, 0), (-1, -1), 0), ("TOPPADDING", (0, 0), (-1, -1), 3),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]))
    return table


def _decision_block(summary: EncounterSummary, width: float) -> Table:
    """The decision in large type: queue, what to do, and the due date boxed."""
    ink, tint = QUEUE_COLOURS[summary.queue]
    left = [P(f'<font color="{ink}">{escape(HEADLINES[summary.queue])}</font>', "queue"),
            U(summary.action, "action")]
    if summary.queue_note and not summary.overridden:
        left += [Spacer(1, 3), U(summary.queue_note[:1].upper() + summary.queue_note[1:] + ".", "finding")]
    if summary.override_reason:
        was = (f" (the screening gave {summary.computed_queue.label.lower()})"
               if summary.computed_queue and summary.computed_queue is not summary.queue else "")
        left += [Spacer(1, 3), U(f"Queue set by a clinician{was}: {summary.override_reason}", "body")]
    if summary.state != "open":
        left += [Spacer(1, 2), U(f"State: {summary.state}", "small")]
    if grading_words(summary):
        left += [Spacer(1, 3), U(grading_words(summary), "body")]
    if summary.supersedes:
        left += [Spacer(1, 2), U(summary.supersedes, "small")]
    due = [P(due_label(summary.queue), "due_label"), P(escape(format_date(summary.due_date)), "due"),
           P(escape(due_note(summary)), "due_note")]
    return decision_box(summary.queue, left, due, width)


def grading_words(summary: EncounterSummary) -> str:
    """The "graded by" line of a patient's document, or the note that a second
    grader has yet to arbitrate (the more urgent outcome stands meanwhile)."""
    if summary.grading_state == "arbitration_pending":
        return (f"Graded by {summary.graded_by}; the grader and EyeScreen differ, so a second grader will "
                "arbitrate. This referral stands meanwhile; you will hear from us if it changes.")
    if summary.grading_state == "arbitrated":
        return f"Graded by {summary.graded_by} (arbitration)."
    if summary.grading_state == "final":
        return f"Graded by {summary.graded_by}."
    return ""


def decision_box(queue: Queue, left: list[Flowable], due: list[Flowable], width: float) -> Table:
    """The queue-coloured box of a decision with the due date boxed on the right
    (slips and the result letter share it)."""
    ink, tint = QUEUE_COLOURS[queue]
    due_w = 44 * mm
    table = Table([[left, due]], colWidths=[width - due_w, due_w])
    table.setStyle(TableStyle([
        ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor(tint)),
        ("BACKGROUND", (1, 0), (1, 0), colors.white),
        ("BOX", (0, 0), (-1, -1), 0.8, colors.HexColor(ink)),
        ("BOX", (1, 0), (1, 0), 1.6, colors.HexColor(ink)),
        ("LINEBEFORE", (0, 0), (0, 0), 7, colors.HexColor(ink), 0),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("LEFTPADDING", (0, 0), (0, 0), 12), ("TOPPADDING", (0, 0), (-1, -1), 8),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 9),
    ]))
    return table


def sha_markup(sha: str) -> str:
    """A SHA-256 printed once, in full, its first 12 characters bold (what staff
    compare against the model card); it was printed short and then again in full."""
    sha = clean_text(sha)
    return f"<b>{escape(sha[:12])}</b>{escape(sha[12:])}"


def gate_text(summary: EncounterSummary) -> str:
    """The gate(s) that let this visit's photographs through (``core.gate``), or
    that only the hand-made checks ran."""
    gates = sorted({e.gate for e in summary.eyes if e.gate})
    return ", ".join(gates) if gates else "hand-made checks only"


def _provenance_block(summary: EncounterSummary, settings: SlipSettings, width: float) -> Table:
    """Model, weights hash, protocol, operating point: enough to trace the result."""
    m = summary.model
    sha = clean_text(m.sha256) if m else ""
    rows = [
        ("Model", f"{m.name} {m.version}" if m else "not recorded"),
        ("Image gate", gate_text(summary)),
        ("Weights SHA-256", sha_markup(sha) if sha else "not recorded"),
        ("Protocol", protocol_text(summary.protocol_name)),
        ("Operating point", operating_point_text(summary, settings)),
        ("Slip printed", format_datetime(dt.datetime.now()) + f" by EyeScreen {__version__}"),
    ]
    cells = [[P(escape(k), "small"), P(v, "tiny") if k == "Weights SHA-256" else U(v, "small")] for k, v in rows]
    table = Table(cells, colWidths=[30 * mm, width - 30 * mm])
    table.setStyle(TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0),
        ("TOPPADDING", (0, 0), (-1, -1), 0.5), ("BOTTOMPADDING", (0, 0), (-1, -1), 0.5),
    ]))
    return table


def _disclaimer(width: float) -> Table:
    """The "screening aid, not a diagnosis" statement, boxed so it is read."""
    table = Table([[P(f"<b>Screening aid, not a diagnosis.</b> {escape(DISCLAIMER)}", "small")]],
                  colWidths=[width])
    table.setStyle(TableStyle([
        ("BOX", (0, 0), (-1, -1), 0.6, colors.HexColor("#333333")),
        ("LEFTPADDING", (0, 0), (-1, -1), 6), ("TOPPADDING", (0, 0), (-1, -1), 4),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 5),
    ]))
    return table


def _qr_block(encounter_id: str) -> list[Flowable]:
    """QR code of the encounter ID with its caption."""
    return [qr_code(encounter_id, 22 * mm), P("Encounter ID", "qr_caption")]
