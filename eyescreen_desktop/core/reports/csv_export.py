"""The queues as CSV for a coordinator's spreadsheet (formula-safe cells, UTF-8 with BOM)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..records import EncounterSummary, Eye, EyeResult
from .layout import _write_atomic, clean_text, eye_finding_short


# --------------------------------------------------------------------------- CSV


CSV_COLUMNS: tuple[str, ...] = (
    "queue", "queue_label", "due_date", "patient_id", "name", "birth_date", "sex", "encounter_id",
    "screened_at", "state", "action",
    "right_status", "right_grade", "right_finding", "right_p_referable", "right_p_urgent",
    "left_status", "left_grade", "left_finding", "left_p_referable", "left_p_urgent",
    "other_eyes", "override_reason", "slip_printed_at", "protocol", "model", "model_version",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(text: object) -> str:
    """A cell a spreadsheet will not run as a formula (OWASP CSV injection):
    user text starting with ``= + - @`` gets a leading apostrophe."""
    s = clean_text(text)
    return "'" + s if s.startswith(_FORMULA_START) else s


def _worst(eyes: Iterable[EyeResult]) -> EyeResult | None:
    """The most urgent result among several photographs of one eye."""
    return min(eyes, key=lambda e: e.queue.priority, default=None)


def _eye_columns(prefix: str, e: EyeResult | None) -> dict[str, Any]:
    if e is None:
        return {f"{prefix}_{k}": "" for k in ("status", "grade", "finding", "p_referable", "p_urgent")}
    p = e.prediction
    return {f"{prefix}_status": e.status.value, f"{prefix}_grade": "" if e.grade is None else e.grade,
            f"{prefix}_finding": csv_safe(eye_finding_short(e)),
            f"{prefix}_p_referable": f"{p.p_referable:.4f}" if p else "",
            f"{prefix}_p_urgent": f"{p.p_urgent:.4f}" if p else ""}


def queue_row(e: EncounterSummary) -> dict[str, Any]:
    """One CSV row for one encounter."""
    p = e.patient
    row: dict[str, Any] = {
        "queue": e.queue.value, "queue_label": e.queue.label, "due_date": e.due_date.isoformat(),
        "patient_id": csv_safe(p.patient_id), "name": csv_safe(p.name),
        "birth_date": p.birth_date.isoformat() if p.birth_date else "", "sex": csv_safe(p.sex),
        "encounter_id": csv_safe(e.encounter_id), "screened_at": e.started_at.isoformat(timespec="minutes"),
        "state": e.state, "action": e.action,
        "other_eyes": csv_safe("; ".join(eye_finding_short(x) for x in e.eyes if x.eye is Eye.UNKNOWN)),
        "override_reason": csv_safe(e.override_reason),
        "slip_printed_at": e.slip_printed_at.isoformat(timespec="minutes") if e.slip_printed_at else "",
        "protocol": e.protocol_name, "model": csv_safe(e.model.name) if e.model else "",
        "model_version": csv_safe(e.model.version) if e.model else "",
    }
    for prefix, side in (("right", Eye.RIGHT), ("left", Eye.LEFT)):
        photo = _worst(x for x in e.eyes if x.eye is side)
        row.update(_eye_columns(prefix, photo))
        missing = next((m for m in e.missing_eyes if m.eye is side), None)
        if photo is None and missing is not None:   # the recorded reason, as the slip says it
            row[f"{prefix}_finding"] = csv_safe(f"not photographed: {missing.words}")
    return row


def queues_csv(encounters: Sequence[EncounterSummary], path: Path) -> Path:
    """Write the queues as CSV for a coordinator's spreadsheet: one row per
    encounter, most urgent queue first, then by due date. UTF-8 with a BOM so
    spreadsheet programs show accented, Greek and Cyrillic names correctly."""
    order = sorted(encounters, key=lambda e: (e.queue.priority, e.due_date, clean_text(e.patient.patient_id)))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(queue_row(e) for e in order)
    return _write_atomic(("\ufeff" + buf.getvalue()).encode("utf-8"), Path(path))


