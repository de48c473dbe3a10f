"""Live camera preview and the two capture buttons (right eye, left eye).

OpenCV reads the camera on its own thread (:class:`CameraThread`) and sends
each frame to the window as a ``QImage``; the window only paints it. Capturing
takes the newest frame as RGB pixels and hands it on (``captured``) to be kept
as a file and screened by the worker. Devices 0-3 are opened only when chosen
(probing a missing camera can take seconds), and a video file or stream URL
works as a camera too: that is how the tests, and a camera that streams over
the network, drive it. Nothing here uses QtMultimedia.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import QSize, Qt, QThread, Signal, Slot
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from ..core.records import Eye
from .resources import icon

log = logging.getLogger(__name__)

CAMERA_INDICES = (0, 1, 2, 3)
OTHER_SOURCE = "other"
MAX_FPS = 30.0
VIDEO_SUFFIXES = "Video files (*.avi *.mp4 *.mkv *.mov *.mjpg *.mjpeg);;All files (*)"


def parse_source(text: str) -> int | str:
    """"2" -> camera index 2; anything else is a file path or stream URL."""
    text = text.strip()
    return int(text) if text.isdigit() else text


def describe_source(source: int | str) -> str:
    """Words for a source, as shown in messages."""
    return f"camera {source + 1}" if isinstance(source, int) else Path(str(source)).name or str(source)


class CameraThread(QThread):
    """Reads one OpenCV source until interrupted; ``frameReady(QImage)`` per frame.

    A video file is played at its own speed and starts again at its end, so it
    behaves like a live camera. ``failed(message)`` when the source cannot be
    opened or stops sending pictures."""

    frameReady = Signal(QImage)
    failed = Signal(str)

    def __init__(self, source: int | str, parent: QWidget | None = None):
        super().__init__(parent)
        self.source = source
        self._lock = threading.Lock()
        self._latest: np.ndarray | None = None

    def latest_frame(self) -> np.ndarray | None:
        """A copy of the newest frame (RGB uint8), or None before the first."""
        with self._lock:
            return None if self._latest is None else self._latest.copy()

    def run(self) -> None:
        capture = cv2.VideoCapture(self.source)
        try:
            if not capture.isOpened():
                self.failed.emit(f"{describe_source(self.source)} did not answer: check that it is plugged in "
                                 "and switched on, or choose another camera")
                return
            self._loop(capture)
        except Exception as exc:  # noqa: BLE001 - a camera fault must not end the app
            log.exception("camera %s failed", self.source)
            self.failed.emit(f"{describe_source(self.source)} stopped ({exc}): choose the camera again")
        finally:
            capture.release()

    def _loop(self, capture: cv2.VideoCapture) -> None:
        is_file = isinstance(self.source, str) and Path(self.source).is_file()
        fps = capture.get(cv2.CAP_PROP_FPS) if is_file else 0.0
        pause_ms = int(1000 / min(fps if fps > 0 else MAX_FPS, MAX_FPS))
        misses = 0
        while not self.isInterruptionRequested():
            ok, bgr = capture.read()
            if not ok or bgr is None:
                misses += 1
                if is_file and misses == 1:
                    capture.set(cv2.CAP_PROP_POS_FRAMES, 0)   # loop the video like a live camera
                    continue
                self.failed.emit(f"{describe_source(self.source)} stopped sending pictures: "
                                 "check the cable, then choose the camera again")
                return
            misses = 0
            self._publish(bgr)
            self.msleep(pause_ms)   # pace a file to its frame rate; a camera blocks in read() anyway

    def _publish(self, bgr: np.ndarray) -> None:
        rgb = np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if bgr.ndim == 3 else
                                   cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB))
        with self._lock:
            self._latest = rgb
        h, w = rgb.shape[:2]
        self.frameReady.emit(QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy())


class SourceDialog(QDialog):
    """Ask for a video file or a stream URL (rtsp://, http://)."""

    def __init__(self, current: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Video file or stream URL")
        self.edit = QLineEdit(current, placeholderText="e.g. rtsp://192.168.1.20/stream or a video file")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        row = QHBoxLayout()
        row.addWidget(self.edit, 1)
        row.addWidget(browse)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Where should EyeScreen read pictures from?"))
        layout.addLayout(row)
        layout.addWidget(buttons)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a video file", "", VIDEO_SUFFIXES)
        if path:
            self.edit.setText(path)

    def source(self) -> str:
        return self.edit.text().strip()


class CapturePanel(QGroupBox):
    """Camera chooser, live preview and the capture buttons.

    ``captured(rgb, eye)`` carries the newest frame when a capture button is
    pressed; ``sourceChanged(text)`` the chosen source (to remember it);
    ``problem(message)`` what went wrong with the camera."""

    captured = Signal(object, object)   # np.ndarray RGB, Eye
    sourceChanged = Signal(str)
    problem = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Camera", parent)
        self.thread: CameraThread | None = None
        self.source_text = ""
        self.frames_shown = 0
        self.chooser = QComboBox()
        self.preview = QLabel("No camera chosen.\nChoose one above, or open photographs (Ctrl+O).")
        self.capture_right = QPushButton(icon("eye-right"), "Capture\nright eye")
        self.capture_left = QPushButton(icon("eye-left"), "Capture\nleft eye")
        self._build()

    def _build(self) -> None:
        self.chooser.addItem("Choose a camera…", "")
        for index in CAMERA_INDICES:
            self.chooser.addItem(icon("camera"), f"Camera {index + 1}", str(index))
        self.chooser.addItem(icon("folder"), "Video file or stream URL…", OTHER_SOURCE)
        self.chooser.activated.connect(self._chosen)
        self.preview.setObjectName("preview")
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setMinimumSize(QSize(300, 200))
        self.preview.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.preview.setWordWrap(True)
        buttons = QHBoxLayout()
        for button, eye, key in ((self.capture_right, Eye.RIGHT, "F5"), (self.capture_left, Eye.LEFT, "F6")):
            button.setObjectName("captureButton")
            button.setIconSize(QSize(28, 28))
            button.setToolTip(f"Take the picture now and grade it ({key})")
            button.clicked.connect(lambda _checked=False, e=eye: self.capture(e))
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.chooser)
        layout.addWidget(self.preview, 1)
        layout.addLayout(buttons)
        self._update_buttons()

    # ------------------------------------------------------------------ sources

    def _chosen(self, index: int) -> None:
        data = self.chooser.itemData(index)
        if data == OTHER_SOURCE:
            dialog = SourceDialog("" if self.source_text.isdigit() else self.source_text, self)
            if dialog.exec() != QDialog.DialogCode.Accepted or not dialog.source():
                self._select_current()
                return
            data = dialog.source()
        self.open_source(data)

    def open_source(self, text: str) -> None:
        """Show pictures from a camera index ("0"-"3"), a video file or a stream URL
        ("" stops the camera)."""
        self.stop()
        self.source_text = text.strip()
        self._select_current()
        self.frames_shown = 0
        self.sourceChanged.emit(self.source_text)
        if not self.source_text:
            self._show_text("No camera chosen.\nChoose one above, or open photographs (Ctrl+O).")
            return
        source = parse_source(self.source_text)
        self._show_text(f"Connecting to {describe_source(source)}…")
        self.thread = CameraThread(source, self)
        self.thread.frameReady.connect(self._show_frame)
        self.thread.failed.connect(self._failed)
        self.thread.start()

    def _select_current(self) -> None:
        index = self.chooser.findData(self.source_text) if self.source_text else 0
        if index < 0:
            index = self.chooser.findData(OTHER_SOURCE)
        self.chooser.setCurrentIndex(index)

    def stop(self) -> None:
        """Stop the camera thread and wait for it (at most a few seconds)."""
        thread, self.thread = self.thread, None
        if thread is not None:
            thread.frameReady.disconnect(self._show_frame)
            thread.requestInterruption()
            if not thread.wait(5000):
                log.error("camera thread did not stop")
            thread.deleteLater()
        self._update_buttons()

    # ------------------------------------------------------------------ frames

    @Slot(QImage)
    def _show_frame(self, image: QImage) -> None:
        self.frames_shown += 1
        size = self.preview.contentsRect().size()
        ratio = self.preview.devicePixelRatioF()
        pixmap = QPixmap.fromImage(image).scaled(size * ratio, Qt.AspectRatioMode.KeepAspectRatio,
                                                 Qt.TransformationMode.SmoothTransformation)
        pixmap.setDevicePixelRatio(ratio)
        self.preview.setPixmap(pixmap)
        if self.frames_shown == 1:
            self._update_buttons()

    @Slot(str)
    def _failed(self, message: str) -> None:
        self._show_text(message)
        self.frames_shown = 0
        self._update_buttons()
        self.problem.emit(message)

    def _show_text(self, text: str) -> None:
        self.preview.clear()
        self.preview.setText(text)

    def latest_frame(self) -> np.ndarray | None:
        """The newest frame (RGB), or None when no picture has arrived."""
        return self.thread.latest_frame() if self.thread is not None else None

    def capture(self, eye: Eye) -> bool:
        """Take the newest frame for ``eye``; False (and ``problem``) when there is none."""
        frame = self.latest_frame()
        if frame is None:
            self.problem.emit("There is no camera picture to capture: choose a camera first, "
                              "or open photographs (Ctrl+O)")
            return False
        self.captured.emit(frame, Eye(eye))
        return True

    def _update_buttons(self) -> None:
        live = self.thread is not None and self.frames_shown > 0
        for button in (self.capture_right, self.capture_left):
            button.setEnabled(live)
