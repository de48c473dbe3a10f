"""Does a photograph fit the eye and the patient it is about to be filed under?

Two mistakes read true on every later page and are caught by nothing else:

* **the other eye**: a right-eye picture on the camera stored with F6 (left),
  or a file named ``_L`` that shows a right eye. The optic disc's side
  (:mod:`core.laterality`) disagrees with the filed eye, confidently;
* **another patient**: ``P002_R.jpg`` opened while patient P904 is in the form.
  The file name carries another patient's ID, read by the batch's own file-name
  rule (:func:`domain.eyes.patient_and_eye`, the one place that rule lives).

:func:`check_photo` answers both as a :class:`PhotoFit`; the window asks the
nurse (store anyway / change the eye / cancel) and records the answer in the
audit log (``ClinicStore.record_photo_check``); the batch and the camera folder
cannot ask, so they note the warning in the result's message (results.csv).
Pictures that are not fundus photographs (no round field, or the hand-made
gate says not a fundus) are not side-checked: a disc found on a face means nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from . import fundus
from ..domain.eyes import patient_and_eye
from .imageio import ImageReadError, read_image
from .laterality import LateralityModel, SideEstimate, default_model, estimate_side
from .records import Eye, EyeResult, Status

log = logging.getLogger(__name__)

OTHER_EYE = "other_eye"
OTHER_PATIENT = "other_patient"
ANSWERS = ("store anyway", "change eye", "cancel")   # what the nurse may answer (audited as given)
NOTE_MARK = "Check: "   # starts each warning in a result's message
CHECK_SIDE = 512     # decode size for the check (the disc is looked for on a 128 px square)


@dataclass(frozen=True)
class PhotoFit:
    """What the checks found for one photograph about to be filed.

    ``side`` is None when the picture was not side-checked (not a fundus
    photograph with a round field); ``name_patient`` is the patient ID the file
    name carries ("" for none or a camera frame); ``warn_confidence`` is the
    laterality card's warning level."""

    file: str
    filed_eye: Eye
    patient_id: str
    side: SideEstimate | None
    name_patient: str
    warn_confidence: float

    @property
    def other_eye(self) -> bool:
        """The disc says, confidently, the other eye than the one it is filed under."""
        return (self.side is not None and self.filed_eye is not Eye.UNKNOWN and self.side.eye is not self.filed_eye
                and self.side.confidence >= self.warn_confidence)

    @property
    def other_patient(self) -> bool:
        """The file name carries a patient ID that is not this patient's."""
        return bool(self.name_patient) and self.name_patient.strip().casefold() != self.patient_id.strip().casefold()

    @property
    def warnings(self) -> tuple[str, ...]:
        """``OTHER_EYE`` / ``OTHER_PATIENT``, the checks that failed."""
        return tuple(k for k, bad in ((OTHER_EYE, self.other_eye), (OTHER_PATIENT, self.other_patient)) if bad)

    @property
    def suggested_eye(self) -> Eye:
        """The eye the disc says (UNKNOWN when it was not checked)."""
        return self.side.eye if self.side is not None else Eye.UNKNOWN

    def sentences(self) -> tuple[str, ...]:
        """Each warning in the nurse's words."""
        out = []
        if self.other_eye and self.side is not None:
            out.append(f"The photograph looks like the {self.side.eye.label} (optic disc on the "
                       f"{'right' if self.side.eye is Eye.RIGHT else 'left'} side, confidence "
                       f"{self.side.confidence:.0%}), but it is being filed as the {self.filed_eye.label}.")
        if self.other_patient:
            out.append(f"The file name {self.file} carries patient ID {self.name_patient}, "
                       f"but this is patient {self.patient_id}.")
        return tuple(out)

    def note(self) -> str:
        """One line for results.csv and the result's message ("" when nothing is wrong)."""
        return " ".join(f"{NOTE_MARK}{s}" for s in self.sentences())

    def details(self, answer: str = "") -> dict[str, Any]:
        """What the audit log keeps: the checks, their numbers and the nurse's answer."""
        return {"file": self.file, "filed_eye": self.filed_eye.value, "warnings": list(self.warnings),
                "disc_side": self.side.eye.value if self.side else "", "p_right": self.side.p_right if self.side else None,
                "confidence": self.side.confidence if self.side else None, "warn_confidence": self.warn_confidence,
                "name_patient": self.name_patient, "answer": answer}


def name_patient_id(file_name: str) -> str:
    """The patient ID a file's name carries by the one file-name rule (``P002_R.jpg`` -> ``P002``), else ""."""
    if not file_name:
        return ""
    return patient_and_eye(PurePosixPath(file_name.replace("\\", "/")).stem)[0] or ""


def side_of_fundus(rgb: np.ndarray, model: LateralityModel | None = None) -> SideEstimate | None:
    """The disc's side for a fundus photograph with a round field; None for anything else."""
    fov = fundus.find_field_of_view(rgb)
    if fov is None or fundus.assess_quality(rgb, fov).status is Status.NOT_FUNDUS:
        return None
    return estimate_side(rgb, model, fov)


def check_photo(rgb: np.ndarray | None, filed_eye: Eye, patient_id: str, file_name: str = "",
                model: LateralityModel | None = None) -> PhotoFit:
    """Both checks for one photograph (``rgb`` None: the name alone is checked)."""
    model = model or default_model()
    side = side_of_fundus(rgb, model) if rgb is not None and filed_eye is not Eye.UNKNOWN else None
    return PhotoFit(file_name, Eye(filed_eye), patient_id, side, name_patient_id(file_name), model.warn_confidence)


def prepare_checks() -> LateralityModel:
    """Read the laterality card and run every step of a check once, on a made-up
    photograph (a bright round field with a disc, encoded and decoded as a JPEG):
    a process's first check pays for the card, the image decoder's import and
    OpenCV's first calls (about 200 ms, where later checks take 20). The window
    runs this on its background helper as it starts, so the first photographs a
    nurse drops are checked at the warm speed. Returns the card's model."""
    import cv2

    from .imageio import decode_image

    model = default_model()
    side = CHECK_SIDE
    picture = np.zeros((side, side, 3), np.uint8)
    cv2.circle(picture, (side // 2, side // 2), side * 2 // 5, (40, 80, 170), -1)
    cv2.circle(picture, (side * 2 // 3, side // 2), side // 14, (200, 220, 240), -1)
    _encoded, jpeg = cv2.imencode(".jpg", picture)
    check_photo(decode_image(jpeg.tobytes(), "start-up check", side), Eye.RIGHT, "", "", model)
    return model


def noted_result(result: EyeResult, path: Path, patient_id: str, file_name: str,
                 model: LateralityModel | None = None) -> EyeResult:
    """The batch's and the camera folder's answer, which cannot ask anyone: the
    result with the checks' warning added to its message (results.csv, the
    encounter), unchanged when nothing is wrong. Only fundus photographs of a
    stated eye are side-checked (the file is decoded again, small: ~20 ms)."""
    if result.status is Status.ERROR:
        return result
    rgb = None
    if result.modality == "fundus" and result.eye is not Eye.UNKNOWN:
        try:
            rgb = read_image(path, max_side=CHECK_SIDE)
        except (ImageReadError, OSError, ValueError):
            rgb = None
    try:
        fit = check_photo(rgb, result.eye, patient_id, file_name, model)
    except (OSError, ValueError, KeyError) as exc:    # no laterality card (a damaged install): screen as before, say so
        log.error("photograph check skipped for %s: %s", file_name, exc)
        return result
    base = result.message.split(NOTE_MARK)[0].rstrip()    # a result reused from the store keeps no stale note
    message = " ".join(part for part in (base, fit.note()) if part)
    return result if message == result.message else replace(result, message=message)
