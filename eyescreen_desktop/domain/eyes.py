"""The patient and eye side a file name states: one rule for the window, the batch,
the camera folder, site calibration and training.

The name's last word, after ``_``, ``-`` or a space, says the side (``R``, ``OD``,
``right``, ``L``, ``OS``, ``left``, any case); what comes before it is the patient ID.
So ``P001-R.jpg``, ``P001_R.jpg`` and ``P001 right.jpg`` are all patient P001, right
eye, and ``left.jpg`` is a left eye of a patient the name does not give. A side glued
to the ID (``P001R``) is not read: ``R`` may be part of the ID.
"""

from __future__ import annotations

import re
from pathlib import PurePath

from .vocabulary import Eye

_EYE_WORDS: dict[str, Eye] = {"l": Eye.LEFT, "left": Eye.LEFT, "os": Eye.LEFT,
                              "r": Eye.RIGHT, "right": Eye.RIGHT, "od": Eye.RIGHT}
NO_PATIENT_ID = "no patient ID in the file name"
"""Where a photograph goes whose name gives no patient ID (``IMG_0001.jpg``, ``scan.png``)
and that no patient list names: one group under this heading (results.csv's patient
column, the summary, the review queue), never a patient invented from the file name."""
NO_PATIENT_ID_ADVICE = ("rename each photograph PATIENTID_R.jpg or PATIENTID_L.jpg (e.g. P001_R.jpg), "
                        "or list it in a patients CSV, then screen it again")
"""What staff do about a photograph in the :data:`NO_PATIENT_ID` group."""

_TAGGED = re.compile(r"^(?:(?P<patient>.*?)[_\- ]+)?(?P<eye>left|right|l|r|od|os)$", re.IGNORECASE)


def parse_eye(text: str) -> Eye:
    """L/R/OD/OS/left/right (any case, spaces around) -> Eye; anything else is UNKNOWN,
    so a patient list's empty ``eye`` cell leaves the side to the file name."""
    return _EYE_WORDS.get(text.strip().lower(), Eye.UNKNOWN)


def patient_and_eye(stem: str) -> tuple[str | None, Eye]:
    """(patient ID, eye) a file name's stem states: ``P001-R`` -> ("P001", RIGHT),
    ``left`` -> (None, LEFT), ``P001R`` or ``scan`` -> (None, UNKNOWN).

    None means the name gives no patient ID beside the side (callers fall back to the
    folder, a patient list, or "no patient ID in the file name")."""
    m = _TAGGED.match(stem.strip())
    if not m:
        return None, Eye.UNKNOWN
    return (m["patient"] or None), parse_eye(m["eye"])


def eye_from_name(path: str | PurePath) -> Eye:
    """The eye a file name states (``P001_R.jpg``, ``x-OS.png``, ``left.jpg``), else UNKNOWN."""
    return patient_and_eye(PurePath(path).stem)[1]
