"""Live camera preview and the two capture buttons (right eye, left eye).

OpenCV reads the camera on its own thread (:class:`CameraThread`) and sends
each frame to the window as a ``QImage``; the window only paints it. Capturing
waits for the first frame that arrives *after* the button was pressed and hands
it on (``captured``) to be kept as a file and screened by the worker, so a
camera that stopped sending can never pass off an old picture (another
patient's eye) as a new one. The frame buffer is cleared when the camera fails
and when the patient changes. Devices 0-3 are probed on a background thread
and only those that open are listed; a video file or stream URL works as a
camera too: that is how the tests, and a camera that streams over the network,
drive it. Nothing here uses QtMultimedia.
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from PySide6.QtCore import QSize, Qt, QThread, QTimer, Signal, Slot
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
CAPTURE_WAIT_MS = 3000   # longest wait for a frame newer than the capture request
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

    def __init__(self, source: int | str, parent: QWidget | None = None, loop_files: bool = True):
        super().__init__(parent)
        self.source = source
        self.loop_files = loop_files
        self._lock = threading.Lock()
        self._latest: np.ndarray | None = None
        self._number = 0          # frames received so far: a capture wants a higher one

    def latest_frame(self) -> np.ndarray | None:
        """A copy of the newest frame (RGB uint8), or None before the first."""
        return self.numbered_frame()[1]

    def numbered_frame(self) -> tuple[int, np.ndarray | None]:
        """(how many frames have arrived, a copy of the newest one or None)."""
        with self._lock:
            return self._number, None if self._latest is None else self._latest.copy()

    def frame_number(self) -> int:
        """How many frames have arrived so far."""
        with self._lock:
            return self._number

    def clear(self) -> None:
        """Forget the newest frame: nothing can be captured until a new one arrives."""
        with self._lock:
            self._latest = None

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
                if is_file and self.loop_files and misses == 1:
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
            self._number += 1
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


def probe_cameras(indices: tuple[int, ...] = CAMERA_INDICES) -> list[int]:
    """The camera indices that open and give a picture (slow for a missing device:
    run it off the GUI thread)."""
    found = []
    for index in indices:
        if sys.platform.startswith("linux") and not Path(f"/dev/video{index}").exists():
            continue   # no device node: nothing to open (and no OpenCV warning)
        capture = cv2.VideoCapture(index)
        try:
            if capture.isOpened() and capture.read()[0]:
                found.append(index)
        finally:
            capture.release()
    return found


class CapturePanel(QGroupBox):
    """Camera chooser, live preview and the capture buttons.

    ``captured(rgb, eye)`` carries the first frame that arrived after a capture
    was asked for; ``sourceChanged(text)`` the chosen source (to remember it);
    ``problem(message)`` what went wrong; ``cameraFailed(message)`` the chosen
    camera failed (not to be reopened at the next start); ``liveChanged(bool)``
    whether capturing is possible now (the window's F5/F6 follow it).

    ``before_capture(eye) -> bool`` (set by the window) may refuse a capture,
    e.g. while no patient is entered. ``probe`` lists the cameras that open
    (default :func:`probe_cameras`, run in the background; None: list none)."""

    captured = Signal(object, object)   # np.ndarray RGB, Eye
    sourceChanged = Signal(str)
    problem = Signal(str)
    cameraFailed = Signal(str)
    liveChanged = Signal(bool)

    def __init__(self, parent: QWidget | None = None, loop_files: bool = True,
                 probe: Callable[[], list[int]] | None = probe_cameras):
        super().__init__("Camera", parent)
        self.thread: CameraThread | None = None
        self.source_text = ""
        self.frames_shown = 0
        self.loop_files = loop_files
        self.cameras: list[int] | None = None     # None: still looking
        self.before_capture: Callable[[Eye], bool] | None = None
        self._waiting: list[tuple[Eye, int]] = []  # captures asked for, with the frame number at the time
        self._wait_timer = QTimer(self, singleShot=True, interval=CAPTURE_WAIT_MS)
        self._wait_timer.timeout.connect(self._capture_timed_out)
        self._live = False
        self.chooser = QComboBox()
        self.preview = QLabel("No camera chosen.\nChoose one above, or open photographs (Ctrl+O).")
        self.capture_right = QPushButton(icon("eye-right"), "Capture\nright eye")
        self.capture_left = QPushButton(icon("eye-left"), "Capture\nleft eye")
        self._build()
        if probe is None:
            self.set_cameras([])
        else:
            from .worker import run_in_background
            run_in_background(probe, self.set_cameras, lambda _message: self.set_cameras([]))

    def _build(self) -> None:
        self._fill_chooser()
        # the longest entry ("No camera found: plug one in…") must not set the panel's width
        self.chooser.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.chooser.setMinimumContentsLength(16)
        self.chooser.activated.connect(self._chosen)
        self.preview.setObjectName("preview")
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setMinimumSize(QSize(240, 150))   # fits the left column of a 1024x700 screen
        self.preview.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.preview.setWordWrap(True)
        buttons = QHBoxLayout()
        for button, eye, key in ((self.capture_right, Eye.RIGHT, "F5"), (self.capture_left, Eye.LEFT, "F6")):
            button.setObjectName("captureButton")
            button.setIconSize(QSize(28, 28))
            button.setToolTip(f"Take the next picture from the camera and grade it ({key})")
            button.clicked.connect(lambda _checked=False, e=eye: self.capture(e))
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.chooser)
        layout.addWidget(self.preview, 1)
        layout.addLayout(buttons)
        self._update_buttons()

    # ------------------------------------------------------------------ sources

    def _fill_chooser(self) -> None:
        """The chooser: the cameras found (or why there are none), then "other"."""
        self.chooser.clear()
        self.chooser.addItem("Choose a camera…", "")
        if self.cameras is None:
            self._add_note("Looking for cameras…")
        elif not self.cameras:
            self._add_note("No camera found: plug one in and restart EyeScreen, or use a video file or stream")
        for index in self.cameras or ():
            self.chooser.addItem(icon("camera"), f"Camera {index + 1}", str(index))
        self.chooser.addItem(icon("folder"), "Video file or stream URL…", OTHER_SOURCE)

    def _add_note(self, text: str) -> None:
        self.chooser.addItem(text, None)
        item = self.chooser.model().item(self.chooser.count() - 1)
        item.setEnabled(False)

    @Slot(object)
    def set_cameras(self, indices: list[int]) -> None:
        """The cameras that opened when probed: only those are offered."""
        self.cameras = list(indices)
        self._fill_chooser()
        self._select_current()

    def _chosen(self, index: int) -> None:
        data = self.chooser.itemData(index)
        if data is None:
            self._select_current()
            return
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
        self.sourceChanged.emit(self.source_text)
        if not self.source_text:
            self._show_text("No camera chosen.\nChoose one above, or open photographs (Ctrl+O).")
            return
        source = parse_source(self.source_text)
        self._show_text(f"Connecting to {describe_source(source)}…")
        self.thread = CameraThread(source, self, loop_files=self.loop_files)
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
        self.frames_shown = 0
        self._drop_waiting()
        if thread is not None:
            thread.frameReady.disconnect(self._show_frame)
            thread.failed.disconnect(self._failed)
            thread.requestInterruption()
            if not thread.wait(5000):
                log.error("camera thread did not stop")
            thread.clear()
            thread.deleteLater()
        self._update_buttons()

    # ------------------------------------------------------------------ frames

    @Slot(QImage)
    def _show_frame(self, image: QImage) -> None:
        if self.thread is None or self.sender() is not self.thread:
            return   # a frame still queued from a camera since stopped
        self.frames_shown += 1
        size = self.preview.contentsRect().size()
        ratio = self.preview.devicePixelRatioF()
        pixmap = QPixmap.fromImage(image).scaled(size * ratio, Qt.AspectRatioMode.KeepAspectRatio,
                                                 Qt.TransformationMode.SmoothTransformation)
        pixmap.setDevicePixelRatio(ratio)
        self.preview.setPixmap(pixmap)
        if self.frames_shown == 1:
            self._update_buttons()
        self._deliver()

    @Slot(str)
    def _failed(self, message: str) -> None:
        if self.thread is None or self.sender() is not self.thread:
            return
        self.stop()            # the frame buffer goes with the thread: no stale picture can be captured
        self._show_text(message)
        self.problem.emit(message)
        self.cameraFailed.emit(message)

    def _show_text(self, text: str) -> None:
        self.preview.clear()
        self.preview.setText(text)

    def latest_frame(self) -> np.ndarray | None:
        """The newest frame (RGB), or None when no picture has arrived."""
        return self.thread.latest_frame() if self.thread is not None else None

    def clear_frames(self) -> None:
        """Forget the newest frame and any capture not yet taken (next patient):
        only a picture taken from now on can be captured."""
        self._drop_waiting()
        if self.thread is not None:
            self.thread.clear()

    @property
    def live(self) -> bool:
        """True while the camera sends pictures: capturing is possible."""
        return self.thread is not None and self.thread.isRunning() and self.frames_shown > 0

    def capture(self, eye: Eye) -> bool:
        """Ask for the next frame as ``eye``: it is handed on (``captured``) as soon
        as a frame newer than this request arrives. False (and ``problem``) when
        the camera is not live or the window refuses (``before_capture``)."""
        if not self.live:
            self.problem.emit("There is no live camera picture to capture: choose a camera first, "
                              "or open photographs (Ctrl+O)")
            return False
        if self.before_capture is not None and not self.before_capture(Eye(eye)):
            return False
        assert self.thread is not None
        self._waiting.append((Eye(eye), self.thread.frame_number()))
        self._wait_timer.start()
        return True

    def _deliver(self) -> None:
        """Hand on the captures waiting for a frame newer than their request."""
        if not self._waiting or self.thread is None:
            return
        number, frame = self.thread.numbered_frame()
        if frame is None:
            return
        ready = [eye for eye, asked in self._waiting if number > asked]
        self._waiting = [(eye, asked) for eye, asked in self._waiting if number <= asked]
        if not self._waiting:
            self._wait_timer.stop()
        for eye in ready:
            self.captured.emit(frame, eye)

    def _capture_timed_out(self) -> None:
        if self._waiting:
            self._waiting.clear()
            self.problem.emit(f"The camera sent no new picture within {CAPTURE_WAIT_MS // 1000} s: nothing was "
                              "captured. Check the camera, then capture again.")

    def _drop_waiting(self) -> None:
        self._waiting.clear()
        self._wait_timer.stop()

    def _update_buttons(self) -> None:
        live = self.live
        for button in (self.capture_right, self.capture_left):
            button.setEnabled(live)
        if live != self._live:
            self._live = live
            self.liveChanged.emit(live)
