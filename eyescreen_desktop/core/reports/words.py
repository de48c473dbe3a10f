"""Words the documents print for findings, quality and dates: never-misread
dates, an eye's heading, why an eye has no grade and what to do about it, the
due date's label and note, the operating point and protocol lines. The slip,
letter, review slip, summary and exports share them, so a wording changes on
every document at once."""

from __future__ import annotations

import datetime as dt

from ...domain.vocabulary import reason_words
from ..protocol import PROTOCOLS
from ..records import EncounterSummary, Eye, EyeResult, Queue, Status
from .style import SlipSettings


def format_date(d: dt.date | None) -> str:
    """A date no reader can misread: ``12 Mar 2025`` (never 03/12)."""
    return f"{d.day} {d:%b %Y}" if d else "not recorded"


def format_datetime(t: dt.datetime | None) -> str:
    """``12 Mar 2025, 14:05``."""
    return f"{format_date(t.date())}, {t:%H:%M}" if t else "not recorded"


def age_on(birth: dt.date | None, day: dt.date) -> int | None:
    """Age in whole years on ``day``."""
    if birth is None:
        return None
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def eye_heading(eye: Eye) -> str:
    """Column heading for an eye, with the Latin abbreviation clinicians use."""
    return {Eye.RIGHT: "RIGHT EYE (OD)", Eye.LEFT: "LEFT EYE (OS)"}.get(eye, "EYE, SIDE UNKNOWN")


def quality_note(result: EyeResult) -> str:
    """One line for the reader about why an eye has no grade (empty when graded),
    e.g. ``Left eye could not be graded: out of focus``."""
    eye = result.eye.label.capitalize()
    reasons = reason_words(result.quality.reasons) if result.quality else ""
    if result.status is Status.OK:
        return ""
    if result.status is Status.UNGRADABLE:
        return f"{eye} could not be graded" + (f": {reasons}" if reasons else "")
    if result.status is Status.NOT_FUNDUS:
        return f"{eye}: the picture is not a fundus photograph"
    return f"{eye}: the photograph file could not be read"


def quality_advice(result: EyeResult) -> str:
    """What to do about an ungraded eye (the gate's advice, else the engine's message)."""
    if result.status is Status.OK:
        return ""
    advice = result.quality.advice if result.quality and result.quality.advice else ""
    return advice or result.message or "Retake the photograph, or examine the eye in person"


def eye_finding_short(result: EyeResult) -> str:
    """A few words for tables: ``ICDR 3 severe non-proliferative ...`` or ``ungradable (out of focus)``."""
    if result.status is Status.OK and result.decision is not None:
        return f"{result.decision.code}: {result.decision.finding}"
    if result.status is Status.UNGRADABLE:
        reasons = reason_words(result.quality.reasons) if result.quality else ""
        return "ungradable" + (f" ({reasons})" if reasons else "")
    if result.status is Status.NOT_FUNDUS:
        return Status.NOT_FUNDUS.label
    return Status.ERROR.label


def due_note(summary: EncounterSummary) -> str:
    """How the due date relates to the visit: ``14 days after screening``."""
    days = (summary.due_date - summary.started_at.date()).days
    if days <= 0:
        return "same day as screening"
    return f"{days} day{'s' if days != 1 else ''} after screening"


def due_label(queue: Queue) -> str:
    """What the due date means for this queue."""
    return {Queue.URGENT: "SEE BY", Queue.ROUTINE: "SEE BY", Queue.ANNUAL: "RESCREEN BY"}.get(queue, "ACT BY")


def operating_point_text(summary: EncounterSummary, settings: SlipSettings) -> str:
    """The operating point's name and thresholds, or the clinic's own label."""
    op = summary.operating_point
    thresholds = (f"referable \u2265 {op.referable:.2f}, urgent \u2265 {op.urgent:.2f}, "
                  f"maculopathy \u2265 {op.maculopathy:.2f}") if op else ""
    name = settings.operating_point_label or (op.name if op else "not recorded")
    return f"{name} ({thresholds})" if thresholds else name


def protocol_text(name: str) -> str:
    """``icdr-ada - ICDR grading, ADA follow-up timing``."""
    proto = PROTOCOLS.get(name)
    return f"{name} \u2013 {proto.title}" if proto else name
