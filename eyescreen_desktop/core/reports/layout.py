"""Shared layout of every EyeScreen PDF, one import for the documents built on it
(referral slip, result letter, review slip, batch summary, eye-check slip,
calibration report, FHIR and CSV exports). Each job lives in its own module:

* ``style``: page settings a clinic sets once, fonts, colours, paragraph styles;
* ``words``: words for findings, quality, dates, due dates and the operating point;
* ``pictures``: photograph thumbnails, heat-map overlay, logo, QR code;
* ``page``: header, footer ("page N of M"), the PDF build and the atomic write;
* ``eyes``: the eyes side by side with their pictures and evidence;
* ``blocks``: the patient, decision and provenance blocks and the disclaimer.

The referral slip, the result letter, the review slip and the batch summary are
all built from these, so a change of wording or of the header shows on every
document at once."""

from __future__ import annotations

from ...domain.vocabulary import REASON_WORDS, reason_words
from ..evidence import format_probability
from .blocks import (
    DISCLAIMER,
    _decision_block,
    _disclaimer,
    _field,
    _patient_block,
    _provenance_block,
    _qr_block,
    decision_box,
    gate_text,
    grading_words,
    sha_markup,
)
from .eyes import (
    _eyes_block,
    _warning_box,
    eye_pairs,
    missing_words,
)
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

# what the documents (referral, letter, review, summary, eye check, calibration report, FHIR,
# CSV) import from here: the shared layout is one import, wherever each helper lives
__all__ = [
    "age_on", "grading_words", "_build_pdf", "clean_text", "_decision_block", "decision_box", "default_logo_path", "DISCLAIMER",
    "_disclaimer", "due_label", "due_note", "eye_finding_short", "eye_heading", "eye_pairs", "_eyes_block",
    "_field", "fit_text", "FONT", "FONT_BOLD", "format_date", "format_datetime", "format_probability",
    "gate_text", "GREY", "_header", "HEADLINES", "heatmap_overlay", "HEATMAP_PX", "_image_flowable",
    "LOGO_MAX_PX", "missing_words", "operating_point_text", "P", "PAGE_SIZES", "para_text", "_patient_block",
    "patient_pdf", "PHOTO_PX", "photo_thumbnail", "protocol_text", "_provenance_block", "_qr_block", "qr_code",
    "quality_advice", "quality_note", "QUEUE_COLOURS", "REASON_WORDS", "reason_words", "register_fonts", "RULE",
    "screening_title", "SERVICE", "sha_markup", "SlipSettings", "_thumbnail_cached", "trim_black", "U",
    "WARN_BG", "WARN_INK", "_warning_box", "_write_atomic",
]

