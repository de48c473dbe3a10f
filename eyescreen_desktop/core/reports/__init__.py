"""Referral slips, result letters, review slips, batch summaries, the queue CSV and
the FHIR R4 export.

A referral slip is what the patient carries to the eye clinic and what the
receiving ophthalmologist reads first, so it is built for that reader: the
decision (queue, what to do, by when) in large type, both eyes side by side
(right eye on the left, as the clinician faces the patient) with photograph,
heat map, finding, probability and quality notes, then everything needed to
trace the result (model, weights hash, protocol, operating point) and a QR
code of the encounter ID. Every screened patient leaves with a document
(:func:`patient_document` picks it): the referral slip, the review slip
("retake or examine in person") or the result letter (no referral, rescreen date).

The package, one module per document over shared layout helpers:

* ``layout``: the one import of the shared layout, kept one job per module:
  ``style`` (settings, fonts, styles), ``words``, ``pictures`` (photograph and
  heat-map boxes, logo, QR), ``page`` (header, footer, PDF build), ``eyes`` and
  ``blocks`` (patient, decision, provenance blocks, disclaimer);
* ``referral``: the referral slip; ``letter``: the result letter for annual
  patients; ``review``: the review slip; ``documents``: which one a patient gets;
* ``summary``: the batch summary; ``csv_export`` and ``fhir``: the exports.

Decisions worth knowing:

* **Qt-free.** The batch command, the desktop app (preview and print) and the
  ``eyescreen report`` command all call the same functions, so what a nurse
  previews is byte for byte what the batch writes.
* **Nothing typed by a person is trusted as markup.** Every piece of user text
  (names, IDs, addresses, file names, override reasons, messages) goes through
  :func:`para_text`, which drops control characters and escapes ``& < >``;
  ``<b>`` or ``</para>`` in a name prints literally and cannot break the PDF.
* **One font that covers Latin, Greek and Cyrillic** (DejaVu Sans, shipped in
  ``resources/fonts``, embedded as a subset) on every machine, registered once
  per process. A missing font is a packaging fault and raises, because falling
  back to Helvetica would silently print a Greek name as boxes.
* **Fast.** Fonts, styles and the logo are loaded once; each photograph is read
  at reduced resolution (libjpeg's DCT scaling) and cached by path and
  modification time, so previewing then printing a slip reads it once.
* **Written atomically.** PDFs are built in memory and then moved into place,
  so a crash never leaves a half-written slip that looks complete.
* **The heat map is drawn over what the model saw**: the photograph cropped and
  normalised by :func:`preprocess.preprocess`, the same geometry the heat map
  was computed on, so the hot spots line up with the retina.
"""

from .csv_export import CSV_COLUMNS, csv_safe, queue_row, queues_csv
from .fhir import (
    BODY_SITE,
    ENCOUNTER_ID_SYSTEM,
    ICDR_SYSTEM,
    MODEL_SHA_SYSTEM,
    OBSERVATION_SYSTEM,
    PATIENT_ID_SYSTEM,
    QUALITY_REASON_SYSTEM,
    QUALITY_SYSTEM,
    QUEUE_SYSTEM,
    SNOMED,
    SYSTEM,
    fhir_bundle,
    write_fhir,
)
from .layout import (
    DISCLAIMER,
    FONT,
    FONT_BOLD,
    HEADLINES,
    HEATMAP_PX,
    LOGO_MAX_PX,
    P,
    PAGE_SIZES,
    PHOTO_PX,
    QUEUE_COLOURS,
    REASON_WORDS,
    SlipSettings,
    U,
    _thumbnail_cached,
    age_on,
    clean_text,
    default_logo_path,
    due_label,
    due_note,
    eye_finding_short,
    eye_heading,
    eye_pairs,
    fit_text,
    format_date,
    format_datetime,
    format_probability,
    heatmap_overlay,
    missing_words,
    operating_point_text,
    para_text,
    photo_thumbnail,
    protocol_text,
    qr_code,
    quality_advice,
    quality_note,
    reason_words,
    register_fonts,
    trim_black,
)
from .documents import (
    DOCUMENT_KINDS,
    LETTER,
    REFERRAL,
    REVIEW,
    PatientDocument,
    document_kind,
    document_path,
    patient_document,
    WrittenDocument,
    write_document,
    write_patient_document,
)
from .letter import letter_pdf_bytes, letter_story, write_result_letter
from .referral import resolve_images, slip_pdf_bytes, slip_story, write_referral_slip
from .review import review_pdf_bytes, review_reasons, review_story, write_review_slip
from .summary import summary_story, write_batch_summary

__all__ = [
    "_thumbnail_cached", "age_on", "BODY_SITE", "clean_text", "CSV_COLUMNS", "csv_safe", "default_logo_path",
    "DISCLAIMER", "document_kind", "DOCUMENT_KINDS", "document_path", "due_label", "due_note",
    "ENCOUNTER_ID_SYSTEM", "eye_finding_short", "eye_heading", "eye_pairs", "fhir_bundle", "fit_text", "FONT",
    "FONT_BOLD", "format_date", "format_datetime", "format_probability", "HEADLINES", "heatmap_overlay",
    "HEATMAP_PX", "ICDR_SYSTEM", "LETTER", "letter_pdf_bytes", "letter_story", "LOGO_MAX_PX", "missing_words",
    "MODEL_SHA_SYSTEM", "OBSERVATION_SYSTEM", "operating_point_text", "P", "PAGE_SIZES", "para_text",
    "patient_document", "PATIENT_ID_SYSTEM", "PatientDocument", "PHOTO_PX", "photo_thumbnail", "protocol_text",
    "qr_code", "quality_advice", "quality_note", "QUALITY_REASON_SYSTEM", "QUALITY_SYSTEM", "QUEUE_COLOURS",
    "queue_row", "QUEUE_SYSTEM", "queues_csv", "REASON_WORDS", "reason_words", "REFERRAL", "register_fonts",
    "resolve_images", "REVIEW", "review_pdf_bytes", "review_reasons", "review_story", "slip_pdf_bytes",
    "slip_story", "SlipSettings", "SNOMED", "summary_story", "SYSTEM", "trim_black", "U",
    "write_batch_summary", "write_fhir", "write_document", "write_patient_document", "WrittenDocument", "write_referral_slip",
    "write_result_letter", "write_review_slip",
]
