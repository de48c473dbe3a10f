"""A human grader's reading of an eye, and what the clinic's protocol makes of it.

Why it is its own module: the grading desk, the reading-centre import, the
agreement report and site calibration all need the same three answers, and
each must be given once: which queue a grader's grade puts an eye in (the
protocol's own table, fed the grade instead of the model's probabilities),
whether grader and AI disagree at the decision level (annual vs referral,
urgent vs routine), and how much a graded eye weighs when the clinic only
grades referrals, reviews and a sample of annual encounters (1 / P(graded)).

Pure: no store, no Qt.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from ..domain.grades import is_referable, is_urgent
from .protocol import encounter_queue, get_protocol, is_external_eye
from .records import (
    Eye,
    MissingEye,
    EyeDecision,
    EyeResult,
    OperatingPoint,
    Prediction,
    Queue,
    Status,
)

MACULOPATHY = ("yes", "no", "not_assessed")
"""What a grader says about the macula: oedema seen, not seen, or not assessed."""

FINDINGS: dict[str, str] = {
    "amd": "signs of age-related macular degeneration",
    "glaucoma_suspect": "glaucoma suspect",
    "cataract": "cataract",
    "vein_occlusion": "retinal vein occlusion",
    "other": "other (see note)",
}
"""Other findings a grader may record beside the diabetic-retinopathy grade."""

GRADE_SOURCES = ("desk", "import")
"""Where a grade came from: the grading desk (the window) or a reading centre's CSV."""

GRADING_STATES = ("final", "arbitration_pending", "arbitrated")

DEFAULT_QA_RATE = 0.10
"""The share of annual encounters drawn for a quality-assurance grade."""

_GRADER_POINT = OperatingPoint("grader", referable=0.5, urgent=0.5, maculopathy=0.5)
"""A grader's grade fed to the protocol as certain probabilities (1 or 0): any
threshold strictly between 0 and 1 gives the same decision."""

_DECIDED = (Queue.URGENT, Queue.ROUTINE, Queue.ANNUAL)


@dataclass(frozen=True)
class HumanGrade:
    """One grader's reading of one eye of an encounter.

    ``icdr_grade`` None means the grader called the eye ungradable."""

    encounter_id: str
    eye: Eye
    grader: str
    icdr_grade: int | None
    maculopathy: str = "not_assessed"
    findings: tuple[str, ...] = ()
    note: str = ""
    source: str = "desk"
    role: str = "first"               # "first" read, or "arbitration" of a disagreement
    graded_at: dt.datetime | None = None
    recorded_by: str = ""

    def __post_init__(self) -> None:
        if self.eye not in (Eye.LEFT, Eye.RIGHT):
            raise ValueError("a grade is for the right or the left eye")
        if self.icdr_grade is not None and not 0 <= self.icdr_grade <= 4:
            raise ValueError(f"ICDR grade {self.icdr_grade}: expected 0-4, or none when ungradable")
        if self.maculopathy not in MACULOPATHY:
            raise ValueError(f"maculopathy must be one of {', '.join(MACULOPATHY)}, not {self.maculopathy!r}")
        if self.source not in GRADE_SOURCES:
            raise ValueError(f"source must be one of {', '.join(GRADE_SOURCES)}, not {self.source!r}")
        unknown = [f for f in self.findings if f not in FINDINGS]
        if unknown:
            raise ValueError(f"unknown finding(s) {', '.join(unknown)}; choose from {', '.join(FINDINGS)}")

    @property
    def gradable(self) -> bool:
        return self.icdr_grade is not None

    @property
    def referable(self) -> bool:
        """Referable by the grade (or maculopathy seen): what site calibration learns from."""
        return self.icdr_grade is not None and (is_referable(self.icdr_grade) or self.maculopathy == "yes")

    @property
    def urgent(self) -> bool:
        return self.icdr_grade is not None and is_urgent(self.icdr_grade)

    def same_reading(self, other: HumanGrade) -> bool:
        """The same grade, maculopathy and findings (a re-import of the same row)."""
        return (self.icdr_grade, self.maculopathy, tuple(sorted(self.findings))) == (
            other.icdr_grade, other.maculopathy, tuple(sorted(other.findings)))


def eye_outcome(grade: HumanGrade, protocol_name: str) -> EyeDecision:
    """What the clinic's protocol decides for an eye from a grader's grade: the same
    table that decides from the model, fed the grade with certainty (ungradable ->
    review, like a photograph the gate refused)."""
    protocol = get_protocol(protocol_name)
    if grade.icdr_grade is None:
        return protocol.decide_unreadable(Status.UNGRADABLE, ("graded_ungradable",))
    g = grade.icdr_grade
    probs = tuple(1.0 if i == g else 0.0 for i in range(5))
    macula = {"yes": 1.0, "no": 0.0}.get(grade.maculopathy)
    prediction = Prediction(probs, p_referable=1.0 if is_referable(g) else 0.0,
                            p_urgent=1.0 if is_urgent(g) else 0.0, p_maculopathy=macula)
    return protocol.decide_eye(prediction, _GRADER_POINT)


@dataclass(frozen=True)
class OutcomeRaise:
    """A grader raising an encounter's outcome above what the protocol makes of their
    grades (e.g. annual to routine for a finding the ICDR scale does not carry), with
    the reason, which is required."""

    encounter_id: str
    grader: str
    queue: Queue
    reason: str

    def __post_init__(self) -> None:
        if not self.reason.strip():
            raise ValueError("raising the outcome needs a reason")


def raise_outcome(protocol_outcome: Queue, raised: Queue, reason: str) -> Queue:
    """The outcome after a grader's raise. The outcome follows from the grades by the
    protocol; a grader may only make it MORE urgent, and only with a reason. A raise
    to the same or a less urgent queue is refused (ValueError), never applied as a
    lowering."""
    if not reason.strip():
        raise ValueError("raising the outcome needs a reason")
    if raised.priority >= protocol_outcome.priority:
        raise ValueError(f"the grades give {protocol_outcome.label}; a grader may only raise the outcome, "
                         f"not set it to {raised.label}")
    return raised


def more_urgent(a: Queue, b: Queue) -> Queue:
    """The more urgent of two queues (review outranks annual)."""
    return a if a.priority <= b.priority else b


def disagree(ai: Queue, graded: Queue) -> bool:
    """Grader and AI disagree at the decision level: annual vs referral, or urgent vs
    routine. A review (a photograph the AI could not grade, or an eye the grader
    called ungradable) is what a grader is there to settle, not a disagreement."""
    return ai in _DECIDED and graded in _DECIDED and ai is not graded


@dataclass(frozen=True)
class Resolution:
    """Where an encounter stands after a grade: its state and the queue it waits in.
    ``final`` is None while arbitration is pending."""

    state: str
    queue: Queue
    final: Queue | None


def resolve(ai: Queue, graded: Queue, source: str, single_grader_stands: bool = False) -> Resolution:
    """The encounter's state after a first read. A reading centre's import is final.
    A desk grade that agrees with the AI at the decision level is final; one that
    disagrees goes to arbitration by a different grader and, meanwhile, the more
    urgent outcome stands. ``single_grader_stands`` (a clinic's Settings choice)
    lets the grader's outcome stand instead, except that one grader never
    downgrades an AI urgent referral alone."""
    if source == "import" or not disagree(ai, graded):
        return Resolution("final", graded, graded)
    if single_grader_stands and not (ai is Queue.URGENT and graded.priority > ai.priority):
        return Resolution("final", graded, graded)
    return Resolution("arbitration_pending", more_urgent(ai, graded), None)


def verification_weight(p_graded: float) -> float:
    """How many encounters one graded encounter stands for: 1 / P(graded). A 10%
    quality-assurance sample of annual encounters weighs 10; a referral, a review
    or a reading-centre import of every eye weighs 1."""
    if not 0.0 < p_graded <= 1.0:
        raise ValueError(f"P(graded) {p_graded} must lie in (0, 1]")
    return 1.0 / p_graded


def graded_eye_result(result: EyeResult, grade: HumanGrade, protocol_name: str) -> EyeResult:
    """The photograph's result as the grader read it: their decision in place of the
    model's, so the encounter's queue comes from the one rule
    (:func:`protocol.encounter_decision`: most urgent eye, never annual while an eye
    is missing) whoever graded it."""
    decision = eye_outcome(grade, protocol_name)
    status = Status.OK if grade.gradable else Status.UNGRADABLE
    return replace(result, status=status, decision=decision)


def protocol_outcome(eyes: Iterable[EyeResult], readings: Mapping[Eye, HumanGrade], protocol_name: str,
                     missing: Iterable[MissingEye] = ()) -> Queue:
    """The encounter's outcome by the clinic's protocol from the graders' readings
    (each graded eye read as the grader read it, an ungraded or external-eye one as
    the AI did): the one rule the store settles with and the grading desk shows
    before the grader commits (or raises it)."""
    graded = [graded_eye_result(e, readings[e.eye], protocol_name) if e.eye in readings and not is_external_eye(e)
              else e for e in eyes]
    return encounter_queue(graded, missing)


RAISE_ORDER = tuple(sorted(Queue, key=lambda q: q.priority, reverse=True))
"""Queues from least to most urgent (annual, review, routine, urgent: ``Queue.priority``
reversed): the steps a grader's raise moves through."""


def next_raise(current: Queue) -> Queue | None:
    """The next more urgent queue than ``current``; None above urgent."""
    i = RAISE_ORDER.index(current)
    return RAISE_ORDER[i + 1] if i + 1 < len(RAISE_ORDER) else None
