"""What the screening found for the patient in front of the nurse.

One big coloured line says what to do (the queue, the action and the date by
which the patient must be seen); below it both eyes side by side, right eye
first as on clinic forms: the photograph, the grade in words with its
probability, and for a photograph that cannot be graded the reason and what
to do (retake, dilate, examine in person). A toggle overlays the heat map of
where the network saw signs of disease.

The banner follows the one clinical rule (``protocol.encounter_decision``): it
never says "no referral" while an eye is missing without a recorded reason; it
says the other eye is still needed. Staff say which eye a photograph shows
(the buttons under it, or drag it onto the other eye), record why an eye was
not photographed, and see a clinician's change of queue with its reason. A
photograph of unknown side waits in its own panel and never replaces another.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PySide6.QtCore import QMimeData, QPoint, QSize, Qt, Signal
from PySide6.QtGui import QDrag, QDragEnterEvent, QDropEvent, QImage, QMouseEvent, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QFrame,
    QLineEdit,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from ..core.evidence import eye_evidence, quality_line
from ..core.heatmap import NO_AREA_TEXT
from ..core.protocol import (
    IN_PERSON_EXAM,
    OTHER_EYE_NOT_PHOTOGRAPHED,
    SIDE_NOT_KNOWN,
    encounter_decision,
    get_protocol,
)
from ..core.records import (
    MISSING_EYE_REASONS,
    EncounterSummary,
    Eye,
    EyeResult,
    MissingEye,
    OperatingPoint,
    REASON_URGENT_SIGNS,
    URGENT_SIGNS_VISIBLE,
    Queue,
    Status,
)
from ..domain.vocabulary import Modality, reason_words
from .resources import icon
from .worker import ScreenedEye

PHOTO_SIZE = 360        # preferred side of an eye's photograph; it shrinks to PHOTO_MIN on small screens
PHOTO_MIN = 150         # two eyes and their words fit a 1024x700 screen
PHOTO_MIME = "application/x-eyescreen-photo"   # a photograph dragged to the other eye: its SHA-256
SIDES = (Eye.RIGHT, Eye.LEFT)
TITLES = {Eye.RIGHT: "Right eye (OD)", Eye.LEFT: "Left eye (OS)", Eye.UNKNOWN: "Side not known: which eye is this?"}
HEAT_ALPHA = 0.55
HEADLINES = {Queue.URGENT: "URGENT REFERRAL", Queue.ROUTINE: "ROUTINE REFERRAL", Queue.REVIEW: "REVIEW NEEDED",
             Queue.ANNUAL: "NO REFERRAL: ANNUAL SCREENING"}


def _set_queue_property(label: QLabel, queue: Queue | None) -> None:
    """Colour a label by queue through the stylesheet's ``[queue="..."]`` rules (restyled
    only when the queue changed: restyling is the costly part, paid per photograph shown)."""
    value = queue.value if queue else "none"
    if label.property("queue") == value:
        return
    label.setProperty("queue", value)
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


def eye_words(result: EyeResult, op: OperatingPoint | None = None) -> tuple[str, str, str]:
    """(verdict, detail, advice) in words for one eye; a graded eye's verdict says what
    the evidence supports against the clinic's thresholds ``op`` (core.evidence, as the slip)."""
    if result.status is Status.OK and result.decision is not None:
        verdict = result.decision.finding[:1].upper() + result.decision.finding[1:]
        if result.p_checkup is not None:   # an external-eye photograph: an eye check, never a grade
            return verdict, ("Eye check of the front of the eye (not a retinopathy grade). Probability that "
                             f"an eye check-up is needed: {result.p_checkup:.0%}"), ""
        evidence = eye_evidence(result, op)
        if not evidence:
            return verdict, f"Protocol code: {result.decision.code}\n{quality_line(result)}", ""
        first, *more = evidence
        lines = [first.basis[:1].upper() + first.basis[1:], *(e.words for e in more),
                 f"Protocol code: {result.decision.code} \u00b7 {quality_line(result)}"]
        return first.headline, "\n".join(lines), ""
    if result.status is Status.ERROR:
        return "Photograph could not be read", "", result.message
    reasons = result.quality.reasons if result.quality else ()
    why = reason_words(r for r in reasons if r != REASON_URGENT_SIGNS)
    verdict = "Cannot be graded"
    if result.quality is not None and result.quality.urgent_signs:
        verdict = f"Cannot be graded: {URGENT_SIGNS_VISIBLE}"
    if result.status is Status.NOT_FUNDUS:
        verdict = ("Photograph of the front of the eye" if result.modality == Modality.EXTERNAL_EYE
                   else "Not a fundus photograph")
    advice = (result.quality.advice if result.quality and result.quality.advice else result.message)
    return verdict, f"Photo: {why}" if why else "", advice


def _modality_words(modality: str) -> str:
    """What the gate saw in words; a value this version does not know reads as itself."""
    try:
        return Modality(modality).label
    except ValueError:
        return modality


def seen_as(result: EyeResult) -> str:
    """What the learned gate took the picture for, and which gate ("" when none ran)."""
    if not result.gate or result.status is Status.ERROR:
        return ""
    return f"\nSeen as: {_modality_words(result.modality)} ({result.gate})"


class PhotoLabel(QLabel):
    """A photograph that fits the space it is given (small laptop screens
    included), redrawn sharp at every size; text when there is no picture.
    ``drag_key`` set: the photograph can be dragged onto the other eye."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.rgb: np.ndarray | None = None
        self._drawn: tuple[Any, int, float] | None = None   # (rgb, side, ratio) of the pixmap on show
        self.drag_key = ""
        self._press: QPoint | None = None
        self.setObjectName("photo")
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setWordWrap(True)
        self.setMinimumSize(PHOTO_MIN, PHOTO_MIN)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def sizeHint(self) -> QSize:
        return QSize(PHOTO_SIZE, PHOTO_SIZE)

    def hasHeightForWidth(self) -> bool:  # noqa: N802 - Qt's name
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802 - Qt's name
        """Square: a narrow card (1024-px screen) gets a square photograph, not a tall dark strip."""
        return max(self.minimumHeight(), width)

    def set_rgb(self, rgb: np.ndarray) -> None:
        self.rgb = rgb
        self._render()

    def set_message(self, text: str) -> None:
        self.rgb = self._drawn = None
        self.clear()
        self.setText(text)

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        if self.rgb is not None:
            self._render()

    def _render(self) -> None:
        """Scale the photograph to the label (smooth scaling is the costly part): not again
        for a resize that leaves its side as it was."""
        if self.rgb is not None:
            side, ratio = max(1, min(self.width(), self.height())), self.devicePixelRatioF()
            drawn = self._drawn
            if drawn is not None and drawn[0] is self.rgb and drawn[1:] == (side, ratio):
                return
            self._drawn = (self.rgb, side, ratio)
            self.setPixmap(to_pixmap(self.rgb, side, ratio))

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self._press = event.position().toPoint()
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self.drag_key and self._press is not None and (event.position().toPoint() - self._press).manhattanLength() > 12:
            self._press = None
            drag = QDrag(self)
            drag.setMimeData(photo_mime(self.drag_key))
            if (pixmap := self.pixmap()) is not None and not pixmap.isNull():
                drag.setPixmap(pixmap.scaled(96, 96, Qt.AspectRatioMode.KeepAspectRatio))
            drag.exec(Qt.DropAction.MoveAction)
        super().mouseMoveEvent(event)


def photo_mime(sha256: str) -> QMimeData:
    """What a dragged photograph carries: its SHA-256 (the store knows it by that)."""
    mime = QMimeData()
    mime.setData(PHOTO_MIME, sha256.encode())
    return mime


class EyeCard(QFrame):
    """One eye: photograph, verdict, detail and advice; the buttons that say which
    eye the photograph shows, or why the eye was not photographed.

    ``sideChosen(sha256, eye)``: staff say the photograph shows ``eye`` (button or
    a photograph dropped here); ``missingRequested(eye)``: record why not photographed."""

    sideChosen = Signal(str, object)
    missingRequested = Signal(object)

    def __init__(self, eye: Eye, parent: QWidget | None = None):
        super().__init__(parent)
        self.eye = eye
        self.shown: ScreenedEye | None = None
        self.pending = False   # a photograph of this eye is being graded (set_pending), not read back from a label
        self.op: OperatingPoint | None = None     # the thresholds the eye on show was decided with
        self.missing: MissingEye | None = None
        self.setObjectName("eyeCard")
        self.setAcceptDrops(eye in SIDES)
        self.title = QLabel(TITLES[eye])
        self.title.setObjectName("eyeTitle")
        self.title.setWordWrap(True)   # "Side not known: which eye is this?" must not widen the window
        self.photo = PhotoLabel()
        self.verdict = QLabel()
        self.verdict.setObjectName("eyeVerdict")
        self.detail = QLabel()
        self.advice = QLabel()
        self.advice.setObjectName("eyeAdvice")
        self.file = QLabel()
        self.file.setObjectName("hint")
        self.side_buttons = {side: QPushButton(f"It is the {side.label}" if eye is not Eye.UNKNOWN
                                               else side.label.capitalize()) for side in SIDES if side is not eye}
        self.missing_button = QPushButton("Record why not photographed…")
        self._build()
        self.clear()

    def _build(self) -> None:
        for label in (self.verdict, self.detail, self.advice, self.file):
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QHBoxLayout()
        for side, button in self.side_buttons.items():
            button.setToolTip(f"This photograph shows the {side.label}: file it there (or drag it onto that eye)")
            button.clicked.connect(lambda _checked=False, e=side: self._choose_side(e))
            buttons.addWidget(button)
        self.missing_button.setToolTip("Prosthesis, patient declined, cannot be photographed…: the visit can be "
                                       "complete with one eye only when the reason is recorded")
        self.missing_button.clicked.connect(lambda: self.missingRequested.emit(self.eye))
        buttons.addWidget(self.missing_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.photo, 1)
        for label in (self.verdict, self.detail, self.advice, self.file):
            layout.addWidget(label)
        layout.addLayout(buttons)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)

    def clear(self) -> None:
        """Empty, with the slot's own title (a new patient starts from scratch)."""
        self.shown = None
        self.pending = False
        self.title.setText(TITLES[self.eye])
        self.photo.drag_key = ""
        if self.missing is not None:
            self.photo.set_message(f"Not photographed: {self.missing.words}.\n\n(Recorded; a photograph can "
                                   "still be added.)")
        elif self.eye is Eye.UNKNOWN:
            self.photo.set_message("")
        else:
            key = "F5" if self.eye is Eye.RIGHT else "F6"
            self.photo.set_message(f"No photograph yet.\n\nPress {key} to capture,\nor open or drop a file.")
        for label in (self.verdict, self.detail, self.advice, self.file):
            label.clear()
            label.setVisible(False)
        self._update_buttons()

    def set_missing(self, missing: MissingEye | None, encounter_saved: bool) -> None:
        """The recorded reason this eye was not photographed (None: none)."""
        self.missing = missing
        self._saved = encounter_saved
        if self.shown is None and not self.pending:
            self.clear()
        self._update_buttons()

    def set_pending(self) -> None:
        """A photograph for this eye is being graded (``pending`` until it is shown or cleared)."""
        self.clear()
        self.pending = True
        self.photo.set_message("Grading…")

    def show_eye(self, screened: ScreenedEye, heatmap: bool, title: str = "",
                 op: OperatingPoint | None = None) -> None:
        """Show one screened photograph (``heatmap``: overlay it when there is one;
        ``op``: the thresholds it was decided with, when known)."""
        self.shown = screened
        self.pending = False
        self.op = op
        result = screened.result
        self.title.setText(title or TITLES[self.eye])
        verdict, detail, advice = eye_words(result, op)
        self.verdict.setText(verdict)
        _set_queue_property(self.verdict, result.queue)
        self.detail.setText(detail)
        self.advice.setText(f"What to do: {advice}" if advice else "")
        self.file.setText(self._file_text(heatmap))
        self.file.setToolTip(result.path)
        for label in (self.verdict, self.detail, self.advice, self.file):
            label.setVisible(bool(label.text()))
        self.photo.drag_key = result.sha256 if screened.encounter_id else ""
        self.set_heatmap(heatmap)
        self._update_buttons()

    def _update_buttons(self) -> None:
        movable = self.shown is not None and bool(self.shown.encounter_id) and bool(self.shown.result.sha256)
        for button in self.side_buttons.values():
            button.setVisible(movable)
        self.missing_button.setVisible(self.eye in SIDES and self.shown is None and getattr(self, "_saved", False))
        self.missing_button.setText("Change the reason…" if self.missing else "Record why not photographed…")

    def _choose_side(self, eye: Eye) -> None:
        if self.shown is not None and self.shown.result.sha256:
            self.sideChosen.emit(self.shown.result.sha256, eye)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasFormat(PHOTO_MIME):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        sha = bytes(event.mimeData().data(PHOTO_MIME).data()).decode()
        if sha and (self.shown is None or self.shown.result.sha256 != sha):
            event.acceptProposedAction()
            self.sideChosen.emit(sha, self.eye)

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
        self.file.setText(self._file_text(on))

    def _file_text(self, heatmap_on: bool) -> str:
        """The file line: its name, "no area stood out" for a graded eye without a
        map while maps are on, and what the gate saw it as."""
        result = self.shown.result
        quiet = heatmap_on and result.heatmap is None and result.status is Status.OK
        return f"File: {Path(result.path).name}" + (f" \u00b7 {NO_AREA_TEXT}" if quiet else "") + seen_as(result)

    @property
    def has_heatmap(self) -> bool:
        return self.shown is not None and self.shown.result.heatmap is not None


def _in_person(note: str) -> bool:
    """The rule's note asks for an eye to be examined in person (``protocol.in_person_note``)."""
    return IN_PERSON_EXAM in note


class MissingEyeDialog(QDialog):
    """Why an eye was not photographed: one of the recorded reasons (a note is
    required for "other"); it goes to the audit log."""

    def __init__(self, eye: Eye, current: MissingEye | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.eye = eye
        self.setWindowTitle(f"Why was the {eye.label} not photographed?")
        self.reason_box = QComboBox()
        for key, words in MISSING_EYE_REASONS.items():
            self.reason_box.addItem(words[:1].upper() + words[1:], key)
        self.note_edit = QLineEdit(placeholderText="Note (required for 'other reason')")
        if current is not None:
            self.reason_box.setCurrentIndex(max(0, self.reason_box.findData(current.reason)))
            self.note_edit.setText(current.note)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Record")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.reason_box.currentIndexChanged.connect(self._update_ok)
        self.note_edit.textChanged.connect(self._update_ok)
        form = QFormLayout(self)
        form.addRow("Reason:", self.reason_box)
        form.addRow("Note:", self.note_edit)
        form.addRow(self.buttons)
        self._update_ok()

    def reason(self) -> str:
        return str(self.reason_box.currentData())

    def note(self) -> str:
        return self.note_edit.text().strip()

    def _update_ok(self) -> None:
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(self.reason() != "other" or bool(self.note()))


class ResultView(QWidget):
    """The decision for the patient and both eyes.

    ``slipRequested(encounter_id)`` asks for the patient's document of the
    encounter on show; ``photoSideChosen(sha256, eye)`` staff say which eye a
    photograph shows; ``missingRequested(eye)`` record why an eye was not photographed."""

    slipRequested = Signal(str)
    photoSideChosen = Signal(str, object)
    missingRequested = Signal(object)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.summary: EncounterSummary | None = None
        self.protocol_name = "icdr-ada"
        self.unknown: list[ScreenedEye] = []        # photographs whose side is not known yet
        self._photos: dict[str, np.ndarray] = {}    # SHA-256 -> display crop, to move photographs without decoding
        self.banner = QLabel()
        self.banner.setObjectName("decisionBanner")
        self.banner.setWordWrap(True)
        self.detail = QLabel()
        self.detail.setObjectName("decisionDetail")
        self.detail.setWordWrap(True)
        self.heatmap_box = QCheckBox("Show heat map (where the model saw signs of disease)")
        self.heatmap_box.setIcon(icon("heatmap"))
        self.heatmap_box.toggled.connect(self.set_heatmap)
        self.slip_button = QPushButton(icon("print"), "Patient's document…")
        self.slip_button.setToolTip("Referral slip, review slip or result letter: preview, print or save (Ctrl+P)")
        self.slip_button.clicked.connect(self._slip)
        self.cards = {Eye.RIGHT: EyeCard(Eye.RIGHT), Eye.LEFT: EyeCard(Eye.LEFT)}
        self.unknown_card = EyeCard(Eye.UNKNOWN)
        for card in (*self.cards.values(), self.unknown_card):
            card.sideChosen.connect(self.photoSideChosen)
            card.missingRequested.connect(self.missingRequested)
        self._build()
        self.clear()

    def _build(self) -> None:
        tools = QHBoxLayout()
        tools.addWidget(self.heatmap_box)
        tools.addStretch(1)
        tools.addWidget(self.slip_button)
        row = QWidget()
        eyes = QHBoxLayout(row)
        eyes.setContentsMargins(0, 0, 0, 0)
        for card in (self.cards[Eye.RIGHT], self.cards[Eye.LEFT], self.unknown_card):
            eyes.addWidget(card, 1)
        # on a short screen the eyes scroll: each card keeps the room its words need (they overlapped)
        self.eyes_area = QScrollArea()
        self.eyes_area.setWidget(row)
        self.eyes_area.setWidgetResizable(True)
        self.eyes_area.setFrameShape(QFrame.Shape.NoFrame)
        self.eyes_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        note = QLabel("EyeScreen is a screening aid, not a diagnosis. A clinician decides.")
        note.setObjectName("hint")
        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addWidget(self.detail)
        layout.addLayout(tools)
        layout.addWidget(self.eyes_area, 1)
        layout.addWidget(note)

    # ------------------------------------------------------------------ content

    def clear(self) -> None:
        """Nothing screened yet (next patient): empty cards with their own titles."""
        self.summary = None
        self.unknown = []
        self._photos = {}
        for card in self.cards.values():
            card.set_missing(None, False)
            card.clear()
        self._show_unknown()
        self._update_decision()

    def set_loading(self) -> None:
        """A saved visit is being read."""
        self.clear()
        self.banner.setText("Opening the visit…")
        self.detail.setText("")

    def card_for(self, eye: Eye) -> EyeCard:
        """The card a result of ``eye`` goes to (unknown side: the side-not-known panel)."""
        return self.cards.get(eye, self.unknown_card)

    def set_pending(self, eye: Eye) -> None:
        """A photograph of ``eye`` is being graded."""
        if eye in self.cards:
            self.cards[eye].set_pending()

    def show_eye(self, screened: ScreenedEye) -> None:
        """Show one eye's result (a retake replaces that eye's earlier photograph; a
        photograph of unknown side waits in its own panel and replaces nothing)."""
        result = screened.result
        if screened.photo is not None and result.sha256:
            self._photos[result.sha256] = screened.photo
        if result.eye in self.cards:
            self.cards[result.eye].show_eye(screened, self.heatmap_box.isChecked(), op=self._op())
        else:
            self.unknown = [u for u in self.unknown if not result.sha256 or u.result.sha256 != result.sha256]
            self.unknown.append(screened)
            self._show_unknown()
        self._update_decision()

    def _op(self) -> OperatingPoint | None:
        """The thresholds the visit on show was decided with (None until it is saved)."""
        return self.summary.operating_point if self.summary is not None else None

    def show_summary(self, summary: EncounterSummary) -> None:
        """The saved encounter: its queue, due date, recorded reasons and the side of
        each photograph are the authoritative ones (photographs moved to the other
        eye move here too, without decoding them again)."""
        self.summary = summary
        current = {e.eye: e for e in summary.eyes if e.eye in SIDES}
        missing = {m.eye: m for m in summary.missing_eyes}
        for side, card in self.cards.items():
            want = current.get(side)
            if want is None and card.shown is not None and card.shown.encounter_id:
                card.clear()                     # its photograph went to the other eye
            elif want is not None and (card.shown is None or card.shown.result.sha256 != want.sha256
                                       or card.op != summary.operating_point):
                card.show_eye(ScreenedEye(want, self._photos.get(want.sha256), summary.encounter_id),
                              self.heatmap_box.isChecked(), op=summary.operating_point)
            card.set_missing(missing.get(side), True)
        self.unknown = [ScreenedEye(e, self._photos.get(e.sha256), summary.encounter_id)
                        for e in summary.eyes if e.eye is Eye.UNKNOWN]
        self._show_unknown()
        self._update_decision()

    def _show_unknown(self) -> None:
        card = self.unknown_card
        card.setVisible(bool(self.unknown))
        if self.unknown:
            more = f" (1 of {len(self.unknown)})" if len(self.unknown) > 1 else ""
            card.show_eye(self.unknown[0], self.heatmap_box.isChecked(), f"Side not known{more}: which eye is this?",
                          op=self._op())
        else:
            card.clear()

    def set_heatmap(self, on: bool) -> None:
        """Overlay the heat maps (or remove them)."""
        if self.heatmap_box.isChecked() != on:
            self.heatmap_box.setChecked(on)   # re-enters through toggled
            return
        for card in (*self.cards.values(), self.unknown_card):
            card.set_heatmap(on)

    def results(self) -> list[EyeResult]:
        """The results on show (the current photograph of each eye, then those of unknown side)."""
        return [c.shown.result for c in self.cards.values() if c.shown is not None] + \
            [u.result for u in self.unknown]

    @property
    def complete(self) -> bool:
        """Both eyes graded, or the missing one's reason recorded (the rule's word)."""
        if self.summary is not None:
            return self.summary.complete
        return encounter_decision(self.results()).complete

    # ------------------------------------------------------------------ the decision

    def _update_decision(self) -> None:
        results = self.results()
        self.heatmap_box.setEnabled(any(c.has_heatmap for c in (*self.cards.values(), self.unknown_card)))
        self.slip_button.setEnabled(self.summary is not None)
        if not results and self.summary is None:
            self.banner.setText("Ready: capture or open the photographs of both eyes")
            self.detail.setText("Right eye: F5   ·   Left eye: F6   ·   Open files: Ctrl+O   ·   Next patient: Ctrl+N"
                                "   ·   Help: F1")
            _set_queue_property(self.banner, None)
            return
        protocol = get_protocol(self.summary.protocol_name if self.summary else self.protocol_name)
        if self.summary is not None:
            s = self.summary
            queue, due, action, note = s.queue, s.due_date, s.action, s.queue_note
            who = f"{s.patient.name} ({s.patient.patient_id})" if s.patient.name else s.patient.patient_id
        else:
            decision = encounter_decision(results)
            queue, note, who = decision.queue, decision.note, ""
            due, action = protocol.due_date(queue, dt.date.today()), protocol.action(queue)
        self.banner.setText(self._headline(queue, action, note))
        _set_queue_property(self.banner, queue)
        self.detail.setText(self._detail(queue, due, who))

    def _headline(self, queue: Queue, action: str, note: str) -> str:
        if self.summary is not None and self.summary.overridden:
            return f"{HEADLINES[queue]}: changed by a clinician"
        if note in (OTHER_EYE_NOT_PHOTOGRAPHED, SIDE_NOT_KNOWN) and all(r.status is Status.OK for r in self.results()):
            if queue is Queue.REVIEW:          # only the missing eye keeps the patient from a verdict
                return ("NOT FINISHED: SAY WHICH EYE EACH PHOTOGRAPH SHOWS" if note == SIDE_NOT_KNOWN else
                        f"NOT FINISHED: THE {' AND '.join(self._missing_sides()).upper()} IS STILL NEEDED")
        if queue is Queue.REVIEW and _in_person(note) and all(r.status is Status.OK for r in self.results()):
            return f"{HEADLINES[queue]}: {note}"     # the unexamined eye is what keeps the patient in review
        return f"{HEADLINES[queue]}: {action}"

    def unfinished_warning(self) -> str:
        """The one warning before leaving a visit that is not finished, in the words
        of the banner and the queue: review only when the rule says review (a
        referable photographed eye refers whatever the other eye)."""
        missing = " and the ".join(self._missing_sides())
        if not missing:
            return ("The side of a photograph is not known, so this visit is not finished. Say which eye it shows "
                    "(the buttons under it).")
        queue = self.summary.queue if self.summary is not None else encounter_decision(self.results()).queue
        todo = "Photograph it now, or record why it cannot be photographed (the button under the empty eye)."
        if queue is Queue.REVIEW:
            return (f"The {missing} has no photograph and no recorded reason, so this patient stays in review "
                    f"({HEADLINES[queue]}). {todo}")
        return (f"{HEADLINES[queue]} stands: the photographed eye refers this patient whatever the other eye "
                f"shows. But the {missing} has no photograph and no recorded reason, so the visit is not "
                f"finished. {todo}")

    def _missing_sides(self) -> list[str]:
        recorded = {m.eye for m in self.summary.missing_eyes} if self.summary else set()
        return [e.label for e, c in self.cards.items() if c.shown is None and e not in recorded]

    def _detail(self, queue: Queue, due: dt.date, who: str) -> str:
        when = "today" if due <= dt.date.today() else f"by {due:%A %d %B %Y}"
        text = f"{who}: " if who else ""
        text += f"see {when}." if queue is not Queue.ANNUAL else f"next screening {when}."
        s = self.summary
        if s is not None and s.overridden:
            was = f" from {s.computed_queue.label}" if s.computed_queue else ""
            text += f"\nQueue changed by a clinician{was} to {queue.label}. Reason: {s.override_reason}"
        retake = [c.shown.result.eye.label for c in self.cards.values()
                  if c.shown is not None and c.shown.result.status is not Status.OK]
        if retake and not (s is not None and s.overridden):
            text += f"\nRetake the photograph of the {' and '.join(retake)}."
        if self.unknown:
            text += "\nSay which eye the photograph of unknown side shows (buttons under it)."
        if missing := self._missing_sides():
            text += (f"\nStill to photograph: {' and '.join(missing)} (or record why it cannot be photographed)."
                     if not self.complete else "")
        if s is not None and s.missing_eyes:
            text += "\n" + "; ".join(f"{m.eye.label.capitalize()} not photographed: {m.words}" for m in s.missing_eyes)
        if s is not None and not s.overridden and _in_person(s.queue_note) and queue is not Queue.REVIEW:
            text += f"\n{s.queue_note[:1].upper()}{s.queue_note[1:]}."
        return text

    def _slip(self) -> None:
        if self.summary is not None:
            self.slipRequested.emit(self.summary.encounter_id)
