"""The "Eye check" mode: a photograph of the front of the eye, or a selfie.

Live camera preview with a framing guide (an oval for a face, an almond for
one eye), a capture button and "Open photograph…", then the verdict in the
course's own words ("Your eye looks healthy" / "Go for an eye check-up") with
the finding in words, the probability and the heat map on each eye crop, and
"Print slip" for the eye-check result slip.

The camera code is the capture panel's (:class:`EyeCameraPanel` subclasses
:class:`CapturePanel`: same chooser, thread and preview, one capture button,
the guide painted on each frame). The external-eye model lives in one worker
thread (:class:`EyeCheckEngine`), like the grading model: the window posts a
picture and receives a ``PhotoCheck`` through queued signals, never blocking.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PySide6.QtCore import QObject, QRectF, Qt, QThread, Signal, Slot
from PySide6.QtGui import QColor, QImage, QPainter, QPainterPath, QPen, QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from ..core.external_eye import ExternalEyeModel, EyeCheck, PhotoCheck, check_photo
from ..core.imageio import ImageReadError, read_image
from ..core.records import Eye, Queue
from .capture_panel import CapturePanel
from .resources import icon
from .result_view import PhotoLabel, _set_queue_property, overlay_heatmap

log = logging.getLogger(__name__)

GUIDES = ("face", "eye")
CROP_SIDE = 240        # the largest an eye is shown (logical px)
CROP_MIN = 120         # the smallest, when the window is narrow
MAX_CROP_ZOOM = 3      # an eye is never magnified more than this: a 43-px eye blown up to 240 px is a smear
PHOTO_FILTER = "Photographs (*.jpg *.jpeg *.png *.bmp *.tif *.tiff *.webp);;All files (*)"


def draw_guide(image: QImage, guide: str) -> QImage:
    """A copy of ``image`` with the framing guide: an oval where a face should sit,
    or an almond for one eye filling most of the picture."""
    out = image.copy()
    w, h = out.width(), out.height()
    painter = QPainter(out)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(QPen(QColor(255, 255, 255, 220), max(2, w // 200), Qt.PenStyle.DashLine))
    if guide == "face":
        painter.drawEllipse(QRectF(w * 0.32, h * 0.12, w * 0.36, h * 0.76))
        for x in (0.43, 0.57):                       # where the eyes go
            painter.drawLine(int(w * (x - 0.04)), int(h * 0.42), int(w * (x + 0.04)), int(h * 0.42))
    else:
        path = QPainterPath()
        path.moveTo(w * 0.15, h * 0.5)
        path.quadTo(w * 0.5, h * 0.05, w * 0.85, h * 0.5)
        path.quadTo(w * 0.5, h * 0.95, w * 0.15, h * 0.5)
        painter.drawPath(path)
        painter.drawEllipse(QRectF(w * 0.42, h * 0.5 - w * 0.08, w * 0.16, w * 0.16))
    painter.end()
    return out


class EyeCameraPanel(CapturePanel):
    """The capture panel's camera with one "Capture and check" button and a framing guide."""

    checkRequested = Signal(object)     # np.ndarray RGB

    def __init__(self, parent: QWidget | None = None, **kwargs: Any):
        self.guide = "face"
        self.capture_check = QPushButton(icon("camera"), "Capture and check (F7)")
        super().__init__(parent, **kwargs)
        self.setTitle("Eye check camera")
        for button in (self.capture_right, self.capture_left):
            button.hide()
        self.capture_check.setObjectName("captureButton")
        self.capture_check.setToolTip("Take the picture now and check the eye (F7)")
        self.capture_check.setShortcut("F7")
        self.capture_check.clicked.connect(self.capture_and_check)
        self.captured.connect(lambda rgb, _eye: self.checkRequested.emit(rgb))
        self.layout().addWidget(self.capture_check)
        self._update_buttons()

    def set_guide(self, guide: str) -> None:
        """``face`` or ``eye``: which framing guide the preview shows."""
        self.guide = guide if guide in GUIDES else "face"

    def open_source(self, text: str) -> None:
        """The capture panel's camera, plus the guide painted on each shown frame."""
        super().open_source(text)
        if self.thread is not None:
            self.thread.frameReady.connect(self._paint_guide)   # after the panel has shown the frame

    @Slot(QImage)
    def _paint_guide(self, _image: QImage) -> None:
        pixmap = self.preview.pixmap()
        if pixmap is None or pixmap.isNull():
            return
        ratio = pixmap.devicePixelRatio()
        guided = QPixmap.fromImage(draw_guide(pixmap.toImage(), self.guide))
        guided.setDevicePixelRatio(ratio)
        self.preview.setPixmap(guided)

    def capture_and_check(self) -> bool:
        """Capture the way the capture panel does (its ``captured`` frame goes on to
        ``checkRequested``; the guide is only painted on the preview, not on the frame)."""
        return self.capture(Eye.UNKNOWN)

    def _update_buttons(self) -> None:
        super()._update_buttons()
        if hasattr(self, "capture_check"):
            self.capture_check.setEnabled(self.thread is not None and self.frames_shown > 0)


class _EyeCheckWorker(QObject):
    """Owns the external-eye model on its thread; catches every exception."""

    ready = Signal(object)              # ModelInfo
    loadFailed = Signal(str)
    checked = Signal(int, object, object)   # request id, PhotoCheck, RGB
    failed = Signal(int, str)

    def __init__(self, modality_of: Callable[[np.ndarray], str | None] | None = None):
        super().__init__()
        self.model: ExternalEyeModel | None = None
        self.modality_of = modality_of

    @Slot(str)
    def load(self, path: str) -> None:
        try:
            self.model = ExternalEyeModel.load(Path(path))
            self.ready.emit(self.model.info)
        except Exception as exc:  # noqa: BLE001 - shown to staff, logged
            log.exception("external-eye model %s failed to load", path)
            self.loadFailed.emit(f"The eye-check model could not be loaded: {exc}")

    @Slot(int, object)
    def check(self, request_id: int, rgb: np.ndarray) -> None:
        try:
            if self.model is None:
                raise RuntimeError("the eye-check model is not loaded yet: wait a moment and retry")
            modality = self.modality_of(rgb) if self.modality_of else None
            self.checked.emit(request_id, check_photo(rgb, self.model, modality), rgb)
        except Exception as exc:  # noqa: BLE001 - any failure here is logged or reported, and must not stop the rest
            log.exception("eye check %d failed", request_id)
            self.failed.emit(request_id, f"The eye check failed: {exc}")


class EyeCheckEngine(QObject):
    """The window's handle on the eye-check worker thread."""

    ready = Signal(object)
    loadFailed = Signal(str)
    checked = Signal(int, object, object)
    failed = Signal(int, str)
    _load = Signal(str)
    _check = Signal(int, object)

    def __init__(self, parent: QObject | None = None,
                 modality_of: Callable[[np.ndarray], str | None] | None = None):
        super().__init__(parent)
        self._ids = itertools.count(1)
        self.thread = QThread()
        self.thread.setObjectName("eyescreen-eye-check")
        self.worker = _EyeCheckWorker(modality_of)
        self.worker.moveToThread(self.thread)
        self._load.connect(self.worker.load)
        self._check.connect(self.worker.check)
        for name in ("ready", "loadFailed", "checked", "failed"):
            getattr(self.worker, name).connect(getattr(self, name))
        self.thread.finished.connect(self.worker.deleteLater)

    def start(self, model_path: Path | str) -> None:
        """Start the thread and load the model there (returns at once)."""
        self.thread.start()
        self._load.emit(str(model_path))

    def check(self, rgb: np.ndarray) -> int:
        """Check a picture; returns the request ID that comes back with ``checked``."""
        rid = next(self._ids)
        self._check.emit(rid, np.array(rgb, copy=True))
        return rid

    def stop(self, timeout_ms: int = 30_000) -> bool:
        self.thread.quit()
        return self.thread.wait(timeout_ms)


def eye_picture(check: EyeCheck, photo: np.ndarray | None) -> np.ndarray | None:
    """The eye to show, cut from the photograph itself (its own pixels, resampled once
    for the screen) with the heat map mapped back onto it; the model's square input
    (``check.crop``, a 43-px selfie eye upscaled 5x with cubic interpolation) only when
    the photograph is not at hand. Showing that input enlarged again was what made a
    selfie's eyes look smeared and streaky."""
    box = check.box
    region = None if photo is None else np.ascontiguousarray(photo[box.y:box.y + box.h, box.x:box.x + box.w, :3])
    if region is None or region.size == 0:
        region = check.crop
        heat = check.heatmap
    else:
        heat = None if check.heatmap is None else _heat_on_box(check.heatmap, box.w, box.h)
    if region is None:
        return None
    shown = check.heatmap is not None and check.checkup   # evidence of a finding: shown for a check-up
    return overlay_heatmap(region, heat) if shown and heat is not None else region


def _heat_on_box(heatmap: np.ndarray, w: int, h: int) -> np.ndarray:
    """The model's heat map (over the eye padded to a square, ``square_eye``) on the unpadded box."""
    import cv2

    side = max(w, h)
    top, left = (side - h) // 2, (side - w) // 2
    square = cv2.resize(np.asarray(heatmap, np.float32), (side, side), interpolation=cv2.INTER_LINEAR)
    return square[top:top + h, left:left + w]


def eye_display_side(picture: np.ndarray) -> int:
    """Logical pixels the eye is shown at: up to :data:`CROP_SIDE`, magnified at most
    :data:`MAX_CROP_ZOOM` times (a small eye stays small rather than smeared)."""
    return int(min(CROP_SIDE, MAX_CROP_ZOOM * max(picture.shape[:2])))


class EyeResultCard(QFrame):
    """One eye: the crop with its heat map, the verdict, finding and probability, or the message."""

    def __init__(self, check: EyeCheck, parent: QWidget | None = None, photo: np.ndarray | None = None):
        super().__init__(parent)
        self.setObjectName("eyeCard")
        self.check = check
        title = QLabel(f"<b>{check.box.label.capitalize()}</b>")
        self.picture = PhotoLabel()   # fits the room it is given: two eyes side by side on a 1024-px screen
        self.picture.setMinimumSize(CROP_MIN, CROP_MIN)
        self.picture.setObjectName("eyeCrop")
        title.setObjectName("eyeTitle")
        self.verdict = QLabel(check.verdict or "No verdict")
        self.verdict.setObjectName("eyeVerdict")
        _set_queue_property(self.verdict, None if check.checkup is None else
                            Queue.ROUTINE if check.checkup else Queue.ANNUAL)
        self.verdict.setWordWrap(True)
        self.detail = QLabel(self._detail())
        self.detail.setWordWrap(True)
        layout = QVBoxLayout(self)
        self.small = QLabel(wordWrap=True, visible=False)
        self.small.setObjectName("hint")
        layout.addWidget(title)
        layout.addWidget(self.picture, 0, Qt.AlignmentFlag.AlignHCenter)
        for widget in (self.verdict, self.detail, self.small):
            layout.addWidget(widget)
        layout.addStretch(1)
        picture = eye_picture(check, photo) if check.crop is not None else None
        if picture is not None:
            side = eye_display_side(picture)
            self.picture.setMinimumSize(min(CROP_MIN, side), min(CROP_MIN, side))
            self.picture.setMaximumSize(side, side)
            self.picture.set_rgb(picture)
            if max(picture.shape[:2]) * MAX_CROP_ZOOM < CROP_SIDE:
                self.small.setText(f"This eye is only {max(picture.shape[:2])} px wide in the photograph: "
                                   "come closer to the camera for a sharper check.")
                self.small.setVisible(True)

    def _detail(self) -> str:
        c = self.check
        if not c.checked:
            return c.message
        heat = " Heat map: where the network saw signs of a finding." if c.checkup else ""
        from ..core.reports.layout import format_probability   # never "0%" or "100%", as on the slip

        chance = format_probability(c.p_checkup)
        return f"{c.finding.capitalize()}. Probability that a check-up is needed: {chance}.{heat}"


class EyeCheckPanel(QWidget):
    """The eye-check mode: camera with guide, the verdict per eye, print the slip.

    ``slipRequested(PhotoCheck, rgb)`` asks the window to print the eye-check slip."""

    slipRequested = Signal(object, object)
    problem = Signal(str)

    def __init__(self, engine: EyeCheckEngine, parent: QWidget | None = None, **camera_options: Any):
        super().__init__(parent)
        self.engine = engine
        self.last: tuple[PhotoCheck, np.ndarray] | None = None
        self.pending: int | None = None
        self.settings: Any = None   # the window's Settings: the open dialog starts in the last folder
        self._opening = 0     # the latest photograph file being read in the background
        self.camera = EyeCameraPanel(**camera_options)
        self.headline = QLabel("Frame a face or one eye, then capture; or open a photograph.")
        self.headline.setObjectName("decisionBanner")
        self.headline.setWordWrap(True)
        self.eyes = QHBoxLayout()
        self.open_button = QPushButton(icon("folder"), "Open photograph…")
        self.print_button = QPushButton(icon("print"), "Print slip")
        self._build()
        engine.checked.connect(self._on_checked)
        engine.failed.connect(self._on_failed)
        self.camera.checkRequested.connect(self.check_image)
        self.camera.problem.connect(self._show_problem)

    def _build(self) -> None:
        self.eyes.setAlignment(Qt.AlignmentFlag.AlignTop)
        guides = QHBoxLayout()
        group = QButtonGroup(self)
        for name, text in (("face", "Guide: face (selfie)"), ("eye", "Guide: one eye (close-up)")):
            radio = QRadioButton(text)
            radio.setChecked(name == "face")
            radio.toggled.connect(lambda on, n=name: on and self.camera.set_guide(n))
            group.addButton(radio)
            guides.addWidget(radio)
        left = QVBoxLayout()
        left.addLayout(guides)
        left.addWidget(self.camera, 1)
        self.open_button.clicked.connect(self._open)
        self.print_button.clicked.connect(self._print)
        self.print_button.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.print_button)
        right = QVBoxLayout()
        right.addWidget(self.headline)
        holder = QWidget()
        holder.setLayout(self.eyes)
        self.eyes_area = QScrollArea()   # a short screen scrolls the eyes; their words never overlap
        self.eyes_area.setWidget(holder)
        self.eyes_area.setWidgetResizable(True)
        self.eyes_area.setFrameShape(QFrame.Shape.NoFrame)
        self.eyes_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        right.addWidget(self.eyes_area, 1)
        note = QLabel("Research and demonstration only: the model learnt from web pictures. "
                      "\"Looks healthy\" is not a diabetic-retinopathy screen.")
        note.setWordWrap(True)
        note.setObjectName("note")
        right.addWidget(note)
        right.addLayout(buttons)
        grid = QGridLayout(self)
        grid.addLayout(left, 0, 0)
        grid.addLayout(right, 0, 1)
        grid.setColumnStretch(0, 1)   # the verdict and both eyes get half: on a 1024-px screen they need it
        grid.setColumnStretch(1, 1)

    # ------------------------------------------------------------------ requests

    @Slot(object)
    def check_image(self, rgb: np.ndarray) -> int:
        """Check a picture (camera frame or file) on the worker."""
        self.headline.setText("Checking…")
        self._opening += 1   # a file still being read was superseded by this picture
        self.pending = self.engine.check(rgb)
        return self.pending

    def open_file(self, path: Path) -> None:
        """Read a photograph and check it; a clear message when it cannot be read.
        A camera file takes a while to decode: that happens on the background
        helper, and the picture opened last is the one checked."""
        from .worker import run_in_background

        self.headline.setText("Opening the photograph…")
        self._opening += 1
        ticket = self._opening

        def read() -> tuple[int, Any]:
            try:
                return ticket, read_image(Path(path))
            except ImageReadError as exc:
                return ticket, str(exc)

        run_in_background(read, self._file_read, self._show_problem)

    @Slot(object)
    def _file_read(self, read: tuple[int, Any]) -> None:
        ticket, rgb = read
        if ticket != self._opening:
            return   # another photograph was opened meanwhile
        if isinstance(rgb, str):
            self._show_problem(rgb)
        else:
            self.check_image(rgb)

    def _open(self) -> None:
        start = self.settings.last_folder if self.settings is not None else ""
        path, _ = QFileDialog.getOpenFileName(self, "Open a photograph of the eye or a selfie", start, PHOTO_FILTER)
        if path:
            if self.settings is not None:
                self.settings.last_folder = str(Path(path).parent)
            self.open_file(Path(path))

    def _print(self) -> None:
        if self.last is not None:
            self.slipRequested.emit(*self.last)

    # ------------------------------------------------------------------ results

    @Slot(int, object, object)
    def _on_checked(self, request_id: int, check: PhotoCheck, rgb: np.ndarray) -> None:
        if request_id != self.pending:
            return
        self.show_check(check, rgb)

    def show_check(self, check: PhotoCheck, rgb: Any = None) -> None:
        """Show a finished check: headline, one card per eye."""
        while self.eyes.count():
            item = self.eyes.takeAt(0)
            if item.widget():
                item.widget().deleteLater()
        verdict = check.checkup
        self.headline.setText(check.message if verdict is None and check.message else
                              "No verdict: see the message below" if verdict is None else
                              "Go for an eye check-up" if verdict else "Your eye looks healthy")
        _set_queue_property(self.headline, None if verdict is None else Queue.ROUTINE if verdict else Queue.ANNUAL)
        photo = rgb if isinstance(rgb, np.ndarray) else None
        for eye in check.eyes:
            self.eyes.addWidget(EyeResultCard(eye, photo=photo))
        self.last = (check, rgb) if verdict is not None else None
        self.print_button.setEnabled(verdict is not None)

    @Slot(int, str)
    def _on_failed(self, request_id: int, message: str) -> None:
        if request_id == self.pending:
            self._show_problem(message)

    def _show_problem(self, message: str) -> None:
        self.headline.setText(message)
        _set_queue_property(self.headline, Queue.REVIEW)
        self.problem.emit(message)

    def stop(self) -> None:
        """Stop the camera (the window stops the engine)."""
        self.camera.stop()


def eye_of(box_side: str) -> Eye:
    """The record's laterality for an eye box ("R", "L", "?")."""
    return {"R": Eye.RIGHT, "L": Eye.LEFT}.get(box_side, Eye.UNKNOWN)


def _gate_modality(rgb: np.ndarray) -> str | None:
    """The learned gate's word for a picture (None without the gate): a fundus
    photograph is refused by the eye check, a close-up is taken whole."""
    from ..core.screening import default_gate

    gate = default_gate()
    return gate.modality(rgb).label if gate is not None else None


class EyeCheckMode(QObject):
    """The "Eye check" tab of the main window, kept out of the window's own module:
    the engine, the panel (next to fundus screening), the slip, start and shutdown.

    The window needs four lines: ``EyeCheckMode(self)``, its ``panel`` among the
    window's tabs (next to Screening), ``.start()`` with the grader, ``.shutdown()``
    with the camera."""

    slipWritten = Signal(object)    # Path of the eye-check slip just written

    def __init__(self, window: Any):
        super().__init__(window)
        self.window = window
        self.engine = EyeCheckEngine(self, modality_of=_gate_modality)
        self.panel = EyeCheckPanel(self.engine, probe=None)   # the window's capture panel probes once
        self.panel.settings = window.settings
        window.tabs.currentChanged.connect(self._tab_changed)
        self.panel.slipRequested.connect(self.write_slip)
        self.panel.problem.connect(lambda text: window.statusBar().showMessage(text, 8000))
        self.engine.loadFailed.connect(lambda text: window.messages.warning("Eye check", text))

    def start(self) -> None:
        """Load the eye-check model on its own thread (the window is usable meanwhile)."""
        from ..core.external_eye import default_external_model_dir

        self.engine.start(default_external_model_dir())

    def _tab_changed(self, index: int) -> None:
        """Entering: offer the cameras the window found. Leaving: free the camera
        (one webcam cannot feed two previews)."""
        if self.window.tabs.widget(index) is self.panel:
            cameras = getattr(self.window.capture_panel, "cameras", None)
            if cameras is not None:
                self.panel.camera.set_cameras(cameras)
        else:
            self.panel.camera.stop()

    @Slot(object, object)
    def write_slip(self, check: PhotoCheck, _rgb: Any = None) -> Path:
        """The eye-check slip as a PDF under the reports folder, opened for printing
        (not when the window shows no dialogs: scripts and tests). The PDF is
        written on the background helper; ``slipWritten(path)`` fires once it is
        there. Returns the path it is written to."""
        import datetime as dt

        from .worker import run_in_background

        now = dt.datetime.now()
        path = Path(self.window.paths.reports) / f"eye-check-{now:%Y%m%d-%H%M%S}.pdf"
        model = self.engine.worker.model
        patient, settings = self.window.patient_panel.patient(), self.window.settings.slip_settings()

        def write() -> Path:
            from ..core.reports.eye_check import write_eye_check_slip

            write_eye_check_slip(check, path, patient, model.info if model else None, now, settings)
            return path

        run_in_background(write, self._slip_written,
                          lambda message: self.window.messages.error("Eye check slip not written", message))
        return path

    @Slot(object)
    def _slip_written(self, path: Path) -> None:
        from PySide6.QtCore import QUrl
        from PySide6.QtGui import QDesktopServices

        self.window.messages.info("Eye check slip", f"Saved {path.name} in {path.parent}")
        if self.window.messages.dialogs:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))
        self.slipWritten.emit(path)

    def shutdown(self) -> None:
        """Stop the camera and the engine's thread (idempotent)."""
        self.panel.stop()
        self.engine.stop()
