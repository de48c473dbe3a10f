"""Plain data records passed between the engine, the store, the reports and the GUI.

They are frozen dataclasses with no behaviour beyond small derived properties,
so every layer can build, compare and serialise them without importing the
others. The clinic's vocabulary is used on purpose: patient, encounter, eye,
grade, referable, queue, referral slip, protocol, operating point.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

# the vocabulary lives in domain; records re-exports it so `from .records import Eye` keeps working
from ..domain.vocabulary import (  # noqa: F401 - re-exported: the vocabulary is stated in domain
    ICDR_GRADE_NAMES,
    PHOTO_QUALITY_BORDERLINE,
    QUALITY_VERDICTS,
    REASON_BORDERLINE,
    REASON_URGENT_SIGNS,
    URGENT_SIGNS_VISIBLE,
    Eye,
    Modality,
    Queue,
    Status,
)


@dataclass(frozen=True)
class QualityReport:
    """Verdict of the image-quality gate and the "is it a fundus photo" check.

    ``status`` is OK, UNGRADABLE or NOT_FUNDUS; ``reasons`` are short machine
    codes (``blurred``, ``dark``, ``overexposed``, ``small_field``, ``low_resolution``,
    ``no_field_of_view`` ...); ``advice`` is one sentence for the nurse;
    ``metrics`` holds the measured numbers for logs and tuning.
    """

    status: Status
    reasons: tuple[str, ...] = ()
    advice: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    modality: str = Modality.FUNDUS.value    # fundus / external_eye / other (core.gate)
    gate: str = ""              # the gate that judged it, "name version" ("" = hand-made rules only)

    @property
    def gradable(self) -> bool:
        return self.status is Status.OK

    @property
    def verdict(self) -> str:
        """The gate's verdict in its own words, as the slip and the window print it
        ("Image quality: gradable", or "photo quality borderline" for a borderline pass)."""
        return PHOTO_QUALITY_BORDERLINE if self.borderline else QUALITY_VERDICTS[self.status]

    @property
    def borderline(self) -> bool:
        """Graded, but the learned gate put it close to its reject limit: the grade is
        shown with "photo quality borderline"."""
        return self.gradable and REASON_BORDERLINE in self.reasons

    @property
    def urgent_signs(self) -> bool:
        """Refused for quality, yet the grader saw severe or proliferative signs with
        high probability: "possible urgent disease visible: examine today"."""
        return not self.gradable and REASON_URGENT_SIGNS in self.reasons


@dataclass(frozen=True)
class Prediction:
    """Model output for one eye.

    ``grade_probs`` are the ICDR grade 0-4 probabilities (sum to 1).
    ``p_referable`` (grade >= 2 or maculopathy) and ``p_urgent`` (grade >= 3)
    come from dedicated heads when the model has them, else are summed from
    ``grade_probs``. ``p_maculopathy`` is None when the model has no such output.
    """

    grade_probs: tuple[float, ...]
    p_referable: float
    p_urgent: float
    p_maculopathy: float | None = None

    @property
    def grade(self) -> int:
        """Most probable ICDR grade."""
        return max(range(len(self.grade_probs)), key=self.grade_probs.__getitem__)


@dataclass(frozen=True)
class OperatingPoint:
    """Thresholds that turn probabilities into decisions, chosen on validation
    patients (referable sensitivity >= 0.90, urgent sensitivity >= 0.97) and stored
    in the model card; a clinic may lock its own after a local evaluation."""

    name: str
    referable: float
    urgent: float
    maculopathy: float = 0.5


@dataclass(frozen=True)
class EyeDecision:
    """What the protocol makes of one eye: its queue, its grade code in the
    protocol's own terms (e.g. ``ICDR 2`` or ``R1 M0``) and the finding in words.

    ``grade`` is the ICDR grade 0-4 the decision stands for (e.g. 2 when the
    referable threshold fired although grade 0 was the most probable), so a grade
    printed next to a queue never contradicts it; None for an eye not graded."""

    queue: Queue
    code: str
    finding: str
    grade: int | None = None


@dataclass(frozen=True)
class EyeResult:
    """Everything the engine learnt about one photograph."""

    path: str
    eye: Eye
    status: Status
    message: str = ""
    sha256: str = ""
    quality: QualityReport | None = None
    prediction: Prediction | None = None
    decision: EyeDecision | None = None
    # optional float32 HxW array in [0, 1] over the preprocessed image; an array has no
    # plain ==, so results compare (and print) without it
    heatmap: Any = field(default=None, compare=False, repr=False)
    width: int = 0
    height: int = 0
    modality: str = Modality.FUNDUS.value    # what the gate saw: fundus / external_eye / other; only fundus is graded
    gate: str = ""              # the gate's "name version" (core.gate), for the result row and the slip
    # external-eye check (core.external_eye): probability that an eye check-up is needed,
    # 1 - p(normal); None for a fundus photograph. Such a result never has an ICDR grade.
    p_checkup: float | None = None

    @property
    def queue(self) -> Queue:
        """Every status other than OK goes to review; never to annual."""
        if self.status is not Status.OK or self.decision is None:
            return Queue.REVIEW
        return self.decision.queue

    @property
    def grade(self) -> int | None:
        """The ICDR grade behind the queue (the protocol's decided grade, which agrees
        with the queue), else the most probable one; None when not graded."""
        if self.status is not Status.OK or self.prediction is None:
            return None
        if self.decision is not None and self.decision.grade is not None:
            return self.decision.grade
        return self.prediction.grade


@dataclass(frozen=True)
class Patient:
    """A person screened at the clinic. ``patient_id`` is the clinic's own ID."""

    patient_id: str
    name: str = ""
    birth_date: dt.date | None = None
    sex: str = ""
    diabetes_type: str = ""
    diabetes_years: int | None = None


@dataclass(frozen=True)
class ModelInfo:
    """What a slip and a database row must say about the model that graded."""

    name: str
    version: str
    sha256: str


# Why an eye was not photographed: recorded by staff so that a visit with one
# eye can still be complete (and the patient recalled in a year, not asked back).
MISSING_EYE_REASONS: dict[str, str] = {
    "prosthesis": "prosthetic eye",
    "enucleated": "eye removed",
    "declined": "patient declined the photograph",
    "not_photographable": "eye could not be photographed (e.g. small pupil, cataract)",
    "under_eye_clinic": "eye already under the care of an eye clinic",
    "other": "other reason (see note)",
}


@dataclass(frozen=True)
class MissingEye:
    """An eye with no photograph and the recorded reason (a key of MISSING_EYE_REASONS)."""

    eye: Eye
    reason: str
    note: str = ""

    @property
    def words(self) -> str:
        """The reason in words, with the note when there is one."""
        words = MISSING_EYE_REASONS.get(self.reason, self.reason.replace("_", " "))
        return f"{words}: {self.note}" if self.note else words


@dataclass(frozen=True)
class EncounterSummary:
    """One patient visit with its eyes and the resulting queue: what a referral
    slip, a FHIR bundle and a queue row are made from."""

    encounter_id: str
    patient: Patient
    started_at: dt.datetime
    eyes: tuple[EyeResult, ...]
    queue: Queue
    due_date: dt.date
    action: str                 # e.g. "See an ophthalmologist within 2 weeks"
    protocol_name: str
    operating_point: OperatingPoint | None
    model: ModelInfo | None
    state: str = "open"         # open / referred / closed
    override_reason: str = ""
    slip_printed_at: dt.datetime | None = None
    # Since schema 3. ``eyes`` holds the CURRENT photograph of each eye (the newest of
    # each side: a retake replaces; every photograph of unknown side counts); the
    # photographs a retake replaced are kept in ``retaken`` for the record.
    retaken: tuple[EyeResult, ...] = ()
    computed_queue: Queue | None = None      # the queue by the protocol's rule, before any override
    override_queue: Queue | None = None      # the queue a clinician chose (with ``override_reason``)
    complete: bool = True                    # both eyes graded, or the missing one has a recorded reason
    queue_note: str = ""                     # why the rule chose this queue when it is not obvious
    missing_eyes: tuple[MissingEye, ...] = ()
    slip_saved_at: dt.datetime | None = None  # the patient's document saved as PDF (counts as issued)
    referred_without_slip: bool = False       # marked referred before any slip was printed or saved
    version: int = 0                          # the queue entry's row version (refuses conflicting changes)
    # issue 22: human grades. grading_state: "" (no human grade), final, arbitration_pending,
    # arbitrated; graded_by: the graders whose grades decided, in words ("Dr Grey")
    grading_state: str = ""
    graded_by: str = ""
    supersedes: str = ""      # on a regenerated document: which earlier file it replaces (kept as superseded)

    @property
    def overridden(self) -> bool:
        """A clinician moved the encounter to another queue (the reason is in ``override_reason``)."""
        return self.override_queue is not None

    @property
    def slip_issued_at(self) -> dt.datetime | None:
        """When the patient's document was first printed or saved as PDF; None when neither."""
        times = [t for t in (self.slip_printed_at, self.slip_saved_at) if t is not None]
        return min(times) if times else None

    @property
    def all_photos(self) -> tuple[EyeResult, ...]:
        """Every photograph of the visit: the current ones, then those a retake replaced."""
        return self.eyes + self.retaken
