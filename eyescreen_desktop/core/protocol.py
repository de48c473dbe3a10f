"""Screening protocols: findings of each eye -> queue, code, words and due date.

A protocol is a table, not code scattered through the GUI: the clinic picks
one by name (``icdr-ada`` by default, ``nhs-dess`` as the second) and every
decision on a slip can be traced back to a row here. The probability-to-queue
logic is a pure function so it is tested without any model.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Iterable, Mapping

from ..domain.eyes import NO_PATIENT_ID, NO_PATIENT_ID_ADVICE
from ..domain.grades import referred
from .records import (
    ICDR_GRADE_NAMES,
    PHOTO_QUALITY_BORDERLINE,
    REASON_BORDERLINE,
    REASON_URGENT_SIGNS,
    URGENT_SIGNS_VISIBLE,
    Eye,
    EyeDecision,
    EyeResult,
    MissingEye,
    OperatingPoint,
    Prediction,
    Queue,
    Status,
)


@dataclass(frozen=True)
class QueueRule:
    """How soon a queue must be seen and what staff tell the patient."""

    days: int
    action: str


@dataclass(frozen=True)
class Protocol:
    """A named grading protocol with its queue timing."""

    name: str
    title: str
    rules: Mapping[Queue, QueueRule]
    # True for a non-diabetic eye-check setting (pharmacy, school, eye camp): an external-eye
    # photograph that looks healthy is then a complete result; otherwise it never counts as
    # a diabetic-retinopathy screen and the patient waits in review for a fundus photograph
    eye_check_alone: bool = False

    def decide_eye(self, prediction: Prediction, op: OperatingPoint, borderline: bool = False) -> EyeDecision:
        """Queue and code for a gradable eye from the model's probabilities. A photograph
        the gate passed as borderline (``QualityReport.borderline``) is graded the same
        way; its finding ends with "photo quality borderline"."""
        flags = _flags(prediction, op)
        decision = _DECIDERS[self.name](prediction, flags)
        if borderline:
            decision = replace(decision, finding=f"{decision.finding}; {PHOTO_QUALITY_BORDERLINE}")
        return decision

    def decide_unreadable(self, status: Status, reasons: Iterable[str] = ()) -> EyeDecision:
        """Eyes that could not be graded always go to review, never to annual. One refused
        for quality on which the grader saw urgent signs (reason ``urgent_signs_visible``)
        stays in review, ungraded, with "possible urgent disease visible: examine today"."""
        code = "U" if self.name == "nhs-dess" else "ungradable"
        words = Status.UNGRADABLE.label if status is Status.OK else Status(status).label
        reasons = tuple(reasons)
        notes = {"not_fundus", REASON_URGENT_SIGNS, REASON_BORDERLINE}   # no echo of the words
        detail = ", ".join(r.replace("_", " ") for r in reasons if r not in notes)
        finding = f"{words} ({detail})" if detail else words
        if REASON_URGENT_SIGNS in reasons and status is Status.UNGRADABLE:
            finding += f"; {URGENT_SIGNS_VISIBLE}"
        return EyeDecision(Queue.REVIEW, code, finding)

    def decide_external_eye(self, checkup: bool | None, finding: str = "", message: str = "") -> EyeDecision:
        """Queue for a photograph of the front of the eye (never an ICDR grade).

        "Go for an eye check-up" is at least a routine referral, with the finding in
        words; an eye that could not be checked goes to review with the reason; "looks
        healthy" is annual only where the protocol lets the eye check stand alone,
        otherwise review: a fundus photograph is needed for diabetic-retinopathy screening."""
        if checkup is None:
            return EyeDecision(Queue.REVIEW, CODE_EYE_NOT_CHECKED, message or "eye could not be checked")
        if checkup:
            return EyeDecision(Queue.ROUTINE, CODE_EYE_CHECKUP, finding or "go for an eye check-up")
        if self.eye_check_alone:
            return EyeDecision(Queue.ANNUAL, CODE_EYE_HEALTHY, "eye looks healthy")
        return EyeDecision(Queue.REVIEW, CODE_NEEDS_FUNDUS, f"eye looks healthy; {NEEDS_FUNDUS}")

    def due_date(self, queue: Queue, start: dt.date) -> dt.date:
        """Date by which the patient must be seen (or rescreened)."""
        return start + dt.timedelta(days=self.rules[queue].days)

    def action(self, queue: Queue) -> str:
        return self.rules[queue].action


@dataclass(frozen=True)
class _Flags:
    urgent: bool
    referable: bool
    maculopathy: bool


def _flags(p: Prediction, op: OperatingPoint) -> _Flags:
    macula = p.p_maculopathy is not None and p.p_maculopathy >= op.maculopathy
    urgent = p.p_urgent >= op.urgent
    referable = referred(p.p_referable, p.p_urgent, op.referable, op.urgent)   # domain's rule, less maculopathy
    return _Flags(urgent=urgent, referable=referable, maculopathy=macula)


def threshold_flags(p: Prediction, op: OperatingPoint) -> _Flags:
    """Which of the operating point's thresholds the eye's probabilities crossed
    (urgent, referable, maculopathy): the rule the decision and the words a slip
    prints about it (core.evidence) share."""
    return _flags(p, op)


def _worst_grade(p: Prediction, lo: int, hi: int) -> int:
    """Most probable grade among lo..hi: the grade shown when a threshold fired."""
    return max(range(lo, hi + 1), key=lambda g: p.grade_probs[g])


def _decide_icdr(p: Prediction, f: _Flags) -> EyeDecision:
    if f.urgent:
        grade = _worst_grade(p, 3, 4)
        queue = Queue.URGENT
    elif f.referable:
        grade = 2
        queue = Queue.ROUTINE
    else:
        grade = min(p.grade, 1)
        queue = Queue.ROUTINE if f.maculopathy else Queue.ANNUAL
    finding = ICDR_GRADE_NAMES[grade]
    if f.maculopathy:
        finding += " with maculopathy"
    return EyeDecision(queue, f"ICDR {grade}" + (" + M" if f.maculopathy else ""), finding, grade)


def _decide_nhs(p: Prediction, f: _Flags) -> EyeDecision:
    # EyeScreen maps ICDR to NHS DESP: 0 -> R0, 1 -> R1, 2-3 -> R2, 4 -> R3.
    # Moderate NPDR is mapped to R2 (refer) on purpose: the model cannot tell the
    # lesions that separate R1 from R2, and a screening aid errs towards referral.
    if f.urgent:
        grade = _worst_grade(p, 3, 4)
        r, queue, words = ("R3", Queue.URGENT, "proliferative retinopathy") if grade == 4 else (
            "R2", Queue.URGENT, "pre-proliferative retinopathy")
    elif f.referable:
        grade, r, queue, words = 2, "R2", Queue.ROUTINE, "pre-proliferative retinopathy"
    elif p.grade >= 1:
        grade, r, queue, words = 1, "R1", Queue.ANNUAL, "background retinopathy"
    else:
        grade, r, queue, words = 0, "R0", Queue.ANNUAL, "no retinopathy"
    m = "M1" if f.maculopathy else "M0"
    if f.maculopathy and queue is Queue.ANNUAL:
        queue = Queue.ROUTINE
    return EyeDecision(queue, f"{r} {m}", words + (" with maculopathy" if f.maculopathy else ""), grade)


_DECIDERS = {"icdr-ada": _decide_icdr, "nhs-dess": _decide_nhs, "eye-check": _decide_icdr}

# decision codes of external-eye photographs (modality external_eye)
CODE_EYE_CHECKUP = "eye check-up"
CODE_EYE_HEALTHY = "eye looks healthy"
CODE_NEEDS_FUNDUS = "fundus needed"
CODE_EYE_NOT_CHECKED = "eye not checked"
NEEDS_FUNDUS = "a fundus photograph is needed for diabetic-retinopathy screening"
EXTERNAL_EYE_CODES = frozenset({CODE_EYE_CHECKUP, CODE_EYE_HEALTHY, CODE_NEEDS_FUNDUS, CODE_EYE_NOT_CHECKED})

PROTOCOLS: dict[str, Protocol] = {
    "icdr-ada": Protocol(
        name="icdr-ada",
        title="ICDR grading, ADA follow-up timing",
        rules={
            Queue.URGENT: QueueRule(14, "See an ophthalmologist within 2 weeks"),
            Queue.ROUTINE: QueueRule(91, "See an ophthalmologist within 3 months"),
            Queue.REVIEW: QueueRule(0, "Retake the photograph now, or examine the eye in person"),
            Queue.ANNUAL: QueueRule(365, "Rescreen in 12 months"),
        },
    ),
    "nhs-dess": Protocol(
        name="nhs-dess",
        title="NHS Diabetic Eye Screening (R0-R3, M0/M1, U)",
        rules={
            Queue.URGENT: QueueRule(14, "Urgent referral to hospital eye service: seen within 2 weeks"),
            Queue.ROUTINE: QueueRule(91, "Routine referral to hospital eye service: seen within 13 weeks"),
            Queue.REVIEW: QueueRule(0, "Ungradable (U): retake now or refer for slit-lamp examination"),
            Queue.ANNUAL: QueueRule(365, "Recall for screening in 12 months"),
        },
    ),
    "eye-check": Protocol(
        name="eye-check",
        title="Eye check for non-diabetic settings (pharmacy, school, eye camp); fundus photos graded ICDR",
        rules={
            Queue.URGENT: QueueRule(14, "See an ophthalmologist within 2 weeks"),
            Queue.ROUTINE: QueueRule(91, "Go for an eye check-up with an optometrist or ophthalmologist"),
            Queue.REVIEW: QueueRule(0, "Retake the photograph now, or examine the eye in person"),
            Queue.ANNUAL: QueueRule(365, "No check-up needed now; come back if the eye hurts, is red or sight "
                                         "changes"),
        },
        eye_check_alone=True,
    ),
}

DEFAULT_PROTOCOL = "icdr-ada"


def get_protocol(name: str) -> Protocol:
    """Look a protocol up by name, with a message that lists the valid ones."""
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ValueError(f"unknown protocol {name!r}; choose one of: {', '.join(PROTOCOLS)}") from None


def patient_queue(eyes: Iterable[EyeResult]) -> Queue:
    """The patient's queue is the most urgent of their eyes (review outranks
    annual, so an ungradable eye is never hidden by a normal fellow eye). A
    patient with no usable photo at all goes to review."""
    eyes = list(eyes)
    if any(not is_external_eye(e) for e in eyes):
        # a fundus photograph was taken: a healthy-looking external eye no longer holds the patient in review
        eyes = [e for e in eyes if e.decision is None or e.decision.code != CODE_NEEDS_FUNDUS]
    queues = [e.queue for e in eyes]
    return min(queues, key=lambda q: q.priority) if queues else Queue.REVIEW


# ---------------------------------------------------------------------- the encounter's queue: one rule, one place
#
# Every path that queues a patient (the desk through the store, a finished or a
# cancelled batch, the camera folder, ``eyescreen report``) goes through
# encounter_decision, so a patient never gets one queue in the window and
# another in a batch.

OTHER_EYE_NOT_PHOTOGRAPHED = "other eye not photographed"
SIDE_NOT_KNOWN = "side of a photograph not known: set right or left"
NO_PHOTOGRAPH = "no photograph"

# Why an eye has no photograph (keys of ``records.MISSING_EYE_REASONS``) that let the
# other eye decide the visit alone: there is no eye to screen, or an eye clinic already
# follows it. Every other reason ("could not be photographed", "declined", "other")
# leaves an eye nobody has looked at: it needs an examination in person, so the visit
# is at least review (a referable other eye still refers).
OTHER_EYE_DECIDES_REASONS = frozenset({"prosthesis", "enucleated", "under_eye_clinic"})
IN_PERSON_EXAM = "slit-lamp or dilated fundus examination"


@dataclass(frozen=True)
class EncounterDecision:
    """The queue of a visit by the rule, and why when it is not obvious."""

    queue: Queue
    complete: bool      # both eyes graded, or the missing one has a recorded reason
    note: str = ""      # e.g. "other eye not photographed"


def current_eyes(eyes: Iterable[EyeResult]) -> list[EyeResult]:
    """The current photograph of each eye: the last of each side (eyes come oldest
    first, so a retake replaces the photograph it retakes); every photograph whose
    side is unknown counts, since nobody can say which one it replaces."""
    latest: dict[Eye, EyeResult] = {}
    unknown: list[EyeResult] = []
    for eye in eyes:
        if eye.eye is Eye.UNKNOWN:
            unknown.append(eye)
        else:
            latest.pop(eye.eye, None)
            latest[eye.eye] = eye
    return [*(latest[e] for e in (Eye.RIGHT, Eye.LEFT) if e in latest), *unknown]


def is_external_eye(result: EyeResult) -> bool:
    """A result of the external-eye check (its decision carries one of the check's codes)."""
    return result.decision is not None and result.decision.code in EXTERNAL_EYE_CODES


def encounter_decision(eyes: Iterable[EyeResult], missing_eyes: Iterable[MissingEye] = ()) -> EncounterDecision:
    """The visit's queue: the diabetic-retinopathy rule (:func:`fundus_decision`) on its
    fundus photographs, with the external-eye checks beside it. Those never count as
    a graded eye nor replace a fundus photograph of the same side; a check-up they
    advise refers (routine). A visit with external-eye photographs only is decided
    by them: in review with "a fundus photograph is needed for diabetic-retinopathy
    screening" unless the protocol lets the eye check stand alone (eye-check)."""
    eyes = list(eyes)
    external = current_eyes(e for e in eyes if is_external_eye(e))
    fundus = [e for e in eyes if not is_external_eye(e)]
    if not external:
        return fundus_decision(fundus, missing_eyes)
    if not fundus:
        queue = patient_queue(external)
        needs = any(e.decision.code == CODE_NEEDS_FUNDUS for e in external)
        return EncounterDecision(queue, queue is not Queue.REVIEW, NEEDS_FUNDUS if needs else "")
    base = fundus_decision(fundus, missing_eyes)
    extra = [e.queue for e in external if e.decision.code != CODE_NEEDS_FUNDUS]
    return replace(base, queue=min([base.queue, *extra], key=lambda q: q.priority))


def unexamined_eyes(eyes: Iterable[EyeResult], missing_eyes: Iterable[MissingEye] = ()) -> list[Eye]:
    """Eyes with a recorded reason for no photograph that does not settle them
    (not in :data:`OTHER_EYE_DECIDES_REASONS`) and no graded current photograph:
    nobody has examined them, so someone must, in person. Right eye first."""
    graded = {e.eye for e in current_eyes(eyes) if e.status is Status.OK}
    open_ = {Eye(m.eye) for m in missing_eyes if m.reason not in OTHER_EYE_DECIDES_REASONS}
    return [e for e in (Eye.RIGHT, Eye.LEFT) if e in open_ and e not in graded]


def in_person_note(unexamined: Iterable[Eye]) -> str:
    """The queue note for eyes that could not be photographed: examine them in person."""
    sides = [e.label for e in unexamined]
    if not sides:
        return ""
    pronoun = "them" if len(sides) > 1 else "it"
    return f"{' and '.join(sides)} not photographed: examine {pronoun} in person ({IN_PERSON_EXAM})"


def fundus_decision(eyes: Iterable[EyeResult], missing_eyes: Iterable[MissingEye] = ()) -> EncounterDecision:
    """The visit's queue from its photographs (oldest first) and the eyes recorded as
    not photographed (with the reason): the most urgent current eye (review outranks
    annual), and never annual unless the visit is complete, i.e. the right and the
    left eye are each graded or have a recorded reason for no photograph. An
    incomplete visit goes to review ("other eye not photographed"); a referable eye
    still refers. Only "no eye" and "under an eye clinic's care" let the other eye
    decide alone (:data:`OTHER_EYE_DECIDES_REASONS`); an eye recorded for any other
    reason keeps the visit at least in review with "examine it in person"."""
    eyes = list(eyes)
    missing = list(missing_eyes)
    current = current_eyes(eyes)
    recorded = {Eye(m.eye) for m in missing} - {Eye.UNKNOWN}
    queue = patient_queue(current)
    graded = {e.eye for e in current if e.status is Status.OK}
    lacking = {Eye.RIGHT, Eye.LEFT} - graded - recorded
    if not current:
        return EncounterDecision(Queue.REVIEW, not lacking, NO_PHOTOGRAPH)
    if not lacking:
        unexamined = unexamined_eyes(current, missing)
        if unexamined and queue is Queue.ANNUAL:
            queue = Queue.REVIEW
        return EncounterDecision(queue, True, in_person_note(unexamined))
    photographed = {e.eye for e in current} - {Eye.UNKNOWN}
    note = ""  # an eye photographed but not graded: its own result already says review
    if lacking - photographed:
        unknown = any(e.eye is Eye.UNKNOWN for e in current)
        note = SIDE_NOT_KNOWN if unknown else OTHER_EYE_NOT_PHOTOGRAPHED
    if queue is Queue.ANNUAL:
        return EncounterDecision(Queue.REVIEW, False, note)
    return EncounterDecision(queue, False, note)


def patient_decision(patient_id: str, eyes: Iterable[EyeResult],
                     missing_eyes: Iterable[MissingEye] = ()) -> EncounterDecision:
    """:func:`encounter_decision` for a visit of ``patient_id``: the group of
    photographs with no patient ID in their names (:data:`NO_PATIENT_ID`) is nobody
    to recall, so where the rule says annual it stays in review until staff put
    each photograph with its patient; a referral stands (someone must be found)."""
    decision = encounter_decision(eyes, missing_eyes)
    if patient_id != NO_PATIENT_ID or decision.queue is not Queue.ANNUAL:
        return decision
    return replace(decision, queue=Queue.REVIEW, complete=False, note=f"{NO_PATIENT_ID}: {NO_PATIENT_ID_ADVICE}")


def encounter_queue(eyes: Iterable[EyeResult], missing_eyes: Iterable[MissingEye] = ()) -> Queue:
    """The visit's queue by :func:`encounter_decision`."""
    return encounter_decision(eyes, missing_eyes).queue


def rejected(result: EyeResult) -> bool:
    """A photograph the engine could not grade: unreadable, not a fundus photograph
    or ungradable. The batch summary, results, the window and ``eyescreen report``
    all count and list "rejected" by this one test."""
    return result.status is not Status.OK
