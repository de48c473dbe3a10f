"""The patient's document regenerated after a human grade, the earlier one kept.

Why its own module: the grading desk (window) and any later caller need the same
three steps in one place: read the encounter as the store now has it (its
graded queue, the "graded by" line), write the new document where the earlier
one lies so the earlier is kept as superseded (:mod:`core.reports.superseded`),
and audit both, so nobody can say which letter a patient was sent without the
record showing it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .reports import SlipSettings, WrittenDocument, resolve_images, write_document


def regenerate_document(store: Any, encounter_id: str, out_dir: Path, settings: SlipSettings | None = None,
                        user: str | None = None) -> WrittenDocument:
    """Write the encounter's document again under ``out_dir`` from the store's current
    state (after a grade or an arbitration), keep any earlier one as superseded and
    audit it (``document regenerated``; ``document superseded`` per kept file)."""
    summary = resolve_images(store.encounter_summary(encounter_id), store.image_file)
    written = write_document(summary, Path(out_dir), settings)
    store.note_document(encounter_id, written.path, written.superseded, user=user)
    return written
