"""The external-eye check: "your eye looks healthy" or "go for an eye check-up".

Works on what every phone and webcam takes: a close-up of one eye, or a selfie.
For a selfie the face is found (OpenCV's LBP frontal-face cascade, shipped in
resources/cascades and evaluated by ``core.face_cascade`` in numpy: OpenCV 5 has
no cascade classifier, and scikit-image's would add ~50 MB to every install),
each eye is placed from the face's geometry and refined to the
darkest round blob (the iris), cropped with a margin and checked on its own.
The patient's right eye is on the image's left in a frontal photograph (a
camera does not mirror; a webcam preview that mirrors must un-mirror before
calling this). A photograph without a face is checked as a close-up only when
an iris with sclera beside it is found; otherwise it gets a message asking for
a closer picture and never a verdict. Tiny, blurred, dark or glaring eye crops
get a message too.

The model (``models/eyescreen-external``, trained by ``training/external.py``)
gives a softmax over ``normal / cataract / conjunctivitis / other``;
``p_checkup = 1 - p(normal)``. Its card and hash check are the fundus model's
(``core.classifier``). The heat map is a class-activation map of "any finding"
versus "normal" on the eye crop.

Research and demonstration only: the model learnt from web pictures with web
labels. Qt-free.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from ..domain.vocabulary import Modality
from .eye_input import square_eye
from .face_cascade import LBPCascade
from .paths import resource_file

log = logging.getLogger(__name__)

MODALITY = Modality.EXTERNAL_EYE.value
CLASSES: tuple[str, ...] = ("normal", "cataract", "conjunctivitis", "other")
VERDICT_HEALTHY = "Your eye looks healthy"
VERDICT_CHECKUP = "Go for an eye check-up"
FINDING_WORDS = {
    "normal": "no visible finding",
    "cataract": "possible cataract",
    "conjunctivitis": "red eye: possible conjunctivitis",
    "other": "another visible finding",
}
MIN_IMAGE_SIDE = 64         # px: smaller is a thumbnail, not a photograph
MIN_EYE_SIDE = 32           # px of the eye crop in the original photograph
BLUR_LIMIT = 25.0           # variance of the Laplacian on a 128-px grey eye crop
FACE_NEIGHBOURS = 5         # overlapping cascade detections a face needs (see find_face)
EYE_MARGIN = 0.9            # crop side = (1 + margin) x the eye's width (0.22 of the face)

# messages: one sentence each, saying what to do
MSG_TINY = "The picture is only {w}x{h} px: take a closer photograph of the eye."
MSG_NO_EYE = ("No eye found in this picture: take a closer photograph of one eye, or a selfie facing "
              "the camera in good light.")
MSG_FUNDUS = ("This is a fundus photograph (the back of the eye): screen it for diabetic retinopathy, "
              "not with the eye check.")
MSG_EYE_TINY = "The {side} is only {n} px wide in this picture: come closer to the camera and retake."
MSG_BLURRED = "The {side} is blurred: hold the camera still, focus on the eye and retake."
MSG_DARK = "The {side} is too dark: add light (no flash into the eye) and retake."
MSG_GLARE = "The {side} is washed out by glare: avoid direct light and retake."


# --------------------------------------------------------------------------- finding the eyes


@dataclass(frozen=True)
class EyeBox:
    """Where one eye is in the photograph (pixels) and which eye it is."""

    side: str                   # "R" (patient's right), "L", or "?" for a close-up
    x: int
    y: int
    w: int
    h: int

    @property
    def label(self) -> str:
        return {"R": "right eye", "L": "left eye"}.get(self.side, "eye")


@dataclass(frozen=True)
class EyeSearch:
    """What was found: ``kind`` is ``face`` (a selfie), ``close_up``, ``fundus`` or ``none``."""

    kind: str
    eyes: tuple[EyeBox, ...] = ()
    face: tuple[int, int, int, int] | None = None


FACE_CASCADE_FILE = ("cascades", "lbpcascade_frontalface.xml")
_FACE_CASCADE: LBPCascade | None = None
_FACE_LOCK = threading.Lock()   # screening checks pictures on several decode threads


def _face_cascade() -> LBPCascade:
    """The shipped LBP frontal-face cascade (resources/cascades), loaded once."""
    global _FACE_CASCADE
    if _FACE_CASCADE is None:
        path = resource_file(*FACE_CASCADE_FILE)
        if not path.is_file():
            raise FileNotFoundError(f"The face cascade {path} is missing: reinstall EyeScreen.")
        _FACE_CASCADE = LBPCascade(path)
    return _FACE_CASCADE


def find_face(grey: np.ndarray) -> tuple[int, int, int, int] | None:
    """The largest frontal face (x, y, w, h), searched on a copy at most 640 px wide."""
    scale = min(1.0, 640.0 / max(grey.shape))
    small = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else grey
    side = min(small.shape)
    # 5 overlapping detections, not the default 4: that removed every false face in
    # scikit-image's other samples (cats, a micrograph) for 2 of 36 selfie variants
    with _FACE_LOCK:
        cascade = _face_cascade()
    found = cascade.detect_multi_scale(small, scale_factor=1.2, step_ratio=1,
                                       min_size=(max(24, side // 10),) * 2, max_size=(side, side),
                                       min_neighbour_number=FACE_NEIGHBOURS)
    if not found:
        return None
    best = max(found, key=lambda d: d.width * d.height)
    return tuple(int(round(v / scale)) for v in (best.c, best.r, best.width, best.height))


def eyes_in_face(grey: np.ndarray, face: tuple[int, int, int, int]) -> tuple[EyeBox, EyeBox]:
    """Both eyes of a frontal face: each placed where faces have them (centres at
    about 30% and 70% of the face's width, 40% of its height, in the cascade's
    tight box) and moved to the darkest blob nearby (the iris). The eye on the
    image's left is the patient's right."""
    x, y, w, h = face
    boxes = []
    for side, fx in (("R", 0.30), ("L", 0.70)):
        cx, cy = _darkest_near(grey, x + fx * w, y + 0.40 * h, 0.16 * w, 0.10 * h)
        side_px = int(round(0.22 * w * (1 + EYE_MARGIN)))
        boxes.append(_box(side, cx, cy, side_px, grey.shape))
    return boxes[0], boxes[1]


def _darkest_near(grey: np.ndarray, cx: float, cy: float, rx: float, ry: float) -> tuple[float, float]:
    """Centre of the darkest smoothed spot within (rx, ry) of (cx, cy); the prior when flat."""
    x0, x1 = int(max(0, cx - rx)), int(min(grey.shape[1], cx + rx))
    y0, y1 = int(max(0, cy - ry)), int(min(grey.shape[0], cy + ry))
    roi = grey[y0:y1, x0:x1]
    if roi.size < 16:
        return cx, cy
    k = max(3, int(min(roi.shape) // 4) | 1)
    smooth = cv2.GaussianBlur(roi, (k, k), 0)
    if float(smooth.max()) - float(smooth.min()) < 12:
        return cx, cy
    _, _, (mx, my), _ = cv2.minMaxLoc(smooth)
    return x0 + mx, y0 + my


def _box(side: str, cx: float, cy: float, size: int, shape: tuple[int, ...]) -> EyeBox:
    """A square of ``size`` around (cx, cy), kept inside the photograph."""
    size = int(min(size, shape[0], shape[1]))
    x = int(np.clip(round(cx - size / 2), 0, shape[1] - size))
    y = int(np.clip(round(cy - size / 2), 0, shape[0] - size))
    return EyeBox(side, x, y, size, size)


def find_iris(rgb: np.ndarray) -> tuple[float, float, float] | None:
    """An iris filling part of a close-up: a circle (Hough) near the centre, darker
    than the ring around it, with whitish low-saturation sclera beside it on at
    least one side. Returns (x, y, r) in the photograph's pixels, or None."""
    scale = 256.0 / max(rgb.shape[:2])
    im = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    grey = cv2.medianBlur(cv2.cvtColor(im, cv2.COLOR_RGB2GRAY), 5)
    sat = cv2.cvtColor(im, cv2.COLOR_RGB2HSV)[..., 1]
    h, w = grey.shape
    m = min(h, w)
    circles = cv2.HoughCircles(grey, cv2.HOUGH_GRADIENT, dp=1.5, minDist=m / 4, param1=100, param2=30,
                               minRadius=int(m * 0.08), maxRadius=int(m * 0.45))
    for cx, cy, r in ([] if circles is None else circles[0][:3]):
        if abs(cx - w / 2) < w * 0.35 and abs(cy - h / 2) < h * 0.35 and _iris_like(grey, sat, cx, cy, r):
            return cx / scale, cy / scale, r / scale
    return None


def _iris_like(grey: np.ndarray, sat: np.ndarray, cx: float, cy: float, r: float) -> bool:
    """Darker inside than around, and a bright, pale patch (sclera) left or right of it."""
    inside = np.zeros_like(grey)
    cv2.circle(inside, (int(cx), int(cy)), int(r), 255, -1)
    ring = np.zeros_like(grey)
    cv2.circle(ring, (int(cx), int(cy)), int(r * 1.8), 255, -1)
    ring[inside > 0] = 0
    if not ring.any() or grey[inside > 0].mean() >= grey[ring > 0].mean() - 5:
        return False
    y0, y1 = int(max(0, cy - r / 3)), int(min(grey.shape[0], cy + r / 3))
    for x0, x1 in ((cx - 2.0 * r, cx - 1.15 * r), (cx + 1.15 * r, cx + 2.0 * r)):
        a, b = int(max(0, x0)), int(min(grey.shape[1], x1))
        if b - a >= 3 and y1 > y0:
            patch_g, patch_s = grey[y0:y1, a:b], sat[y0:y1, a:b]
            if patch_g.mean() > grey[inside > 0].mean() + 30 and patch_s.mean() < 110:
                return True
    return False


def find_eyes(rgb: np.ndarray, modality: str | None = None) -> EyeSearch:
    """A selfie's two eyes, or a close-up's one eye, or nothing.

    ``modality`` is the learned gate's word for the whole picture when it is
    known (``core.gate``: ``external_eye`` for a close-up of the eye, ``other``
    for faces and anything else): a close-up is then taken as it is, and only
    ``other`` pictures are searched for a face. Without it, a face is searched
    first and a close-up must show an iris beside sclera (``find_iris``)."""
    h, w = rgb.shape[:2]
    whole = EyeSearch("close_up", (EyeBox("?", 0, 0, w, h),))
    if modality == Modality.EXTERNAL_EYE:
        return whole
    if modality == Modality.FUNDUS:
        return EyeSearch("fundus")
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    face = find_face(grey)
    if face is not None:
        return EyeSearch("face", eyes_in_face(grey, face), face)
    if modality is None and find_iris(rgb) is not None:
        return whole
    return EyeSearch("none")


# --------------------------------------------------------------------------- quality of an eye crop


def crop_problem(crop: np.ndarray, label: str = "eye") -> str | None:
    """Why an eye crop cannot be checked (one sentence saying what to do), or None."""
    h, w = crop.shape[:2]
    if min(h, w) < MIN_EYE_SIDE:
        return MSG_EYE_TINY.format(side=label, n=min(h, w))
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, (128, 128), interpolation=cv2.INTER_AREA)
    mean = float(small.mean())
    if mean < 35:
        return MSG_DARK.format(side=label)
    if float((small > 250).mean()) > 0.35:
        return MSG_GLARE.format(side=label)
    if float(cv2.Laplacian(small, cv2.CV_64F).var()) < BLUR_LIMIT:
        return MSG_BLURRED.format(side=label)
    return None


# --------------------------------------------------------------------------- the model


EXTERNAL_MODEL_ENV = "EYESCREEN_EXTERNAL_MODEL"
def default_external_model_dir() -> Path:
    """The eye-check model shipped beside the grader (``models/eyescreen-external``),
    or ``$EYESCREEN_EXTERNAL_MODEL``."""
    from .paths import models_dir

    return Path(os.environ.get(EXTERNAL_MODEL_ENV) or models_dir() / "eyescreen-external")


@functools.cache
def default_external_model() -> "ExternalEyeModel | None":
    """The shipped eye-check model, loaded once per process; None (logged) when this
    installation has none: external-eye photographs then stay "not a fundus
    photograph". One that is there but damaged is refused with a ModelError that says
    so, rather than screening on quietly without it."""
    from .classifier import ModelError

    folder = default_external_model_dir()
    if not folder.exists():
        log.warning("no external-eye check model in %s", folder)
        return None
    try:
        return ExternalEyeModel.load(folder)
    except Exception as exc:  # noqa: BLE001 - any failure to load is a damaged model, said as one
        raise ModelError(f"the eye-check model in {folder} is damaged, so no photograph is graded ({exc}); "
                         "reinstall EyeScreen or restore that folder") from None


class ExternalEyeModel:
    """The loaded, hash-checked external-eye model (ONNX twin by default).

    ``predict(crops)`` takes eye crops already made square (``square_eye``) and
    returns the softmax (N, 4) and heat maps (N, S, S) in [0, 1]."""

    def __init__(self, classifier: Any):
        self._clf = classifier
        card = classifier.card
        self.classes = tuple(card.raw.get("classes", CLASSES))
        if self.classes[0] != "normal":
            raise ValueError(f"model {card.name}: first class must be 'normal', got {self.classes}")
        self.threshold = float(card.operating_point.referable)
        self.input_size = int(card.input_size)
        self._dense = self._dense_weights(card, classifier.folder)

    @classmethod
    def load(cls, path: Path, backend: str = "auto", threads: int | None = None) -> "ExternalEyeModel":
        """Read the card, verify the weights' SHA-256 and load (core.classifier does all three)."""
        from .classifier import Classifier, ModelError

        clf = Classifier.load(path, backend=backend, threads=threads)
        if clf.card.raw.get("modality") != MODALITY:
            raise ModelError(f"model {clf.card.name} is not an external-eye model (its card says "
                             f"modality {clf.card.raw.get('modality')!r}); use models/eyescreen-external")
        return cls(clf)

    @property
    def info(self) -> Any:
        return self._clf.info

    @staticmethod
    def _dense_weights(card: Any, folder: Path) -> np.ndarray | None:
        name = card.raw.get("heatmap", {}).get("dense_weights_file")
        return np.load(Path(folder) / name) if name and (Path(folder) / name).is_file() else None

    def predict(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Softmax (N, 4) and heat maps (N, S, S)."""
        out = self._clf.raw_outputs(np.asarray(crops, np.float32))
        probs = np.asarray(out[self._clf.card.outputs[0]], np.float64)
        feats = out.get("features")
        dense = self._dense if self._dense is not None else self._clf.dense_weights()
        if feats is None or dense is None:
            return probs, np.zeros((len(crops), self.input_size, self.input_size), np.float32)
        return probs, finding_cam(np.asarray(feats), dense, self.input_size)


def finding_cam(features: np.ndarray, dense: np.ndarray, size: int) -> np.ndarray:
    """Class-activation map of "any finding" against "normal": the mean of the
    finding classes' dense weights minus the normal class's, on the last
    feature maps (N, h, w, C); positive evidence only, scaled to [0, 1]."""
    direction = dense[:, 1:].mean(axis=1) - dense[:, 0]
    maps = np.maximum(np.tensordot(features, direction, axes=([3], [0])), 0.0)
    out = np.zeros((maps.shape[0], size, size), np.float32)
    for i, m in enumerate(maps):
        if float(m.max()) > 0:
            out[i] = cv2.resize((m / m.max()).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(out, 0.0, 1.0)


# --------------------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class EyeCheck:
    """The check of one eye: a verdict, or a message and no verdict.

    ``checkup`` is None when the eye could not be checked; ``p_checkup`` is
    ``1 - p(normal)``; ``finding`` is in words ("possible cataract")."""

    box: EyeBox
    message: str = ""
    probs: dict[str, float] | None = None
    p_checkup: float | None = None
    checkup: bool | None = None
    finding: str = ""
    crop: Any = field(default=None, compare=False, repr=False)       # uint8 (S, S, 3) model input
    heatmap: Any = field(default=None, compare=False, repr=False)    # float32 (S, S) in [0, 1]

    @property
    def checked(self) -> bool:
        return self.checkup is not None

    @property
    def verdict(self) -> str:
        """The course's plain words, or "" when there is no verdict."""
        if self.checkup is None:
            return ""
        return VERDICT_CHECKUP if self.checkup else VERDICT_HEALTHY


@dataclass(frozen=True)
class PhotoCheck:
    """One photograph: what kind it was and each eye's check (or why none)."""

    kind: str                           # face / close_up / none / unusable / fundus
    eyes: tuple[EyeCheck, ...] = ()
    message: str = ""                   # for the whole photograph, when no eye could be checked

    @property
    def checkup(self) -> bool | None:
        """True if any eye needs a check-up, False if all checked eyes look healthy,
        None if no eye could be checked."""
        done = [e.checkup for e in self.eyes if e.checked]
        return None if not done else any(done)


def verdict_words(probs: Sequence[float], threshold: float, classes: Sequence[str] = CLASSES
                  ) -> tuple[bool, float, str]:
    """(check-up?, p_checkup, finding in words) from the softmax: multi-class to
    binary, ``p_checkup = 1 - p(normal)``; the finding is the most probable
    non-normal class, named only when a check-up is advised."""
    p = np.asarray(probs, np.float64)
    p_checkup = float(1.0 - p[0])
    checkup = p_checkup >= threshold
    top = classes[1 + int(np.argmax(p[1:]))]
    return checkup, p_checkup, FINDING_WORDS[top] if checkup else FINDING_WORDS["normal"]


def check_photo(rgb: np.ndarray, model: ExternalEyeModel, modality: str | None = None) -> PhotoCheck:
    """Find the eyes, refuse what cannot be checked, check the rest.

    ``modality``: the gate's verdict on the whole picture, when screening has one."""
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_IMAGE_SIDE:
        return PhotoCheck("unusable", message=MSG_TINY.format(w=w, h=h))
    search = find_eyes(rgb, modality)
    if search.kind == "fundus":
        return PhotoCheck("fundus", message=MSG_FUNDUS)
    if not search.eyes:
        return PhotoCheck("none", message=MSG_NO_EYE)
    return PhotoCheck(search.kind, check_eyes(rgb, search.eyes, model))


def check_eyes(rgb: np.ndarray, boxes: Sequence[EyeBox], model: ExternalEyeModel) -> tuple[EyeCheck, ...]:
    """Crop each eye, refuse bad crops with a message, run the model once on the rest."""
    checks: list[EyeCheck] = []
    todo: list[tuple[int, np.ndarray]] = []
    for box in boxes:
        crop = rgb[box.y:box.y + box.h, box.x:box.x + box.w]
        problem = crop_problem(crop, box.label)
        if problem:
            checks.append(EyeCheck(box, message=problem))
            continue
        todo.append((len(checks), square_eye(crop, model.input_size)))
        checks.append(EyeCheck(box))
    if todo:
        probs, cams = model.predict(np.stack([c for _, c in todo]))
        for (i, crop), p, cam in zip(todo, probs, cams):
            checkup, p_chk, finding = verdict_words(p, model.threshold, model.classes)
            checks[i] = EyeCheck(checks[i].box, probs=dict(zip(model.classes, map(float, p))), p_checkup=p_chk,
                                 checkup=checkup, finding=finding, crop=crop, heatmap=cam)
    return tuple(checks)


# --------------------------------------------------------------------------- into the clinic's records


def photo_words(check: PhotoCheck) -> tuple[bool | None, float | None, str, str]:
    """(check-up?, p_checkup, finding in words, message) for a whole photograph:
    one eye's words for a close-up; each eye named for a selfie ("right eye:
    possible cataract; left eye: no visible finding"); p_checkup the highest."""
    done = [e for e in check.eyes if e.checked]
    missed = " ".join(e.message for e in check.eyes if not e.checked)
    if not done:
        return None, None, "", check.message or missed or MSG_NO_EYE
    if len(check.eyes) == 1:
        return done[0].checkup, done[0].p_checkup, done[0].finding, ""
    finding = "; ".join(f"{e.box.label}: {e.finding}" for e in done)
    return any(e.checkup for e in done), max(e.p_checkup for e in done), finding, missed


def external_result(path: str, eye: Any, check: PhotoCheck, quality: Any, protocol: Any, *, sha256: str = "",
                    width: int = 0, height: int = 0) -> Any:
    """The clinic's record of an external-eye photograph (modality ``external_eye``,
    ``p_checkup``, never an ICDR grade), or None when the check found no eye in a
    picture the gate did not call an eye (it stays "not a fundus photograph").

    A close-up keeps the eye it was named for; a selfie is one record for both
    eyes (side unknown) whose finding names each eye. Checked -> status OK and the
    protocol's external-eye decision (a check-up is routine); no eye could be
    checked -> ungradable, review, with the message saying what to retake."""
    from dataclasses import replace

    from .records import Eye, EyeResult, Status

    if not check.eyes and getattr(quality, "modality", "") != MODALITY:
        return None
    checkup, p_checkup, finding, message = photo_words(check)
    status = Status.UNGRADABLE if checkup is None else Status.OK
    side = Eye(eye) if len(check.eyes) == 1 else Eye.UNKNOWN
    if quality is not None:
        quality = replace(quality, status=status, advice=message if checkup is None else "",
                          reasons=("eye_not_checked",) if checkup is None else (), modality=MODALITY)
    return EyeResult(path=path, eye=side, status=status, message=message, sha256=sha256, quality=quality,
                     decision=protocol.decide_external_eye(checkup, finding, message), width=width, height=height,
                     modality=MODALITY, gate=getattr(quality, "gate", ""), p_checkup=p_checkup)
