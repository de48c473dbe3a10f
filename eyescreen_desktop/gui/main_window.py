"""The EyeScreen window: composes the small widgets and routes work to the worker.

No god window: the patient form, the camera, the result view, the queues and
the batch panel are their own widgets; this module only wires them together,
owns the menus and keyboard shortcuts, and hands every photograph to the
:class:`~.worker.ScreeningEngine`. A "visit" is the window's word for the
encounter being screened at the desk: it starts with the first photograph of
a patient and ends with Next patient (Ctrl+N).
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, cast

from PySide6.QtCore import QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QLabel,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from ..domain.eyes import eye_from_name
from ..core.imageio import SUPPORTED_SUFFIXES
from ..core.paths import DataPaths
from ..core.roles import Action
from ..core.records import EncounterSummary, Eye
from ..core.screening import ScreenItem
from .capture_panel import CapturePanel
from .eye_check_panel import EyeCheckMode
from .messages import WARNING, Messages
from .patient_panel import PatientPanel
from .photo_fit_dialog import PhotoFitGuard
from .gc_collector import freeze_startup
from .lazy_tabs import LazyTabs
from .queues import QueuesWidget
from .resources import icon
from .result_view import ResultView
from .settings import Settings, WindowState
from .worker import ScreenedEye, ScreeningEngine, display_photo, run_in_background, wait_for_background

if TYPE_CHECKING:
    from ..core.classifier import ModelCard
    from .grading_panel import GradingPanel
    from .qa_view import QaView

log = logging.getLogger(__name__)

TITLE = "EyeScreen: diabetic eye screening"
IMAGE_FILTER = "Eye photographs (" + " ".join(f"*{s}" for s in sorted(SUPPORTED_SUFFIXES)) + ");;All files (*)"


@dataclasses.dataclass(frozen=True)
class TabPage:
    """One tab of the window: ``key`` names its action, ``title`` is the tab's and
    the menu entry's text (with its mnemonic), ``tip`` the status-bar help. A tab
    nobody sees at start has no ``widget`` but ``build``, run when it is first shown
    (:mod:`.lazy_tabs`): the window is painted sooner."""

    key: str
    title: str
    icon_name: str
    widget: QWidget | None
    tip: str = ""
    build: Callable[[], QWidget] | None = None

    @property
    def plain_title(self) -> str:
        return self.title.replace("&", "")


def _stored(store: Any, result: Any) -> Any:
    """The result with its path pointing at the image store's copy, when there is one."""
    stored = store.image_file(result.sha256) if result.sha256 else None
    return result if stored is None else dataclasses.replace(result, path=str(stored))


def _vertical_scroll(widget: QWidget) -> QScrollArea:
    """``widget`` in a frameless area that scrolls up and down: on a short screen (1024x700,
    or 150% scaling) its content stays reachable instead of pushing the window taller."""
    area = QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setMinimumWidth(widget.minimumSizeHint().width() + area.verticalScrollBar().sizeHint().width())
    return area


class MainWindow(QMainWindow):
    """The main window. Services come in explicitly: ``settings`` and
    ``window_state`` (gui.settings), the clinic ``store`` and its ``paths``.
    ``encounterOpened(encounter_id)`` fires once a visit reopened from the
    queues is on show."""

    encounterOpened = Signal(str)

    def __init__(self, settings: Settings, window_state: WindowState, store: Any, paths: DataPaths,
                 parent: QWidget | None = None, dialogs: bool = True):
        super().__init__(parent)
        self.settings, self.window_state, self.store, self.paths = settings, window_state, store, paths
        self.messages = Messages(self, dialogs=dialogs)
        self.engine = ScreeningEngine(store, paths.root / "captures", self)
        self.visit = uuid.uuid4().hex
        self.encounter_id: str | None = None       # the visit's encounter once saved
        self._requests: set[int] = set()          # desk requests of this window
        self._opening = 0                         # the latest visit being opened in the background
        self._finishing = False                   # quitting: waiting for the photograph in hand
        self._quitting = False                    # closing for real
        self.quit_box: QMessageBox | None = None  # "Screening is still running", while asked
        self.next_box: QMessageBox | None = None  # "This visit is not finished", while asked
        self.setWindowTitle(TITLE)
        self.setWindowIcon(icon("app"))
        self.setAcceptDrops(True)
        self.patient_panel = PatientPanel(store)
        self.capture_panel = CapturePanel()
        self.photo_guard = PhotoFitGuard(store, self)   # other eye / other patient: asked before storing
        self.result_view = ResultView()
        self.result_view.protocol_name = settings.protocol
        self.queues = QueuesWidget(store, user=None, slip_settings=settings.slip_settings)
        self.tabs = QTabWidget()
        self.lazy_tabs = LazyTabs(self.tabs)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.central = QStackedWidget()   # the desk; gui.access adds the sign-in page when it is needed
        self.model_status = QLabel("Loading model…")
        self.actions: dict[str, QAction] = {}
        self._build()
        self._connect()
        self._restore()
        from .access import WindowAccess

        self.access = WindowAccess(self)   # sign-in, lock after idle, Switch person, what each role may do

    # ------------------------------------------------------------------ building

    def _build(self) -> None:
        # built from the window down: each widget is parented (and styled) once, not again
        # with every container it is moved into
        self.setCentralWidget(self.central)
        self.central.addWidget(self.splitter)
        left = QWidget()
        column = QVBoxLayout(left)
        column.setContentsMargins(0, 0, 0, 0)
        self.splitter.addWidget(_vertical_scroll(left))   # a search list or a short screen scrolls, never grows
        self.splitter.addWidget(self.tabs)
        column.addWidget(self.patient_panel)
        column.addWidget(self.capture_panel, 1)
        self.eye_check = EyeCheckMode(self)      # the "Eye check" page, next to Screening
        self.batch_panel = self._batch_panel()
        if self.batch_panel is not None:
            self.batch_panel.storeChanged.connect(self.queues.refresh_later)
            if not getattr(self.store, "opening", False):   # else gui.app says it once the database is open
                # said once the window is up (the event loop runs), not over a window still being built
                QTimer.singleShot(0, self.offer_interrupted_batch)
        self.lazy_tabs.shown.connect(self._tab_opened)
        self.pages = self._pages()
        for page in self.pages:
            self.lazy_tabs.add(page.key, page.widget, icon(page.icon_name), page.plain_title, page.build)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setSizes([340, 1100])   # the left column near its minimum on a 1024-px screen
        self.model_status.setObjectName("modelStatus")
        self.statusBar().addPermanentWidget(self.model_status)
        self._make_actions()
        self._make_menus()

    def _pages(self) -> list[TabPage]:
        """The window's tabs, in order: the tab, its View menu entry and its Ctrl+number
        key all come from this one list, so they can never disagree."""
        pages = [TabPage("screening", "&Screening", "eye-right", self.result_view),
                 TabPage("eye_check", "&Eye check", "eye-left", self.eye_check.panel,
                         "Check the front of the eye, or a selfie"),
                 TabPage("queues", "&Queues", "patient", self.queues,
                         "Urgent, routine, annual and review: who still needs something done")]
        if self.batch_panel is not None:
            pages.append(TabPage("batch", "&Batch and hot folder", "folder", self.batch_panel,
                                 "Screen a whole folder, or watch the camera's folder"))
        pages += [TabPage("grading", "&Grading", "patient", None,
                          "A second reader: grade what needs a human grade, blind to the AI first",
                          self._build_grading),
                  TabPage("qa", "Quality &assurance", "patient", None,
                          "How the graders and EyeScreen agree, by site, camera, month and grader",
                          self._build_qa_view)]
        return pages

    def _build_grading(self) -> QWidget:
        from .grading_panel import GradingPanel

        panel = GradingPanel(self.store, settings=self.settings, documents_dir=Path(self.paths.reports) / "documents",
                             read_now=False)   # read by _tab_opened when the tab is shown
        panel.committed.connect(lambda _encounter: self.queues.refresh_later())
        return panel

    def _build_qa_view(self) -> QWidget:
        from .qa_view import QaView

        return QaView(self.store, site=self.settings.site_name or self.settings.clinic_name or "clinic")

    @property
    def grading(self) -> GradingPanel:
        """The Grading tab's panel (built now if its tab was never shown)."""
        return cast("GradingPanel", self.lazy_tabs.widget("grading"))

    @property
    def qa_view(self) -> QaView:
        """The Quality assurance tab's view (built now if its tab was never shown)."""
        return cast("QaView", self.lazy_tabs.widget("qa"))

    def tab_page(self, key: str) -> QWidget | None:
        """What the tab ``key`` holds now, built or not (None when absent): for the tab's
        own state (enabled, current) without building it."""
        return self.lazy_tabs.page(key)

    def tab_shortcut(self, key: str) -> str:
        """"Ctrl+3": the key that opens the tab ``key`` (as Help names it), or "" when absent."""
        number = next((i for i, page in enumerate(self.pages, start=1) if page.key == key), 0)
        return f"Ctrl+{number}" if number else ""

    def offer_interrupted_batch(self) -> None:
        """A folder batch that never finished (found by the Batch tab in the clinic
        database) is said once, with what to do."""
        interrupted = getattr(self.batch_panel, "interrupted", None)
        if interrupted is not None:
            self.messages.warning("Batch interrupted", f"Screening the folder {interrupted.inputs[0]} did not finish. "
                                  "Open the Batch tab and press 'Resume this batch' to screen the rest.")

    def _tab_opened(self, widget: QWidget) -> None:
        """The grading worklist and the agreement report are read when their tab opens,
        on the background helper (the sample draw writes; the agreement bootstraps)."""
        if widget is self.lazy_tabs.built("grading"):
            self.grading.refresh_later()
        elif widget is self.lazy_tabs.built("qa"):
            self.qa_view.refresh_later()

    def _batch_panel(self) -> QWidget | None:
        """The batch / hot-folder panel, given the services its constructor names."""
        from .batch_panel import BatchPanel   # part of the window: a failure to import it is a defect, said loudly
        offered = {"engine": self.engine, "store": self.store, "settings": self.settings, "paths": self.paths,
                   "data_paths": self.paths, "messages": self.messages}
        wanted = inspect.signature(BatchPanel).parameters
        return BatchPanel(**{k: v for k, v in offered.items() if k in wanted})

    def _action(self, key: str, text: str, slot: Any, shortcut: str | QKeySequence.StandardKey = "",
                icon_name: str = "", tip: str = "") -> QAction:
        action = QAction(icon(icon_name) if icon_name else QIcon(), text, self)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.setStatusTip(tip or text.replace("&", "").rstrip("…"))
        action.triggered.connect(slot)
        self.addAction(action)
        self.actions[key] = action
        return action

    def _make_actions(self) -> None:
        self._action("open", "&Open photographs…", self.open_files, QKeySequence.StandardKey.Open, "folder",
                     "Open photographs of this patient's eyes (Ctrl+O)")
        self._action("right", "Capture &right eye", lambda: self.capture_panel.capture(Eye.RIGHT), "F5",
                     "eye-right", "Capture the right eye from the camera (F5)")
        self._action("left", "Capture &left eye", lambda: self.capture_panel.capture(Eye.LEFT), "F6",
                     "eye-left", "Capture the left eye from the camera (F6)")
        for key in ("right", "left"):   # enabled exactly like the big buttons: only with a live camera
            self.actions[key].setEnabled(self.capture_panel.live)
        self._action("next", "&Next patient", self.next_patient, "Ctrl+N", "patient",
                     "Finish this patient and start the next one (Ctrl+N)")
        self._action("slip", "Patient's &document…", self.open_slip, "Ctrl+P", "print",
                     "Referral slip, review slip or result letter: preview, print or save (Ctrl+P)")
        self._action("heatmap", "Show &heat map", self.result_view.set_heatmap, "H", "heatmap")
        self.actions["heatmap"].setCheckable(True)
        self.result_view.heatmap_box.toggled.connect(self.actions["heatmap"].setChecked)
        self._action("find", "&Find patient", self._find_patient, "Ctrl+F")
        for page in self.pages:
            shortcut = self.tab_shortcut(page.key)
            self._action(page.key, page.title, lambda _checked=False, key=page.key: self.lazy_tabs.show(key),
                         shortcut, page.icon_name if page.key == "batch" else "",
                         f"{page.tip or page.title.replace('&', '')} ({shortcut})")
        self._action("settings", "S&ettings…", self.open_settings, QKeySequence.StandardKey.Preferences)
        self._action("quit", "&Quit", self.close, "Ctrl+Q")
        self._action("guide", "Quick &guide", self.show_guide, "F1", tip="How a screening day goes (F1)")
        self._action("shortcuts", "&Keyboard shortcuts", self.show_shortcuts)
        self._action("about", "&About EyeScreen", self.about)

    def _make_menus(self) -> None:
        menus = (("&File", ("open", "slip", None, "settings", None, "quit")),   # + Switch person (gui.access)
                 ("&Patient", ("next", "find")),
                 ("&Capture", ("right", "left")),
                 ("&View", (*(page.key for page in self.pages), None, "heatmap")),
                 ("&Help", ("guide", "shortcuts", None, "about")))
        for title, keys in menus:
            menu = self.menuBar().addMenu(title)
            for key in keys:
                menu.addAction(self.actions[key]) if key else menu.addSeparator()
        toolbar = QToolBar("Main")
        toolbar.setObjectName("mainToolbar")
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        toolbar.setMovable(False)
        for key in ("open", "right", "left", "next", "slip"):
            toolbar.addAction(self.actions[key])
        self.addToolBar(toolbar)

    def _connect(self) -> None:
        e = self.engine
        e.modelReady.connect(self._model_ready)
        e.modelFailed.connect(self._model_failed)
        e.eyeScreened.connect(self._eye_screened)
        e.encounterSaved.connect(self._encounter_saved)
        e.failed.connect(self._request_failed)
        e.requestDone.connect(self._request_done)
        self.capture_panel.captured.connect(self.screen_frame)
        self.capture_panel.sourceChanged.connect(self._remember_camera)
        self.capture_panel.problem.connect(lambda text: self.messages.warning("Camera", text))
        self.capture_panel.cameraFailed.connect(self._camera_failed)
        self.capture_panel.liveChanged.connect(self._camera_live)
        self.capture_panel.before_capture = self._before_capture
        self.patient_panel.patientChanged.connect(self._patient_edited)
        self.queues.encounterActivated.connect(self.open_encounter)
        self.result_view.slipRequested.connect(self.open_slip)
        self.result_view.photoSideChosen.connect(self._set_photo_side)
        self.result_view.missingRequested.connect(self._ask_missing)
        self.messages.shown.connect(lambda _level, _title, text: self.statusBar().showMessage(text, 8000))
        self.result_view.heatmap_box.setChecked(self.settings.show_heatmap)
        self.result_view.heatmap_box.toggled.connect(self._remember_heatmap)

    def _restore(self) -> None:
        """The window's last size and place, and how its panes were divided."""
        geometry = self.window_state.geometry()
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(self._first_size())
        if (splitter := self.window_state.splitter()) is not None:
            self.splitter.restoreState(splitter)

    def _first_size(self) -> QSize:
        """1360x860, or the screen's free area when that is smaller (a 1024x700 laptop):
        the first window never starts larger than the screen."""
        size = QSize(1360, 860)
        if (screen := self.screen()) is not None:
            size = size.boundedTo(screen.availableGeometry().size())
        return size

    # ------------------------------------------------------------------ model

    def start(self, model_path: Path) -> None:
        """Load the model in the background; the window is usable meanwhile."""
        self.model_status.setText(f"Loading model… ({model_path.name})")
        self.engine.start(model_path)
        self.eye_check.start()
        self.photo_guard.prepare()   # the photograph checks' first-time work, off the GUI thread

    @Slot(object)
    def _model_ready(self, card: ModelCard) -> None:
        freeze_startup()   # what start-up made lives as long as the app: full collections skip it
        self.model_status.setText(f"Model: {card.name} {card.version}")
        self.model_status.setToolTip(f"{card.name} {card.version}, weights SHA-256 {card.weights_sha256[:12]}…")
        self.messages.info("Model ready", f"{card.name} {card.version} is ready: photographs can be graded")
        self._withdraw_foreign_point(card)

    def _withdraw_foreign_point(self, card: ModelCard) -> None:
        """An operating point belongs to the weights it was chosen on (issue 22): when the model
        in force is another one, say at once that the clinic's point is withdrawn, not only
        when the next screening is refused (``_options``)."""
        from ..core.calibration import CalibrationError

        if not self.settings.site_operating_point:
            return
        try:
            self.settings.chosen_operating_point(card)
        except CalibrationError as exc:
            name = Path(self.settings.site_operating_point).stem
            self.model_status.setText(f"Model: {card.name} {card.version} (clinic's point withdrawn)")
            self.messages.warning("Clinic's operating point withdrawn",
                                  f"The clinic's operating point {name} is not used: {exc}. Screening is refused "
                                  "until, in File > Settings, the clinic calibrates again (from this clinic's "
                                  "grades) or clears its point.")

    @Slot(str)
    def _model_failed(self, message: str) -> None:
        self.model_status.setText("Model not loaded: photographs cannot be graded")
        self.messages.error("Model not loaded", f"{message}\n\nChoose the model folder in File > Settings, then "
                                                "restart EyeScreen. Patients and queues can still be used.")

    # ------------------------------------------------------------------ screening

    def _patient_or_ask(self) -> Any:
        patient = self.patient_panel.patient()
        if patient is None:
            self.messages.warning("Who is this?", "Enter the patient ID (or find the patient) first, "
                                                  "then add the photographs.")
            self.patient_panel.id_edit.setFocus()
        return patient

    def _options(self) -> dict[str, Any] | None:
        """Where the results go and how they are decided; None (said why) when the clinic's
        operating point cannot be used with this model."""
        from ..core.calibration import CalibrationError

        try:
            op = self.settings.chosen_operating_point(self.engine.card)
        except CalibrationError as exc:
            self.messages.error("Operating point refused", f"{exc}\n\nNothing was screened. Calibrate again "
                                "in File > Settings, or clear the clinic's operating point there.")
            return None
        return {"visit": self.visit, "encounter_id": self.encounter_id, "protocol": self.settings.protocol,
                "operating_point": op}

    def screen_paths(self, paths: Iterable[Path]) -> int | None:
        """Screen photograph files for the patient in the form; returns the request ID."""
        files = [Path(p) for p in paths]
        folders = [p for p in files if p.is_dir()]
        if folders:
            self._offer_batch(folders[0])
            files = [p for p in files if not p.is_dir()]
        if not files or (patient := self._patient_or_ask()) is None or (options := self._options()) is None:
            return None
        self.patient_panel.set_locked(True)   # from the first photograph on, the visit is this patient's
        items = self.photo_guard.files([ScreenItem(p, eye_from_name(p)) for p in files], patient.patient_id,
                                       lambda held: self._screen_items(held, patient))
        return self._screen_items(items, patient, options) if items else None

    def _screen_items(self, items: list[ScreenItem], patient: Any, options: dict[str, Any] | None = None
                      ) -> int | None:
        """Screen ``items`` for ``patient``'s visit (after the photograph checks); the request ID."""
        if options is None and (options := self._options()) is None:
            return None
        for item in items:
            self.result_view.set_pending(item.eye)
        self.tabs.setCurrentWidget(self.result_view)
        rid = self.engine.screen_files(items, patient, **options)
        self._requests.add(rid)
        return rid

    def _before_capture(self, _eye: Eye) -> bool:
        """A capture is asked for: only with a patient, who is then fixed for the visit."""
        if self._patient_or_ask() is None:
            return False
        self.patient_panel.set_locked(True)
        return True

    @Slot(object, object)
    def screen_frame(self, rgb: Any, eye: Eye) -> int | None:
        """Keep and screen a camera capture for the patient in the form."""
        if (patient := self._patient_or_ask()) is None or (options := self._options()) is None:
            return None
        self.patient_panel.set_locked(True)
        if not self.photo_guard.frame(rgb, eye, patient.patient_id, lambda held, chosen: self._screen_frame(
                held, chosen, patient)):
            return None
        return self._screen_frame(rgb, eye, patient, options)

    def _screen_frame(self, rgb: Any, eye: Eye, patient: Any, options: dict[str, Any] | None = None) -> int | None:
        """Screen a camera frame for ``patient``'s visit (after the photograph checks); the request ID."""
        if options is None and (options := self._options()) is None:
            return None
        self.result_view.set_pending(eye)
        self.tabs.setCurrentWidget(self.result_view)
        rid = self.engine.screen_frame(rgb, eye, patient, **options)
        self._requests.add(rid)
        return rid

    @Slot(int, object)
    def _eye_screened(self, rid: int, screened: ScreenedEye) -> None:
        if rid in self._requests:
            self.result_view.show_eye(screened)

    @Slot(int, object)
    def _encounter_saved(self, rid: int, summary: EncounterSummary) -> None:
        if rid not in self._requests:
            return
        self.encounter_id = summary.encounter_id
        self.result_view.show_summary(summary)
        self.queues.refresh_later()
        self.messages.info("Saved", f"{summary.patient.patient_id}: {summary.queue.label}, "
                                    f"due {summary.due_date.isoformat()}")

    @Slot(int, str)
    def _request_failed(self, rid: int, message: str) -> None:
        if rid in self._requests:
            self.messages.error("Photograph not screened", message)

    @Slot(int, bool)
    def _request_done(self, rid: int, _cancelled: bool) -> None:
        if rid in self._requests:
            self._requests.discard(rid)
            for card in self.result_view.cards.values():
                if card.shown is None and card.pending:   # its request ended without a photograph to show
                    card.clear()

    # ------------------------------------------------------------------ user actions

    @Slot()
    def open_files(self) -> None:
        """Choose photographs in a file dialog and screen them; the patient is asked for first."""
        if self._patient_or_ask() is None:
            return
        paths, _ = QFileDialog.getOpenFileNames(self, "Open eye photographs", self.settings.last_folder, IMAGE_FILTER)
        if paths:
            self.settings.last_folder = str(Path(paths[0]).parent)
            self.screen_paths(Path(p) for p in paths)

    def _offer_batch(self, folder: Path) -> None:
        """A folder is many patients: put it in the batch panel for the nurse to start."""
        if self.batch_panel is None:
            self.messages.warning("Folders are screened in a batch",
                                  f"{folder} is a folder: screen it with 'eyescreen screen'.")
            return
        self.batch_panel.folder_edit.setText(str(folder))
        self.tabs.setCurrentWidget(self.batch_panel)
        self.messages.info("Folder ready", f"{folder}: press 'Screen folder' to screen every photograph in it")

    @Slot()
    def next_patient(self) -> None:
        """Finish this visit (it is already saved) and clear the form for the next
        patient; an unfinished visit (an eye missing without a recorded reason) is
        warned about first."""
        if self.encounter_id and self.result_view.summary is not None and not self.result_view.complete:
            self._warn_unfinished()
            return
        self.start_next_patient()

    def _warn_unfinished(self) -> None:
        text = self.result_view.unfinished_warning()
        box = QMessageBox(QMessageBox.Icon.Warning, "This visit is not finished", text,
                          QMessageBox.StandardButton.NoButton, self)
        self.next_anyway_button = box.addButton("Next patient anyway", QMessageBox.ButtonRole.AcceptRole)
        box.setDefaultButton(box.addButton("Stay with this patient", QMessageBox.ButtonRole.RejectRole))
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.buttonClicked.connect(
            lambda button: self.start_next_patient() if button is self.next_anyway_button else None)
        box.finished.connect(lambda _result: setattr(self, "next_box", None))
        self.next_box = box
        self.messages.logged(WARNING, "Visit not finished", text)   # this box is the one message shown
        box.open()

    def start_next_patient(self) -> None:
        """Clear the visit and the form for the next patient (no questions)."""
        self.visit = uuid.uuid4().hex
        self.encounter_id = None
        self._requests.clear()
        self.photo_guard.clear()
        self.capture_panel.clear_frames()
        self.patient_panel.clear()
        self.result_view.clear()
        self.tabs.setCurrentWidget(self.result_view)
        self.patient_panel.id_edit.setFocus()

    def _set_photo_side(self, sha256: str, eye: Eye) -> None:
        """Staff say which eye a photograph shows: saved (audited) and the visit re-queued."""
        target, patient = self.encounter_id, self.patient_panel.patient()
        if not target:
            return
        rid = self.engine.update_encounter(target, lambda store: store.set_photo_eye(target, sha256, eye),
                                           patient.patient_id if patient else "")
        self._requests.add(rid)

    def _ask_missing(self, eye: Eye) -> None:
        """Record why an eye was not photographed (window-modal, non-blocking)."""
        from .result_view import MissingEyeDialog

        target, summary = self.encounter_id, self.result_view.summary
        if not target or summary is None:
            return
        current = next((m for m in summary.missing_eyes if m.eye is eye), None)
        dialog = MissingEyeDialog(eye, current, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(lambda: self._record_missing(target, eye, dialog.reason(), dialog.note()))
        self.missing_dialog = dialog
        dialog.open()

    def _record_missing(self, encounter_id: str, eye: Eye, reason: str, note: str) -> int:
        patient = self.patient_panel.patient()
        rid = self.engine.update_encounter(
            encounter_id, lambda store: store.record_missing_eye(encounter_id, eye, reason, note),
            patient.patient_id if patient else "")
        self._requests.add(rid)
        return rid

    @Slot(str)
    def open_encounter(self, encounter_id: str) -> None:
        """Show a saved encounter (from the queues); new photographs are added to it.
        The visit is read and its photographs decoded on a background thread."""
        self.start_next_patient()
        self.encounter_id = encounter_id
        self.patient_panel.set_locked(True)        # the visit's patient comes with it
        self.result_view.set_loading()
        self._opening += 1
        store, ticket = self.store, self._opening

        def load() -> tuple[int, EncounterSummary, list[Any]]:
            summary = store.encounter_summary(encounter_id)
            store.open_record(summary.patient.patient_id)   # audited: who viewed whom (refused without the role)
            return ticket, summary, [display_photo(_stored(store, r)) for r in summary.eyes]

        run_in_background(load, self._encounter_loaded,
                          lambda message: self.messages.error("Visit not opened", message))

    @Slot(object)
    def _encounter_loaded(self, loaded: tuple[int, EncounterSummary, list[Any]]) -> None:
        ticket, summary, photos = loaded
        if ticket != self._opening or self.encounter_id != summary.encounter_id:
            return   # another visit was opened, or the next patient started, meanwhile
        self.patient_panel.set_patient(summary.patient)
        self.patient_panel.set_locked(True)
        for result, photo in zip(summary.eyes, photos):
            self.result_view.show_eye(ScreenedEye(result, photo, summary.encounter_id))
        self.result_view.show_summary(summary)
        self.encounterOpened.emit(summary.encounter_id)

    @Slot()
    def open_slip(self, encounter_id: str | None = None) -> None:
        """Preview, print or save the document of the visit on show: referral slip,
        review slip or result letter (every patient leaves with one)."""
        from .queues import open_document

        target = encounter_id or self.encounter_id
        if not target:
            self.messages.warning("No document yet", "Screen this patient's photographs first.")
            return
        dialog = open_document(self.store, target, self.settings.slip_settings(), self,
                               self.queues.mark_slip_printed, self.queues.mark_slip_saved)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.slip_dialog = dialog
        dialog.open()

    @Slot()
    def open_settings(self) -> None:
        """The Settings dialog (window-modal)."""
        from .settings_dialog import SettingsDialog

        people = self.access.open_people if self.access.people_action.isEnabled() else None
        dialog = SettingsDialog(self.settings, self.engine.card, self, engine=self.engine,
                                calibration_folder=self.paths.root / "calibration", people=people,
                                store=self.store)
        before = self.settings.site_operating_point
        dialog.accepted.connect(lambda: setattr(self.result_view, "protocol_name", self.settings.protocol))
        dialog.accepted.connect(lambda: self._apply_site_point(before))
        dialog.accepted.connect(self.access.idle.restart)   # new idle minutes count from now
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()

    def _apply_site_point(self, before: str) -> None:
        """A new clinic operating point chosen in Settings (an admin's) is recorded in the
        clinic database: the one point ``eyescreen screen --operating-point`` accepts from others."""
        chosen = self.settings.site_operating_point
        if not chosen or chosen == before or not Path(chosen).is_file():
            return
        from ..core.classifier import sha256_file

        try:
            self.store.apply_operating_point(sha256_file(Path(chosen)), Path(chosen).name)
        except Exception as exc:  # noqa: BLE001 - said to the user; the setting stays this workstation's
            self.messages.error("Operating point not applied for the clinic", str(exc))

    def _find_patient(self) -> None:
        self.patient_panel.search_edit.setFocus()
        self.patient_panel.search_edit.selectAll()

    def _remember_camera(self, source: str) -> None:
        self.settings.camera_source = source

    def _camera_failed(self, _message: str) -> None:
        """A camera that failed is not reopened by itself at the next start."""
        self.settings.camera_source = ""

    def _camera_live(self, live: bool) -> None:
        access = getattr(self, "access", None)   # the camera may go live while the window is built
        for key in ("right", "left"):
            self.actions[key].setEnabled(live and (access is None or access.may(Action.SCREEN)))

    def _patient_edited(self) -> None:
        """Another patient in the form: no picture taken before may be captured for them."""
        if not self.patient_panel.id_edit.isReadOnly():
            self.capture_panel.clear_frames()

    def _remember_heatmap(self, on: bool) -> None:
        self.settings.show_heatmap = on

    @Slot()
    def show_guide(self) -> None:
        """Help > Quick guide: a screening day, step by step."""
        from .help import guide_html

        self._help("EyeScreen quick guide", guide_html(self.tab_shortcut))

    @Slot()
    def show_shortcuts(self) -> None:
        """Help > Keyboard shortcuts, listed from the window's own actions."""
        from .help import shortcuts_html

        self._help("Keyboard shortcuts", shortcuts_html(self.actions))

    def _help(self, title: str, html: str) -> None:
        from .help import HelpDialog

        dialog = HelpDialog(title, html, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.help_dialog = dialog
        dialog.show()

    @Slot()
    def about(self) -> None:
        from .. import __version__

        card = self.engine.card
        model = f"{card.name} {card.version}" if card else "not loaded"
        box = QMessageBox(QMessageBox.Icon.Information, "About EyeScreen",
                          f"EyeScreen {__version__}\nModel: {model}\nData folder: {self.paths.root}\n\n"
                          "A screening aid for research and evaluation, not a diagnosis.",
                          QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    # ------------------------------------------------------------------ drag and drop

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.screen_paths(paths)

    # ------------------------------------------------------------------ closing

    def closeEvent(self, event: QCloseEvent) -> None:
        """Ask before quitting while screening runs; then finish the photograph in
        hand, remember the geometry and stop the camera and the worker."""
        if self.engine.busy and not self._quitting:
            event.ignore()
            if not self._finishing:
                self._ask_to_quit()
            return
        self.window_state.save_geometry(self.saveGeometry())
        self.window_state.save_splitter(self.splitter.saveState())
        self.shutdown()
        super().closeEvent(event)

    def _ask_to_quit(self) -> None:
        """Screening is running: quitting stops it after the photograph in hand (window-modal, non-blocking)."""
        batch = self.batch_panel is not None and getattr(self.batch_panel, "running", False)
        text = ("A folder batch is being screened. Quit now? EyeScreen stops after the photograph in hand; "
                "everything screened so far is saved and in the queues, and screening the same folder again "
                "finishes the rest." if batch else
                "Photographs are still being screened. Quit now? EyeScreen stops after the photograph in hand; "
                "everything screened so far is saved.")
        box = QMessageBox(QMessageBox.Icon.Question, "Screening is still running", text,
                          QMessageBox.StandardButton.NoButton, self)
        self.quit_button = box.addButton("Quit", QMessageBox.ButtonRole.AcceptRole)
        box.setDefaultButton(box.addButton("Keep screening", QMessageBox.ButtonRole.RejectRole))
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.buttonClicked.connect(lambda button: self._finish_then_quit() if button is self.quit_button else None)
        box.finished.connect(lambda _result: setattr(self, "quit_box", None))
        self.quit_box = box
        box.open()

    def _finish_then_quit(self) -> None:
        """Say "Finishing…", cancel every request and close once the worker is idle
        (the event loop keeps running: no frozen window)."""
        self._finishing = True
        self.setWindowTitle(f"{TITLE}: finishing…")
        self.model_status.setText("Finishing… EyeScreen closes after the photograph in hand")
        self.statusBar().showMessage("Finishing: stopping after the photograph in hand…")
        self.centralWidget().setEnabled(False)
        if self.batch_panel is not None and hasattr(self.batch_panel, "finish"):
            self.batch_panel.finish()
        self.engine.cancel_all()
        self.engine.requestDone.connect(self._close_when_idle)
        self._close_when_idle()

    @Slot()
    def _close_when_idle(self, *_args: object) -> None:
        if self._finishing and not self.engine.busy and not self._quitting:
            self._quitting = True
            self.close()

    @Slot()
    def shutdown(self) -> None:
        """Stop the camera and the worker thread (idempotent; also run when the
        application quits without the window being closed)."""
        self.capture_panel.stop()
        self.eye_check.shutdown()
        if (access := getattr(self, "access", None)) is not None:
            access.idle.stop()   # the application-wide input filter goes with the window
        watcher = getattr(self.batch_panel, "watcher", None)
        if watcher is not None:
            watcher.stop()            # joins the camera folder's scan thread
        self.engine.stop()
        wait_for_background()
