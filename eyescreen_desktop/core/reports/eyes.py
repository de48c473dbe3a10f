"""The eyes on a patient's document, side by side (right eye on the left, as the
clinician faces the patient): each eye's photograph and heat map, what the
evidence supports against the clinic's thresholds, the protocol's code, and the
amber box for an eye that could not be graded."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.units import mm
from reportlab.platypus import Flowable, Spacer, Table, TableStyle

from ..evidence import eye_evidence, format_probability, quality_line
from ..heatmap import NO_AREA_TEXT
from ..records import PHOTO_QUALITY_BORDERLINE, EncounterSummary, Eye, EyeResult, OperatingPoint, Status
from .pictures import _image_flowable, heatmap_overlay, photo_thumbnail, trim_black
from .style import QUEUE_COLOURS, RULE, WARN_BG, WARN_INK, P, SlipSettings, U
from .words import eye_heading, quality_advice, quality_note


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
