"""Status, queue, eye and modality: the clinic's words for them, each written once.

Every enum is a ``str`` enum, so its value is what the database, results.csv and the
FHIR export store, and ``Modality.FUNDUS == "fundus"`` holds for rows written before
the enum existed. ``.label`` is the wording staff see on screen and on paper.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum


class Status(str, Enum):
    """What the engine could make of one file."""

    OK = "ok"                    # graded by the model
    UNGRADABLE = "ungradable"    # a fundus photograph, but not good enough to grade
    NOT_FUNDUS = "not_fundus"    # not a fundus photograph at all
    ERROR = "error"              # unreadable file (corrupt, not an image, too large)

    @property
    def label(self) -> str:
        """Words for staff: why an eye has no grade (or "graded")."""
        return _STATUS_LABEL[self]


_STATUS_LABEL = {
    Status.OK: "graded",
    Status.UNGRADABLE: "could not be graded",
    Status.NOT_FUNDUS: "not a fundus photograph",
    Status.ERROR: "file could not be read",
}

#: the quality gate's verdict in words (``QualityReport.verdict``), for the screen and the slip
QUALITY_VERDICTS: dict[Status, str] = {
    Status.OK: "gradable",
    Status.UNGRADABLE: "ungradable",
    Status.NOT_FUNDUS: "not a fundus photograph",
    Status.ERROR: "unreadable",
}


class Queue(str, Enum):
    """The four clinic queues, most urgent first."""

    URGENT = "urgent"
    ROUTINE = "routine"
    REVIEW = "review"
    ANNUAL = "annual"

    @property
    def priority(self) -> int:
        """Lower is more urgent. Review outranks annual so a photo that could not
        be graded is never hidden behind a normal fellow eye."""
        return _QUEUE_PRIORITY[self]

    @property
    def label(self) -> str:
        """Words for staff."""
        return _QUEUE_LABEL[self]


_QUEUE_PRIORITY = {Queue.URGENT: 0, Queue.ROUTINE: 1, Queue.REVIEW: 2, Queue.ANNUAL: 3}
_QUEUE_LABEL = {
    Queue.URGENT: "Urgent referral",
    Queue.ROUTINE: "Routine referral",
    Queue.REVIEW: "Review (retake or examine in person)",
    Queue.ANNUAL: "Annual screening",
}

#: the queues that refer the patient to an ophthalmologist (review and annual do not):
#: what QA counts as an AI or graded referral, the FHIR export's referable flag, the heat map's eyes
REFERRAL_QUEUES: tuple[Queue, ...] = (Queue.URGENT, Queue.ROUTINE)


class Eye(str, Enum):
    """Laterality. UNKNOWN when neither the name nor the patient list says."""

    LEFT = "L"
    RIGHT = "R"
    UNKNOWN = "?"

    @property
    def label(self) -> str:
        """Words for staff: "left eye", "right eye", "eye (side unknown)"."""
        return {"L": "left eye", "R": "right eye", "?": "eye (side unknown)"}[self.value]


class Modality(str, Enum):
    """What kind of picture the gate saw; only a fundus photograph is graded for DR."""

    FUNDUS = "fundus"
    EXTERNAL_EYE = "external_eye"    # the front of the eye (the eye check grades it)
    OTHER = "other"                  # not an eye photograph

    @property
    def label(self) -> str:
        """Words for staff."""
        return _MODALITY_LABEL[self]


_MODALITY_LABEL = {
    Modality.FUNDUS: "fundus photograph",
    Modality.EXTERNAL_EYE: "photograph of the front of the eye",
    Modality.OTHER: "not an eye photograph",
}


# Notes the quality gate adds to a photograph's reasons (codes) and the words staff read.
# A photograph the gate passes but close to its reject limit is graded with a note; a
# photograph refused for quality on which the grader still sees severe or proliferative
# disease with high probability stays ungraded, in review, with a warning to act today.
REASON_BORDERLINE = "borderline_quality"
PHOTO_QUALITY_BORDERLINE = "photo quality borderline"
REASON_URGENT_SIGNS = "urgent_signs_visible"
URGENT_SIGNS_VISIBLE = "possible urgent disease visible: examine today"


#: the quality gate's reason codes (QualityReport.reasons) in words, for the screen and the slip
REASON_WORDS: dict[str, str] = {
    "blurred": "out of focus",
    "dark": "too dark",
    "overexposed": "too bright (washed out)",
    "small_field": "too little of the retina visible",
    "low_resolution": "photograph too small",
    "uneven_illumination": "part of the retina in shadow",
    "no_field_of_view": "retina not found in the picture",
    "not_fundus": "not a fundus photograph",
    "external_eye": "photograph of the front of the eye, not of the retina",
    "unfamiliar": "unfamiliar photograph: check it by eye",
    "poor_quality": "not clear enough to grade",
    REASON_BORDERLINE: PHOTO_QUALITY_BORDERLINE,
    REASON_URGENT_SIGNS: URGENT_SIGNS_VISIBLE,
}


def reason_words(reasons: Iterable[str]) -> str:
    """The reasons in words, comma separated; an unknown code reads as itself."""
    return ", ".join(REASON_WORDS.get(r, r.replace("_", " ")) for r in reasons)



ICDR_GRADE_NAMES: tuple[str, ...] = (
    "no diabetic retinopathy",
    "mild non-proliferative diabetic retinopathy",
    "moderate non-proliferative diabetic retinopathy",
    "severe non-proliferative diabetic retinopathy",
    "proliferative diabetic retinopathy",
)
