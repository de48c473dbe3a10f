"""The eye-check result slip: what a person takes home from the external-eye check.

Same reportlab layout as the referral slip (header, fonts, footer, atomic
write; ``layout``), built for a pharmacy counter or a school nurse's table:
the verdict in the course's own words in large type ("Go for an eye check-up"
/ "Your eye looks healthy"), then each eye (right eye on the left, as the
reader faces the person) with its crop, heat map, finding in words and
probability, then the model that checked it and a boxed statement that this
is not a diagnosis, that the labels it learnt from were web labels, and that
"looks healthy" is not a diabetic-retinopathy screen.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from xml.sax.saxutils import escape

import cv2
import numpy as np
from reportlab.lib import colors
from reportlab.lib.units import mm
from reportlab.platypus import Flowable, KeepTogether, Spacer, Table, TableStyle

from ... import __version__
from ..external_eye import EyeCheck, PhotoCheck
from ..protocol import NEEDS_FUNDUS
from ..records import ModelInfo, Patient, Queue
from .layout import (
    QUEUE_COLOURS,
    RULE,
    SlipSettings,
    P,
    U,
    _build_pdf,
    _field,
    _header,
    _image_flowable,
    _warning_box,
    _write_atomic,
    format_datetime,
    format_probability,
    sha_markup,
)

TITLE = "Eye check result"
CHECKUP_ACTION = "Go for an eye check-up with an optometrist or ophthalmologist within 3 months."
HEALTHY_ACTION = "No check-up needed now. Come back if an eye hurts, is red, or sight changes."
EYE_CHECK_DISCLAIMER = (
    "This result comes from an automated look at a photograph of the front of the eye; it is not a diagnosis "
    "and does not replace an eye examination. The model learnt from pictures collected on the web with web "
    "labels (research and demonstration only). It cannot see the back of the eye: it is not a "
    f"diabetic-retinopathy screen, and for people with diabetes {NEEDS_FUNDUS}."
)


def heat_overlay(crop: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """The heat map in colour over the eye crop the model saw (same geometry)."""
    h, w = crop.shape[:2]
    heat = cv2.resize(np.nan_to_num(np.asarray(heat, np.float32)).clip(0, 1), (w, h))
    colour = cv2.cvtColor(cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    alpha = (0.55 * heat)[..., None]
    return (crop * (1 - alpha) + colour * alpha).clip(0, 255).astype(np.uint8)


def _verdict_block(check: PhotoCheck, width: float) -> Table:
    """The verdict in large type, coloured like the routine or annual queue."""
    queue = Queue.ROUTINE if check.checkup else Queue.ANNUAL
    ink, tint = QUEUE_COLOURS[queue]
    words = "Go for an eye check-up" if check.checkup else "Your eye looks healthy"
    action = CHECKUP_ACTION if check.checkup else HEALTHY_ACTION
    table = Table([[[P(f'<font color="{ink}">{escape(words)}</font>', "queue"), U(action, "action")]]],
                  colWidths=[width])
    table.setStyle(TableStyle([
        ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor(tint)),
        ("BOX", (0, 0), (-1, -1), 0.8, colors.HexColor(ink)),
        ("LINEBEFORE", (0, 0), (0, 0), 7, colors.HexColor(ink), 0),
        ("LEFTPADDING", (0, 0), (0, 0), 12), ("TOPPADDING", (0, 0), (-1, -1), 8),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 9),
    ]))
    return table


def _eye_cell(eye: EyeCheck, width: float, settings: SlipSettings) -> list[Flowable]:
    """One eye: heading, crop and heat map, verdict, finding, probability (or the message)."""
    out: list[Flowable] = [P(escape(eye.box.label.capitalize()), "eye"), Spacer(1, 3)]
    if not eye.checked:
        return out + [_warning_box([U("Not checked", "finding"), U(eye.message, "body")])]
    # the heat map shows evidence of a finding: only drawn where a check-up is advised
    pictures = [eye.crop] + ([heat_overlay(eye.crop, eye.heatmap)]
                             if settings.show_heatmaps and eye.checkup and eye.heatmap is not None else [])
    side = min(40 * mm, (width - 8) / len(pictures))
    images: list = [_image_flowable(p, side, side) for p in pictures]
    captions = [P("Eye as checked", "tiny")] + ([P("Heat map: where the model saw signs of a finding", "tiny")]
                                               if len(pictures) > 1 else [])
    out.append(Table([images, captions], colWidths=[side + 4] * len(pictures), hAlign="LEFT",
                     style=TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 1)])))
    ink = QUEUE_COLOURS[Queue.ROUTINE if eye.checkup else Queue.ANNUAL][0]
    out += [Spacer(1, 3), P(f'<font color="{ink}">{escape(eye.verdict)}</font>', "finding"),
            U(eye.finding[:1].upper() + eye.finding[1:], "body"),
            P(escape(f"Probability that a check-up is needed: {format_probability(eye.p_checkup)}"), "small")]
    return out


def _eyes_block(check: PhotoCheck, width: float, settings: SlipSettings) -> list[Flowable]:
    """Eyes in rows of two, right eye first."""
    order = {"R": 0, "L": 1, "?": 2}
    eyes = sorted(check.eyes, key=lambda e: order.get(e.box.side, 2))
    col = (width - 8) / 2
    out: list[Flowable] = []
    for i in range(0, len(eyes), 2):
        cells = [_eye_cell(e, col - 12, settings) for e in eyes[i:i + 2]]
        row = [cells[0], "", cells[1] if len(cells) > 1 else ""]
        boxes = [("BOX", (0, 0), (0, 0), 0.6, colors.HexColor(RULE))]
        if len(cells) > 1:
            boxes.append(("BOX", (2, 0), (2, 0), 0.6, colors.HexColor(RULE)))
        table = Table([row], colWidths=[col, 8, col])
        table.setStyle(TableStyle([*boxes, ("VALIGN", (0, 0), (-1, -1), "TOP"),
                                   ("LEFTPADDING", (0, 0), (-1, -1), 6), ("TOPPADDING", (0, 0), (-1, -1), 5),
                                   ("BOTTOMPADDING", (0, 0), (-1, -1), 6)]))
        out += [table, Spacer(1, 5)]
    return out


def _person_block(patient: Patient | None, checked_at: dt.datetime, width: float) -> Table:
    p = patient or Patient("")
    rows = [[_field("Name", p.name or "(not given)", "name"), _field("ID", p.patient_id or "(not given)"),
             _field("Checked", format_datetime(checked_at))]]
    table = Table(rows, colWidths=[width * 0.45, width * 0.25, width * 0.30])
    table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0)]))
    return table


def _about_block(model: ModelInfo | None, width: float) -> list[Flowable]:
    sha = model.sha256 if model else ""
    lines = [P(escape(f"Model: {model.name} {model.version}" if model else "Model: not recorded"), "small"),
             P(f"Weights SHA-256: {sha_markup(sha)}", "tiny"),
             P(escape(f"Printed {format_datetime(dt.datetime.now())} by EyeScreen {__version__}"), "small")]
    box = Table([[P(f"<b>Not a diagnosis.</b> {escape(EYE_CHECK_DISCLAIMER)}", "small")]], colWidths=[width])
    box.setStyle(TableStyle([("BOX", (0, 0), (-1, -1), 0.6, colors.HexColor("#333333")),
                             ("LEFTPADDING", (0, 0), (-1, -1), 6), ("TOPPADDING", (0, 0), (-1, -1), 4),
                             ("BOTTOMPADDING", (0, 0), (-1, -1), 5)]))
    return [*lines, Spacer(1, 6), box]


def eye_check_story(check: PhotoCheck, patient: Patient | None, model: ModelInfo | None,
                    checked_at: dt.datetime, settings: SlipSettings) -> list[Flowable]:
    """The flowables of one eye-check slip (exposed for tests and previews)."""
    if check.checkup is None:
        raise ValueError("no eye in this photograph could be checked: there is no result to print")
    width = settings.pagesize[0] - 28 * mm
    return [_header(settings, TITLE, width), Spacer(1, 4), _person_block(patient, checked_at, width), Spacer(1, 6),
            _verdict_block(check, width), Spacer(1, 8), *_eyes_block(check, width, settings),
            KeepTogether(_about_block(model, width))]


def eye_check_pdf_bytes(check: PhotoCheck, patient: Patient | None = None, model: ModelInfo | None = None,
                        checked_at: dt.datetime | None = None, settings: SlipSettings | None = None) -> bytes:
    """The eye-check slip as PDF bytes; refuses a check without a verdict."""
    settings = settings or SlipSettings(clinic_name="Eye check")
    checked_at = checked_at or dt.datetime.now()
    who = f" \u00b7 {patient.patient_id}" if patient and patient.patient_id else ""
    footer = f"{TITLE}{who} \u00b7 research and demonstration only \u00b7 not a diagnosis"
    return _build_pdf(eye_check_story(check, patient, model, checked_at, settings), settings, TITLE, footer)


def write_eye_check_slip(check: PhotoCheck, path: Path, patient: Patient | None = None,
                         model: ModelInfo | None = None, checked_at: dt.datetime | None = None,
                         settings: SlipSettings | None = None) -> Path:
    """Write the eye-check slip to ``path`` (PDF), atomically."""
    return _write_atomic(eye_check_pdf_bytes(check, patient, model, checked_at, settings), Path(path))
