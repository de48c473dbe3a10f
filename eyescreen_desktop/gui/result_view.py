"""What the screening found for the patient in front of the nurse.

One big coloured line says what to do (the queue, the action and the date by
which the patient must be seen); below it both eyes side by side, right eye
first as on clinic forms: the photograph, the grade in words with its
probability, and for a photograph that cannot be graded the reason and what
to do (retake, dilate, examine in person). A toggle overlays the heat map of
where the network saw signs of disease.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from ..core.protocol import get_protocol, patient_queue
from ..core.records import ICDR_GRADE_NAMES, EncounterSummary, Eye, EyeResult, Queue, Status
from .resources import icon
from .worker import ScreenedEye

PHOTO_SIZE = 360        # preferred side of an eye's photograph; it shrinks to PHOTO_MIN on small screens
PHOTO_MIN = 200
HEAT_ALPHA = 0.55
HEADLINES = {Queue.URGENT: "URGENT REFERRAL", Queue.ROUTINE: "ROUTINE REFERRAL", Queue.REVIEW: "REVIEW NEEDED",
             Queue.ANNUAL: "NO REFERRAL: ANNUAL SCREENING"}
REASON_WORDS = {
    "blurred": "out of focus", "dark": "too dark", "overexposed": "too bright", "small_field": "field too small",
    "low_resolution": "resolution too low", "no_field_of_view": "no round field of view found",
    "uneven_illumination": "unevenly lit",
}


def _set_queue_property(label: QLabel, queue: Queue | None) -> None:
    """Colour a label by queue through the stylesheet's ``[queue="..."]`` rules."""
    label.setProperty("queue", queue.value if queue else "none")
    label.style().unpolish(label)
    label.style().polish(label)


def overlay_heatmap(photo: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """The photograph with the heat map blended in (hot = where the network saw
    signs of referable disease); cold areas keep the photograph's own colours."""
    h, w = photo.shape[:2]
    heat = cv2.resize(np.asarray(heatmap, np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    heat = np.clip(heat, 0.0, 1.0)
    colour = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)[:, :, ::-1]
    weight = (HEAT_ALPHA * heat)[:, :, None]
    return (photo * (1.0 - weight) + colour * weight).astype(np.uint8)


def to_pixmap(rgb: np.ndarray, side: int, ratio: float) -> QPixmap:
    """An RGB array as a pixmap of at most ``side`` logical pixels, sharp on high-DPI screens."""
    rgb = np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    image = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
    pixmap = QPixmap.fromImage(image).scaled(QSize(side, side) * ratio, Qt.AspectRatioMode.KeepAspectRatio,
                                             Qt.TransformationMode.SmoothTransformation)
    pixmap.setDevicePixelRatio(ratio)
    return pixmap


def eye_words(result: EyeResult) -> tuple[str, str, str]:
    """(verdict, detail, advice) in words for one eye."""
    if result.status is Status.OK and result.decision is not None:
        grade = result.grade
        verdict = result.decision.finding[:1].upper() + result.decision.finding[1:]
        probs = result.prediction.grade_probs if result.prediction else ()
        detail = f"Grade {result.decision.code}"
        if grade is not None and probs:
            detail += f" (model probability {probs[grade]:.0%})"
        if result.prediction is not None:
            detail += f"\nProbability of referable retinopathy: {result.prediction.p_referable:.0%}"
        return verdict, detail, ""
    if result.status is Status.ERROR:
        return "Photograph could not be read", "", result.message
    reasons = result.quality.reasons if result.quality else ()
    why = ", ".join(REASON_WORDS.get(r, r.replace("_", " ")) for r in reasons)
    verdict = "Not a fundus photograph" if result.status is Status.NOT_FUNDUS else "Cannot be graded"
    advice = (result.quality.advice if result.quality and result.quality.advice else result.message)
    return verdict, f"Photo: {why}" if why else "", advice


class PhotoLabel(QLabel):
    """A photograph that fits the space it is given (small laptop screens
    included), redrawn sharp at every size; text when there is no picture."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.rgb: np.ndarray | None = None
        self.setObjectName("photo")
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setWordWrap(True)
        self.setMinimumSize(PHOTO_MIN, PHOTO_MIN)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def sizeHint(self) -> QSize:
        return QSize(PHOTO_SIZE, PHOTO_SIZE)

    def set_rgb(self, rgb: np.ndarray) -> None:
        self.rgb = rgb
        self._render()

    def set_message(self, text: str) -> None:
        self.rgb = None
        self.clear()
        self.setText(text)

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        if self.rgb is not None:
            self._render()

    def _render(self) -> None:
        if self.rgb is not None:
            side = max(1, min(self.width(), self.height()))
            self.setPixmap(to_pixmap(self.rgb, side, self.devicePixelRatioF()))


class EyeCard(QFrame):
    """One eye: photograph, verdict, detail and advice."""

    def __init__(self, eye: Eye, parent: QWidget | None = None):
        super().__init__(parent)
        self.eye = eye
        self.shown: ScreenedEye | None = None
        self.setObjectName("eyeCard")
        self.title = QLabel("Right eye (OD)" if eye is Eye.RIGHT else "Left eye (OS)")
        self.title.setObjectName("eyeTitle")
        self.photo = PhotoLabel()
        self.verdict = QLabel()
        self.verdict.setObjectName("eyeVerdict")
        self.detail = QLabel()
        self.advice = QLabel()
        self.advice.setObjectName("eyeAdvice")
        self.file = QLabel()
        self.file.setObjectName("hint")
        for label in (self.verdict, self.detail, self.advice, self.file):
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.photo, 1)
        for label in (self.verdict, self.detail, self.advice, self.file):
            layout.addWidget(label)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
        self.clear()

    def clear(self) -> None:
        key = "F5" if self.eye is Eye.RIGHT else "F6"
        self.shown = None
        self.photo.set_message(f"No photograph yet.\n\nPress {key} to capture,\nor open or drop a file.")
        for label in (self.verdict, self.detail, self.advice, self.file):
            label.clear()
            label.setVisible(False)

    def set_pending(self) -> None:
        self.clear()
        self.photo.set_message("Grading…")

    def show_eye(self, screened: ScreenedEye, heatmap: bool) -> None:
        """Show one screened photograph (``heatmap``: overlay it when there is one)."""
        self.shown = screened
        result = screened.result
        if result.eye is Eye.UNKNOWN:
            self.title.setText("Eye not known (name files …_R / …_L)")
        verdict, detail, advice = eye_words(result)
        self.verdict.setText(verdict)
        _set_queue_property(self.verdict, result.queue)
        self.detail.setText(detail)
        self.advice.setText(f"What to do: {advice}" if advice else "")
        self.file.setText(f"File: {Path(result.path).name}")
        self.file.setToolTip(result.path)
        for label in (self.verdict, self.detail, self.advice, self.file):
            label.setVisible(bool(label.text()))
        self.set_heatmap(heatmap)

    def set_heatmap(self, on: bool) -> None:
        """Overlay or remove the heat map on the photograph."""
        if self.shown is None:
            return
        photo, heat = self.shown.photo, self.shown.result.heatmap
        if photo is None:
            self.photo.set_message("No picture to show")
            return
        if on and heat is not None and self.shown.result.status is Status.OK:
            photo = overlay_heatmap(photo, heat)
        self.photo.set_rgb(photo)

    @property
    def has_heatmap(self) -> bool:
        return self.shown is not None and self.shown.result.heatmap is not None


class ResultView(QWidget):
    """The decision for the patient and both eyes. ``slipRequested(encounter_id)``
    asks for the referral slip of the encounter on show."""

    slipRequested = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.summary: EncounterSummary | None = None
        self.protocol_name = "icdr-ada"
        self.banner = QLabel()
        self.banner.setObjectName("decisionBanner")
        self.banner.setWordWrap(True)
        self.detail = QLabel()
        self.detail.setObjectName("decisionDetail")
        self.detail.setWordWrap(True)
        self.heatmap_box = QCheckBox("Show heat map (where the model saw signs of disease)")
        self.heatmap_box.setIcon(icon("heatmap"))
        self.heatmap_box.toggled.connect(self.set_heatmap)
        self.slip_button = QPushButton(icon("print"), "Referral slip…")
        self.slip_button.clicked.connect(self._slip)
        self.cards = {Eye.RIGHT: EyeCard(Eye.RIGHT), Eye.LEFT: EyeCard(Eye.LEFT)}
        self._build()
        self.clear()

    def _build(self) -> None:
        tools = QHBoxLayout()
        tools.addWidget(self.heatmap_box)
        tools.addStretch(1)
        tools.addWidget(self.slip_button)
        eyes = QHBoxLayout()
        eyes.addWidget(self.cards[Eye.RIGHT])
        eyes.addWidget(self.cards[Eye.LEFT])
        note = QLabel("EyeScreen is a screening aid, not a diagnosis. A clinician decides.")
        note.setObjectName("hint")
        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addWidget(self.detail)
        layout.addLayout(tools)
        layout.addLayout(eyes, 1)
        layout.addWidget(note)

    # ------------------------------------------------------------------ content

    def clear(self) -> None:
        """Nothing screened yet (next patient)."""
        self.summary = None
        for card in self.cards.values():
            card.clear()
        self._update_decision()

    def set_loading(self) -> None:
        """A saved visit is being read."""
        self.clear()
        self.banner.setText("Opening the visit…")
        self.detail.setText("")

    def card_for(self, eye: Eye) -> EyeCard:
        """The card a result of ``eye`` goes to (an unknown side takes a free card)."""
        if eye in self.cards:
            return self.cards[eye]
        free = [c for c in self.cards.values() if c.shown is None]
        return free[0] if free else self.cards[Eye.RIGHT]

    def set_pending(self, eye: Eye) -> None:
        """A photograph of ``eye`` is being graded."""
        self.card_for(eye).set_pending()

    def show_eye(self, screened: ScreenedEye) -> None:
        """Show one eye's result (replacing that eye's earlier photograph)."""
        self.card_for(screened.result.eye).show_eye(screened, self.heatmap_box.isChecked())
        self._update_decision()

    def show_summary(self, summary: EncounterSummary) -> None:
        """The saved encounter: its queue and due date are the authoritative ones."""
        self.summary = summary
        self._update_decision()

    def set_heatmap(self, on: bool) -> None:
        """Overlay the heat maps (or remove them)."""
        if self.heatmap_box.isChecked() != on:
            self.heatmap_box.setChecked(on)   # re-enters through toggled
            return
        for card in self.cards.values():
            card.set_heatmap(on)

    def results(self) -> list[EyeResult]:
        """The results on show."""
        return [c.shown.result for c in self.cards.values() if c.shown is not None]

    # ------------------------------------------------------------------ the decision

    def _update_decision(self) -> None:
        results = self.results()
        self.heatmap_box.setEnabled(any(c.has_heatmap for c in self.cards.values()))
        self.slip_button.setEnabled(self.summary is not None)
        if not results and self.summary is None:
            self.banner.setText("Ready: capture or open the photographs of both eyes")
            self.detail.setText("Right eye: F5   ·   Left eye: F6   ·   Open files: Ctrl+O   ·   Next patient: Ctrl+N")
            _set_queue_property(self.banner, None)
            return
        if self.summary is not None:
            queue, due, action = self.summary.queue, self.summary.due_date, self.summary.action
            patient = self.summary.patient
            who = f"{patient.name} ({patient.patient_id})" if patient.name else patient.patient_id
        else:
            protocol = get_protocol(self.protocol_name)
            queue = patient_queue(results)
            due, action, who = protocol.due_date(queue, dt.date.today()), protocol.action(queue), ""
        self.banner.setText(f"{HEADLINES[queue]}: {action}")
        _set_queue_property(self.banner, queue)
        when = "today" if due <= dt.date.today() else f"by {due:%A %d %B %Y}"
        missing = [e.label for e, c in self.cards.items() if c.shown is None]
        retake = [c.shown.result.eye.label for c in self.cards.values()
                  if c.shown is not None and c.shown.result.status is not Status.OK]
        text = f"{who}: " if who else ""
        text += f"see {when}." if queue is not Queue.ANNUAL else f"next screening {when}."
        if retake:
            text += f"\nRetake the photograph of the {' and '.join(retake)}."
        if missing:
            text += f"\nStill to photograph: {' and '.join(missing)}."
        self.detail.setText(text)

    def _slip(self) -> None:
        if self.summary is not None:
            self.slipRequested.emit(self.summary.encounter_id)
