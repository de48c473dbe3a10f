"""Shared layout of every EyeScreen PDF: fonts and styles, words for findings and
quality, photograph and heat-map boxes, the page header and footer, the patient,
decision, eyes and provenance blocks and the disclaimer.

The referral slip, the result letter, the review slip and the batch summary are
all built from these, so a change of wording or of the header shows on every
document at once."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.units import mm
from reportlab.platypus import Flowable, Paragraph, Spacer, Table, TableStyle

from ... import __version__
from ...domain.vocabulary import REASON_WORDS, reason_words  # noqa: F401 - REASON_WORDS re-exported by reports
from ..evidence import eye_evidence, format_probability, quality_line
from ..heatmap import NO_AREA_TEXT
from ..records import PHOTO_QUALITY_BORDERLINE, EncounterSummary, Eye, EyeResult, OperatingPoint, Queue, Status
from .page import (
    _build_pdf,
    _header,
    _write_atomic,
    fit_text,
    patient_pdf,
    screening_title,
)
from .pictures import (
    HEATMAP_PX,
    LOGO_MAX_PX,
    PHOTO_PX,
    _image_flowable,
    _thumbnail_cached,
    heatmap_overlay,
    photo_thumbnail,
    qr_code,
    trim_black,
)
from .style import (
    FONT,
    FONT_BOLD,
    GREY,
    HEADLINES,
    PAGE_SIZES,
    QUEUE_COLOURS,
    RULE,
    SERVICE,
    WARN_BG,
    WARN_INK,
    P,
    SlipSettings,
    U,
    clean_text,
    default_logo_path,
    para_text,
    register_fonts,
)
from .words import (
    age_on,
    due_label,
    due_note,
    eye_finding_short,
    eye_heading,
    format_date,
    format_datetime,
    operating_point_text,
    protocol_text,
    quality_advice,
    quality_note,
)

log = logging.getLogger(__name__)

# what the documents (referral, letter, review, summary, eye check, calibration report, FHIR,
# CSV) import from here: the shared layout is one import, wherever each helper lives
__all__ = [
    "age_on", "_build_pdf", "clean_text", "_decision_block", "decision_box", "default_logo_path", "DISCLAIMER",
    "_disclaimer", "due_label", "due_note", "eye_finding_short", "eye_heading", "eye_pairs", "_eyes_block",
    "_field", "fit_text", "FONT", "FONT_BOLD", "format_date", "format_datetime", "format_probability",
    "gate_text", "GREY", "_header", "HEADLINES", "heatmap_overlay", "HEATMAP_PX", "_image_flowable",
    "LOGO_MAX_PX", "missing_words", "operating_point_text", "P", "PAGE_SIZES", "para_text", "_patient_block",
    "patient_pdf", "PHOTO_PX", "photo_thumbnail", "protocol_text", "_provenance_block", "_qr_block", "qr_code",
    "quality_advice", "quality_note", "QUEUE_COLOURS", "REASON_WORDS", "reason_words", "register_fonts", "RULE",
    "screening_title", "SERVICE", "sha_markup", "SlipSettings", "_thumbnail_cached", "trim_black", "U",
    "WARN_BG", "WARN_INK", "_warning_box", "_write_atomic",
]

DISCLAIMER = (
    "The findings come from an automated analysis of "
    "fundus photographs and must be confirmed by an eye-care professional. A result without referral "
    "does not rule out eye disease: a patient with new visual symptoms needs an eye examination whatever "
    "the screening result."
)

# --------------------------------------------------------------------------- referral slip


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
    due = [P(due_label(summary.queue), "due_label"), P(escape(format_date(summary.due_date)), "due"),
           P(escape(due_note(summary)), "due_note")]
    return decision_box(summary.queue, left, due, width)


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


def _eye_pictures(result: EyeResult, width: float, settings: SlipSettings) -> Flowable:
    """Photograph and (when present) heat map side by side at the same height,
    with captions."""
    photo = photo_thumbnail(result.path) if result.path else None
    if photo is None:
        return _warning_box([U("No picture: the photograph file is not available "
                               f"({Path(result.path).name if result.path else 'no file'}).", "small")])
    heat = heatmap_overlay(photo, result.heatmap) if (settings.show_heatmaps and result.heatmap is not None) else None
    pictures = [trim_black(photo)] + ([heat] if heat is not None else [])
    captions = ["Photograph"] + (["Heat map: where the model saw signs of disease"] if heat is not None else [])
    if heat is None and settings.show_heatmaps and result.status is Status.OK:
        captions[0] = f"Photograph. {NO_AREA_TEXT}"  # maps are kept only for referred eyes
    gap = 8.0 if heat is not None else 0.0
    aspects = [p.shape[1] / p.shape[0] for p in pictures]
    height = min(42 * mm, (width - gap - 2 * len(pictures)) / sum(aspects))
    images: list[Any] = [_image_flowable(p, a * height, height) for p, a in zip(pictures, aspects)]
    words: list[Any] = [P(escape(c), "tiny") for c in captions]
    widths = [a * height + 2 for a in aspects]
    if heat is not None:  # a narrow empty column keeps the two pictures apart
        images.insert(1, "")
        words.insert(1, "")
        widths.insert(1, gap)
    return Table([images, words], colWidths=widths, style=_PICTURE_STYLE, hAlign="LEFT")


_PICTURE_STYLE = TableStyle([
    ("ALIGN", (0, 0), (-1, 0), "LEFT"), ("VALIGN", (0, 0), (-1, 0), "MIDDLE"),
    ("LEFTPADDING", (0, 0), (-1, -1), 1), ("RIGHTPADDING", (0, 0), (-1, -1), 1),
    ("TOPPADDING", (0, 0), (-1, -1), 1), ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
])


def _eye_words(result: EyeResult, op: OperatingPoint | None = None) -> list[Flowable]:
    """Finding, probabilities and quality notes of one eye: what the evidence
    supports against the clinic's thresholds (``op``), then the protocol's code."""
    out: list[Flowable] = []
    if result.status is Status.OK and result.decision is not None:
        d = result.decision
        evidence = eye_evidence(result, op)
        for e in evidence:
            out.append(P(f"<b>{escape(e.headline)}</b> ({escape(e.basis)})", "body"))
        grade = f" (ICDR grade {d.grade})" if d.grade is not None and not d.code.startswith("ICDR") else ""
        out.append(U(f"Protocol code: {d.code}{grade}", "small" if evidence else "body"))
        if result.p_checkup is not None:   # external-eye photograph: an eye check, never a DR grade
            out.insert(0, U(f"{d.finding[:1].upper()}{d.finding[1:]}", "finding"))
            out.append(P(escape("Photograph of the front of the eye (eye check, not a diabetic-retinopathy "
                                f"grade). Probability that an eye check-up is needed: "
                                f"{format_probability(result.p_checkup)}"), "small"))
        elif result.quality is not None and result.quality.borderline:
            out.append(P(f'<font color="{WARN_INK}">Image quality: {PHOTO_QUALITY_BORDERLINE}</font>', "small"))
        else:
            out.append(P(f'<font color="#1B5E20">{escape(quality_line(result))}</font>', "small"))
    else:
        out.append(_warning_box([U(quality_note(result), "finding"), U(quality_advice(result), "body")]))
    if result.path:
        out.append(U(f"File: {Path(result.path).name}", "tiny"))
    return out


def _warning_box(content: list[Flowable]) -> Table:
    """An amber box for what could not be graded."""
    table = Table([[content]])
    table.setStyle(TableStyle([
        ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor(WARN_BG)),
        ("BOX", (0, 0), (-1, -1), 0.8, colors.HexColor(WARN_INK)),
        ("LEFTPADDING", (0, 0), (-1, -1), 5), ("TOPPADDING", (0, 0), (-1, -1), 3),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 4),
    ]))
    return table


def missing_words(summary: EncounterSummary, side: Eye) -> str:
    """Why this eye has no photograph, when staff recorded it; else ''."""
    return next((m.words for m in summary.missing_eyes if m.eye is side), "")


def _eye_cell(result: EyeResult | None, side: Eye, width: float, settings: SlipSettings,
              missing: str = "", op: OperatingPoint | None = None) -> list[Flowable]:
    """Everything about one eye, for one column of the eyes table."""
    if result is None:
        words = f"Not photographed: {missing}." if missing else "No photograph of this eye in this encounter."
        return [P(escape(eye_heading(side)), "eye"), Spacer(1, 4), U(words, "body")]
    ink = QUEUE_COLOURS[result.queue][0]
    heading = (f'{escape(eye_heading(result.eye))}'
               f'<font color="{ink}" size="8">  \u25cf {escape(result.queue.value)}</font>')
    pictures: list[Flowable] = [] if result.status is Status.ERROR else [_eye_pictures(result, width, settings),
                                                                         Spacer(1, 3)]
    return [P(heading, "eye"), Spacer(1, 3), *pictures, *_eye_words(result, op)]


def eye_pairs(eyes: Sequence[EyeResult]) -> list[tuple[tuple[EyeResult | None, Eye], tuple[EyeResult | None, Eye]]]:
    """Eyes in rows of two: right eye on the left, left eye on the right (as the
    clinician faces the patient); extra photographs and eyes of unknown side
    follow in further rows."""
    right = [e for e in eyes if e.eye is Eye.RIGHT]
    left = [e for e in eyes if e.eye is Eye.LEFT]
    other = [e for e in eyes if e.eye is Eye.UNKNOWN]
    rows = []
    for i in range(max(len(right), len(left), 0 if other else 1)):
        rows.append(((right[i] if i < len(right) else None, Eye.RIGHT),
                     (left[i] if i < len(left) else None, Eye.LEFT)))
    for i in range(0, len(other), 2):
        second = other[i + 1] if i + 1 < len(other) else None
        rows.append(((other[i], Eye.UNKNOWN), (second, Eye.UNKNOWN)))
    return rows


def _eyes_block(summary: EncounterSummary, width: float, settings: SlipSettings) -> list[Flowable]:
    """The eyes side by side, one table row per pair."""
    col = (width - 8) / 2
    out: list[Flowable] = []
    for (a, side_a), (b, side_b) in eye_pairs(summary.eyes):
        op = summary.operating_point
        right_cell = _eye_cell(a, side_a, col - 12, settings, missing_words(summary, side_a), op)
        left_cell = _eye_cell(b, side_b, col - 12, settings, missing_words(summary, side_b), op) \
            if (b is not None or side_b is not Eye.UNKNOWN) else ""
        table = Table([[right_cell, "", left_cell]], colWidths=[col, 8, col])
        boxes = [("BOX", (0, 0), (0, 0), 0.6, colors.HexColor(RULE))]
        if left_cell != "":
            boxes.append(("BOX", (2, 0), (2, 0), 0.6, colors.HexColor(RULE)))
        table.setStyle(TableStyle([
            *boxes, ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("LEFTPADDING", (0, 0), (-1, -1), 6), ("RIGHTPADDING", (0, 0), (-1, -1), 6),
            ("TOPPADDING", (0, 0), (-1, -1), 5), ("BOTTOMPADDING", (0, 0), (-1, -1), 6),
        ]))
        out += [table, Spacer(1, 5)]
    return out


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


