"""The referral slip: what a referred patient carries to the eye clinic."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from reportlab.lib.units import mm
from reportlab.platypus import Flowable, KeepTogether, Spacer

from ..records import EncounterSummary
from .layout import (
    SlipSettings,
    _build_pdf,
    _decision_block,
    _disclaimer,
    _eyes_block,
    _header,
    _patient_block,
    _provenance_block,
    _qr_block,
    _write_atomic,
    screening_title,
)


def slip_story(summary: EncounterSummary, settings: SlipSettings) -> list[Flowable]:
    """The flowables of one referral slip (exposed for tests and previews)."""
    width = settings.pagesize[0] - 28 * mm
    return [
        _header(settings, screening_title(settings, "referral slip"), width, _qr_block(summary.encounter_id)),
        Spacer(1, 4), _patient_block(summary, width), Spacer(1, 6),
        _decision_block(summary, width), Spacer(1, 8),
        *_eyes_block(summary, width, settings), Spacer(1, 2),
        KeepTogether([_provenance_block(summary, settings, width), Spacer(1, 6), _disclaimer(width)]),
    ]


def slip_pdf_bytes(summary: EncounterSummary, settings: SlipSettings | None = None) -> bytes:
    """The referral slip as PDF bytes (for previews that need no file)."""
    settings = settings or SlipSettings()
    name = f"{summary.patient.name} \u00b7 " if summary.patient.name else ""
    footer = (f"Referral slip \u00b7 {name}patient {summary.patient.patient_id} \u00b7 encounter "
              f"{summary.encounter_id} \u00b7 screening aid, not a diagnosis")
    title = f"EyeScreen referral slip \u2013 patient {summary.patient.patient_id}"
    return _build_pdf(slip_story(summary, settings), settings, title, footer)


def write_referral_slip(summary: EncounterSummary, path: Path, settings: SlipSettings | None = None) -> Path:
    """Write one patient's referral slip for one encounter to ``path`` (PDF)."""
    return _write_atomic(slip_pdf_bytes(summary, settings), Path(path))


def resolve_images(summary: EncounterSummary, image_file: Callable[[str], Path | None]) -> EncounterSummary:
    """The summary with each photograph that is no longer at its original path
    replaced by the managed copy ``image_file(sha256)`` (e.g. ``ClinicStore.image_file``),
    so a slip printed weeks later still shows the photographs."""
    eyes = []
    for e in summary.eyes:
        if e.sha256 and not (e.path and os.path.isfile(e.path)):
            stored = image_file(e.sha256)
            e = replace(e, path=str(stored)) if stored else e
        eyes.append(e)
    return replace(summary, eyes=tuple(eyes))


