"""``eyescreen gui`` / ``eyescreen-desktop``: start the desktop window.

Start-up is ordered so the window is on screen within a second, whatever the
size of the clinic database: Qt, the stylesheet, the settings and the window
first, and the window is painted. Only then is the clinic database opened on
the background helper (SQLAlchemy and Alembic are imported there, the schema
upgraded, unqueued encounters repaired: :mod:`.opening_store`) while the worker
thread loads the model (ONNX Runtime, or TensorFlow, is imported there, never
on the GUI thread). Until each is ready the status bar says so; the queues
appear once the database is open.

Nothing fails silently: an exception nobody caught is logged and shown in a
crash dialog (the app keeps running), and Qt's own warnings go to the Python
log (qutebrowser's ``misc/crashsignal.py`` and ``utils/qtlog.py``). The log file
is ``<data folder>/logs/eyescreen.log``.
"""

from __future__ import annotations

import argparse
import gc
import logging
import logging.handlers
import os
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Callable

from PySide6.QtCore import QEvent, QMessageLogContext, QObject, Qt, QtMsgType, QTimer, qInstallMessageHandler
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QMessageBox

from ..core.paths import APP_NAME, DataPaths, data_paths, default_model_dir
from ..core.store.names import ENV_VAR as DATABASE_ENV_VAR
from ..core.store.names import IMAGE_STORE_VAR, add_database_argument
from .gc_collector import install_garbage_collector
from .main_window import MainWindow
from .messages import Messages
from .opening_store import OpeningStore
from .resources import icon, stylesheet
from .settings import Settings, open_settings

log = logging.getLogger(__name__)

LOG_FILE = "eyescreen.log"
_QT_LEVELS = {
    QtMsgType.QtDebugMsg: logging.DEBUG, QtMsgType.QtInfoMsg: logging.INFO,
    QtMsgType.QtWarningMsg: logging.WARNING, QtMsgType.QtCriticalMsg: logging.ERROR,
    QtMsgType.QtFatalMsg: logging.CRITICAL,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``eyescreen gui``."""
    parser.add_argument("--data-dir", type=Path, default=None, metavar="DIR",
                        help="keep the clinic database, images, logs and settings in DIR "
                             "(default: the user's data folder; use a new folder for demos)")
    add_database_argument(parser)
    parser.add_argument("--model", type=Path, default=None, metavar="FOLDER",
                        help="model folder (default: the one chosen in Settings, else models/eyescreen-dr)")
    parser.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)  # print start-up times, then quit


# ---------------------------------------------------------------------- logging and crashes


def qt_message_handler(mode: QtMsgType, context: QMessageLogContext, message: str) -> None:
    """Qt's warnings and errors go to the ``qt`` logger instead of stderr."""
    where = f" ({context.file}:{context.line})" if context.file else ""
    logging.getLogger("qt").log(_QT_LEVELS.get(mode, logging.WARNING), "%s%s", message, where)


def setup_logging(paths: DataPaths, verbose: bool = False) -> Path:
    """A rotating log file in the data folder (INFO and up); the console keeps
    showing warnings only unless ``-v``. Returns the log file path."""
    log_file = paths.logs / LOG_FILE
    handler = logging.handlers.RotatingFileHandler(log_file, maxBytes=2_000_000, backupCount=3, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for existing in root.handlers:
        if isinstance(existing, logging.StreamHandler) and existing.level == logging.NOTSET:
            existing.setLevel(logging.DEBUG if verbose else logging.WARNING)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    return log_file


def install_crash_handler(messages: Messages, log_file: Path | None = None) -> Callable[..., None]:
    """Route uncaught exceptions (GUI thread, Qt slots, other threads) to the log
    and the crash dialog; returns the hook. KeyboardInterrupt still quits."""

    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            QApplication.quit()
            return
        messages.crash(exc_type, exc, tb, str(log_file or ""))

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None:
            # never build widgets off the GUI thread: log here, show through the event loop
            log.critical("unexpected error in thread %s", getattr(args.thread, "name", "?"),
                         exc_info=(args.exc_type, args.exc_value, args.exc_traceback))
            QTimer.singleShot(0, messages, lambda: hook(args.exc_type, args.exc_value, args.exc_traceback))

    sys.excepthook = hook
    threading.excepthook = thread_hook
    return hook


# ---------------------------------------------------------------------- building the app


def make_application(argv: list[str] | None = None) -> QApplication:
    """The QApplication with EyeScreen's name, icon and stylesheet (reused if one exists)."""
    existing = QApplication.instance()
    if existing is None:
        # fractional scale factors (125 %, 150 %) as they are: SVG icons stay sharp
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        existing = QApplication(argv or [APP_NAME])
    app: QApplication = existing  # type: ignore[assignment]  # QApplication.instance() is typed as QCoreApplication; it is ours, a QApplication
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(APP_NAME)
    app.setApplicationDisplayName("EyeScreen")
    app.setWindowIcon(icon("app"))
    app.setStyleSheet(stylesheet())
    install_garbage_collector(app)   # cycles holding Qt objects are freed on this thread only
    return app


def resolve_paths(data_dir: Path | None, settings: Settings) -> DataPaths:
    """``--data-dir``, else the folder chosen in Settings, else the platform's."""
    return data_paths(data_dir or (settings.data_folder or None)).ensure()


def resolve_store(database: str | None, settings: Settings) -> tuple[str | None, str | None]:
    """(database URL, image folder) to open: ``--database``, else
    EYESCREEN_DATABASE_URL, else the clinic database chosen in Settings, else None
    (the data folder's SQLite file); EYESCREEN_IMAGE_STORE, else the shared image
    folder chosen in Settings, else None (images/ in the data folder)."""
    env_database = os.environ.get(DATABASE_ENV_VAR, "").strip()
    env_images = os.environ.get(IMAGE_STORE_VAR, "").strip()
    return (database or env_database or settings.database_url or None,
            env_images or settings.image_store or None)


def resolve_model(model: Path | None, settings: Settings) -> Path:
    """``--model``, else the folder chosen in Settings, else the shipped model."""
    return Path(model or settings.model_folder or default_model_dir())


def build_window(data_dir: Path | None, dialogs: bool = True) -> tuple[MainWindow, Any]:
    """The main window over the clinic database of ``data_dir`` (not shown, no model
    loading yet); returns (window, store). Tests and the screenshot script use it."""
    from ..core.store import ClinicStore

    settings, window_state = open_settings(data_dir)
    paths = resolve_paths(data_dir, settings)
    store = ClinicStore.open(paths)
    return MainWindow(settings, window_state, store, paths, dialogs=dialogs), store


def open_store(paths: DataPaths, database: str | None, image_store: str | None) -> Any:
    """The clinic database, opened (created or upgraded): run on the background helper."""
    from ..core.store import ClinicStore

    return ClinicStore.open(paths, database, image_store)


def run(args: argparse.Namespace) -> int:
    """Open the window and run until it is closed; returns the exit status."""
    launched = time.time()
    app = make_application(sys.argv[:1])
    qInstallMessageHandler(qt_message_handler)
    # before anything else can fail: under a desktop launcher there is no console,
    # so an error while the window is built must reach the log and a dialog
    startup = Messages(None)
    install_crash_handler(startup)
    try:
        settings, window_state = open_settings(args.data_dir)
        paths = resolve_paths(args.data_dir, settings)
        log_file = setup_logging(paths, getattr(args, "verbose", False))
        database, image_store = resolve_store(getattr(args, "database", None), settings)
    except OSError as exc:
        log.error("EyeScreen cannot start: %s", exc)
        QMessageBox.critical(None, "EyeScreen cannot start", f"{exc}")
        return 1
    store = OpeningStore(lambda: open_store(paths, database, image_store))   # opened once the window is painted
    install_crash_handler(startup, log_file)
    window = None
    try:
        try:
            window = MainWindow(settings, window_state, store, paths)
        except Exception as exc:  # noqa: BLE001 - said to the user, in full in the log
            log.critical("EyeScreen could not open its window", exc_info=True)
            QMessageBox.critical(None, "EyeScreen cannot start",
                                 f"The window could not be opened: {exc}\n\nThe details are in {log_file}.")
            return 1
        install_crash_handler(window.messages, log_file)
        return _show_and_run(app, window, store, resolve_model(args.model, settings), settings, args.smoke,
                             launched)
    finally:
        if window is not None:
            dispose(app, window)
        store.close()


def dispose(app: QApplication, window: MainWindow) -> None:
    """Join every thread, then delete the window while Qt and Python are both
    still whole: left to the interpreter's exit, the teardown order of Qt and
    Python objects is undefined (it ended in "Fatal Python error: bool_dealloc")."""
    from PySide6.QtCore import QEvent

    window.shutdown()
    window.deleteLater()
    app.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    app.processEvents()


def _show_and_run(app: QApplication, window: MainWindow, store: OpeningStore, model: Path, settings: Settings,
                  smoke: bool, launched: float) -> int:
    """Paint the window, then open the database and load the model, then run."""
    quitting: list[bool] = []
    app.aboutToQuit.connect(lambda: quitting.append(True))
    app.aboutToQuit.connect(window.shutdown)

    def painted() -> None:
        log.info("window shown %.2f s after launch", time.time() - launched)
        store.start(lambda error: None if quitting else _store_opened(app, window, error))
        window.start(model)   # the worker imports the model's runtime meanwhile
        if settings.camera_source:
            window.capture_panel.open_source(settings.camera_source)

    after_first_paint(window, painted)
    if smoke:
        _smoke(window, store)
    window.statusBar().showMessage("Opening the clinic database…")
    window.show()
    return app.exec()


def _store_opened(app: QApplication, window: MainWindow, error: str) -> None:
    """The clinic database is open: follow other workstations and show the queues;
    or it cannot be used: say so and quit, as before the window existed."""
    if error:
        log.error("EyeScreen cannot start: %s", error)
        window.statusBar().showMessage("The clinic database could not be opened")
        QMessageBox.critical(window, "EyeScreen cannot start", error)
        app.exit(1)
        return
    if window.batch_panel is not None and hasattr(window.batch_panel, "check_interrupted"):
        window.batch_panel.check_interrupted()   # a folder batch that never finished is offered again
        window.offer_interrupted_batch()
    window.access.start()   # the sign-in page on a database with accounts (or the offer of a first admin)
    window.access.apply()   # what the signed-in person (or, without accounts, anyone) may do
    watcher = window.queues.follow_other_workstations()   # other windows' results and queue changes
    app.aboutToQuit.connect(watcher.stop)
    window.queues.refresh_later()
    window.statusBar().showMessage("Clinic database open", 4000)


class _FirstPaint(QObject):
    """Calls ``then()`` once, just after the watched widget's first paint."""

    def __init__(self, widget: QObject, then: Callable[[], None]) -> None:
        super().__init__(widget)
        self._then = then

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.Paint:
            watched.removeEventFilter(self)
            QTimer.singleShot(0, self, self._then)   # after this paint is finished
        return False


def after_first_paint(widget: QObject, then: Callable[[], None]) -> None:
    """Run ``then()`` on the GUI thread once ``widget`` was first painted: the slow
    start-up work waits until the user sees the window."""
    widget.installEventFilter(_FirstPaint(widget, then))


def _smoke(window: MainWindow, store: OpeningStore) -> None:
    """--smoke: print when the window was painted (and what was imported by then),
    when the clinic database was open and when the model was ready, then quit."""
    waiting = {"store", "model"}

    def shown() -> None:
        loaded = {name: name in sys.modules
                  for name in ("tensorflow", "sqlalchemy", "alembic", "onnxruntime", "reportlab")}
        print(f"window_shown_at={time.time():.3f} " + " ".join(f"{k}_loaded={v}" for k, v in loaded.items())
              + f" gc_automatic={gc.isenabled()}", flush=True)

    def finished(what: str) -> None:
        waiting.discard(what)
        if not waiting:
            window.close()

    def model_done(*_args: object) -> None:
        print(f"model_done_at={time.time():.3f} status={window.model_status.text()!r}", flush=True)
        finished("model")

    def store_done() -> None:
        print(f"store_open_at={time.time():.3f} opened={not store.opening}", flush=True)
        finished("store")

    after_first_paint(window, shown)   # installed last, so run first: the mark precedes the work after the paint
    window.queues.refreshed.connect(store_done, Qt.ConnectionType.SingleShotConnection)
    window.engine.modelReady.connect(model_done)
    window.engine.modelFailed.connect(model_done)
    window.messages.dialogs = False
