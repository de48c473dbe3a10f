"""The batch summary: counts per queue, urgent patients first, the rejected files."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.units import mm
from reportlab.platypus import CondPageBreak, Flowable, Paragraph, Spacer, Table, TableStyle

from ...domain.eyes import NO_PATIENT_ID, NO_PATIENT_ID_ADVICE
from ..protocol import PROTOCOLS
from ..records import EncounterSummary, Eye, EyeResult, Queue, Status
from .layout import (
    P,
    QUEUE_COLOURS,
    RULE,
    SlipSettings,
    U,
    _build_pdf,
    _disclaimer,
    _header,
    _write_atomic,
    clean_text,
    eye_finding_short,
    format_date,
    format_datetime,
    quality_advice,
    reason_words,
    screening_title,
)
from .review import review_reasons


# --------------------------------------------------------------------------- batch summary


def _sorted(encounters: Iterable[EncounterSummary], queue: Queue) -> list[EncounterSummary]:
    return sorted((e for e in encounters if e.queue is queue),
                  key=lambda e: (e.due_date, e.started_at, clean_text(e.patient.patient_id)))


def _eyes_text(summary: EncounterSummary) -> str:
    """``R: ICDR 3 ... / L: ungradable (out of focus)`` for one table cell."""
    parts = []
    for e in summary.eyes:
        side = {Eye.RIGHT: "R", Eye.LEFT: "L"}.get(e.eye, "?")
        parts.append(f"{side}: {eye_finding_short(e)}")
    return "\n".join(parts) or "no photographs"


def _review_text(summary: EncounterSummary) -> str:
    """Why a review patient needs a retake or an examination, eye by eye: the
    review slip's own lines (``review_reasons``), so both say the same."""
    return "\n".join(review_reasons(summary))


def _table(header: Sequence[str], rows: list[list[Any]], widths: Sequence[float],
           ink: str = "#37474F") -> Table:
    """A data table with a coloured header row that repeats on each page."""
    data = [[P(escape(h), "head") for h in header]] + rows
    table = Table(data, colWidths=list(widths), repeatRows=1)
    table.setStyle(TableStyle([
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor(ink)),
        ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#F4F6F7")]),
        ("LINEBELOW", (0, 0), (-1, -1), 0.3, colors.HexColor(RULE)),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LEFTPADDING", (0, 0), (-1, -1), 3), ("RIGHTPADDING", (0, 0), (-1, -1), 3),
        ("TOPPADDING", (0, 0), (-1, -1), 2.5), ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
    ]))
    return table


def _patient_cells(e: EncounterSummary) -> list[Paragraph]:
    return [U(e.patient.patient_id, "cell_bold"), U(e.patient.name, "cell"), U(format_date(e.patient.birth_date)
                                                                              if e.patient.birth_date else "", "cell")]


def _queue_section(queue: Queue, encounters: list[EncounterSummary], width: float) -> list[Flowable]:
    """Heading and table of one queue's patients (due date first)."""
    ink = QUEUE_COLOURS[queue][0]
    title = P(f'<font color="{ink}">{escape(queue.label)}</font> ({len(encounters)})', "h2")
    if not encounters:
        return [title, P("None.", "small")]
    if queue is Queue.REVIEW:
        header = ["Act by", "Patient ID", "Name", "Born", "Why: what could not be graded and what to do"]
        rows = [[P(escape(format_date(e.due_date)), "cell_bold"), *_patient_cells(e), U(_review_text(e), "cell")]
                for e in encounters]
    else:
        header = ["Due by", "Patient ID", "Name", "Born", "Findings", "Screened"]
        rows = [[P(escape(format_date(e.due_date)), "cell_bold"), *_patient_cells(e), U(_eyes_text(e), "cell"),
                 P(escape(format_datetime(e.started_at)), "cell")] for e in encounters]
    fr = (0.11, 0.15, 0.19, 0.11, 0.44) if queue is Queue.REVIEW else (0.10, 0.15, 0.19, 0.11, 0.33, 0.12)
    return [CondPageBreak(30 * mm), title, _table(header, rows, [width * f for f in fr], ink)]


def _rejected_section(rejected: Sequence[EyeResult], width: float) -> list[Flowable]:
    """Files that gave no usable photograph, with the reason and what to do."""
    title = P(f"Files rejected ({len(rejected)})", "h2")
    if not rejected:
        return [title, P("None.", "small")]
    rows = [[U(r.path, "cell"), U(r.status.value.replace("_", " "), "cell"),
             U(_rejected_why(r), "cell")] for r in rejected]
    return [CondPageBreak(30 * mm), title,
            _table(["File", "Status", "Why, and what to do"], rows, [width * f for f in (0.40, 0.12, 0.48)])]


def _rejected_why(r: EyeResult) -> str:
    """Reason words, the engine's message and the advice, each said once."""
    parts: list[str] = []
    for text in (reason_words(r.quality.reasons) if r.quality else "", r.message, quality_advice(r)):
        if not text or any(text.lower() in p.lower() for p in parts):
            continue
        parts = [p for p in parts if p.lower() not in text.lower()] + [text]
    return "; ".join(parts) or r.status.value


def _unidentified_section(unidentified: Sequence[tuple[str, EyeResult]], width: float) -> list[Flowable]:
    """Photographs whose name gives no patient ID: screened, filed to nobody, listed
    together with what to do so staff can put each one with its patient."""
    if not unidentified:
        return []
    title = P(f"{escape(NO_PATIENT_ID[0].upper() + NO_PATIENT_ID[1:])} ({len(unidentified)})", "h2")
    advice = P(escape(f"Screened but filed to no patient: {NO_PATIENT_ID_ADVICE}."), "small")
    rows = [[U(file, "cell"), P(f'<font color="{QUEUE_COLOURS[r.queue][0]}"><b>{escape(r.queue.label)}</b></font>',
                                "cell"), U(eye_finding_short(r) if r.status is Status.OK else _rejected_why(r), "cell")]
            for file, r in unidentified]
    return [CondPageBreak(30 * mm), title, advice, Spacer(1, 3),
            _table(["File", "Queue", "Result"], rows, [width * f for f in (0.36, 0.16, 0.48)])]


def _counts_table(encounters: Sequence[EncounterSummary], rejected: int, width: float,
                  unidentified: int = 0) -> Table:
    """Patients per queue with what the queue means, plus the files with no patient ID and the rejected ones."""
    rows = []
    for q in (Queue.URGENT, Queue.ROUTINE, Queue.REVIEW, Queue.ANNUAL):
        n = sum(1 for e in encounters if e.queue is q)
        action = PROTOCOLS[_protocol_of(encounters)].action(q)
        rows.append([P(f'<font color="{QUEUE_COLOURS[q][0]}"><b>{escape(q.label)}</b></font>', "body"),
                     P(f"<b>{n}</b>", "body"), P(escape(action), "cell")])
    rows.append([P("<b>Patients in total</b>", "body"), P(f"<b>{len(encounters)}</b>", "body"), ""])
    if unidentified:
        rows.append([P(escape(f"Files with {NO_PATIENT_ID}"), "body"), P(str(unidentified), "body"),
                     P("filed to no patient: listed below, with what to do", "cell")])
    rows.append([P("Files rejected", "body"), P(str(rejected), "body"), P("listed at the end", "cell")])
    table = Table(rows, colWidths=[width * 0.45, width * 0.08, width * 0.47])
    table.setStyle(TableStyle([
        ("LINEBELOW", (0, 0), (-1, -1), 0.3, colors.HexColor(RULE)),
        ("LINEABOVE", (0, 4), (-1, 4), 1.0, colors.HexColor("#333333")),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"), ("ALIGN", (1, 0), (1, -1), "RIGHT"),
        ("RIGHTPADDING", (1, 0), (1, -1), 12),
        ("TOPPADDING", (0, 0), (-1, -1), 3), ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
    ]))
    return table


def _protocol_of(encounters: Sequence[EncounterSummary]) -> str:
    names = {e.protocol_name for e in encounters if e.protocol_name in PROTOCOLS}
    return names.pop() if len(names) == 1 else "icdr-ada"


def _batch_intro(encounters: Sequence[EncounterSummary], rejected: Sequence[EyeResult]) -> str:
    """One line: when, how many patients and photographs, which model and protocol."""
    photos = sum(len(e.eyes) for e in encounters)
    parts = []
    if encounters:
        first = min(e.started_at for e in encounters).date()
        last = max(e.started_at for e in encounters).date()
        parts.append(f"Screened {format_date(first)}" + (f" \u2013 {format_date(last)}" if last != first else ""))
    parts.append(f"{len(encounters)} patients, {photos} photographs, {len(rejected)} files rejected")
    models = sorted({f"{e.model.name} {e.model.version}" for e in encounters if e.model})
    protocols = sorted({e.protocol_name for e in encounters})
    if models:
        parts.append("model " + ", ".join(models))
    if protocols:
        parts.append("protocol " + ", ".join(protocols))
    parts.append(f"printed {format_datetime(dt.datetime.now())}")
    return " \u00b7 ".join(parts)


def summary_story(encounters: Sequence[EncounterSummary], rejected: Sequence[EyeResult],
                  settings: SlipSettings, unidentified: Sequence[tuple[str, EyeResult]] = ()) -> list[Flowable]:
    """The flowables of a batch summary (exposed for tests and previews)."""
    width = settings.pagesize[0] - 28 * mm
    story: list[Flowable] = [_header(settings, screening_title(settings, "batch summary"), width),
                             Spacer(1, 4), U(_batch_intro(encounters, rejected), "small"), Spacer(1, 6),
                             _counts_table(encounters, len(rejected), width, len(unidentified))]
    for q in (Queue.URGENT, Queue.ROUTINE, Queue.REVIEW):
        story += _queue_section(q, _sorted(encounters, q), width)
    story += _unidentified_section(unidentified, width)
    story += _rejected_section(rejected, width)
    story += _queue_section(Queue.ANNUAL, _sorted(encounters, Queue.ANNUAL), width)
    story += [Spacer(1, 10), _disclaimer(width)]
    return story


def write_batch_summary(encounters: Sequence[EncounterSummary], rejected: Sequence[EyeResult], path: Path,
                        settings: SlipSettings | None = None,
                        unidentified: Sequence[tuple[str, EyeResult]] = ()) -> Path:
    """Write ``summary.pdf``: counts per queue, urgent patients first with due
    dates, then routine, then review with the reasons, then the photographs with
    no patient ID in their name (``unidentified``: file, result) and what to do,
    then the rejected files and why, then the annual recalls."""
    settings = settings or SlipSettings()
    story = summary_story(encounters, rejected, settings, unidentified)
    footer = "EyeScreen batch summary \u00b7 screening aid, not a diagnosis"
    return _write_atomic(_build_pdf(story, settings, "EyeScreen batch summary", footer), Path(path))


