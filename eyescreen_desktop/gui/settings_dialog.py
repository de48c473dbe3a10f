"""The Settings dialog: one form over :class:`~.settings.Settings`.

Every field maps to one declared setting; OK writes them all, Cancel none. The
operating points offered are the ones the loaded model card declares, so a
clinic can only choose thresholds that were validated for that model, or the
clinic's own, calibrated on its graded photographs ("Calibrate on this clinic's
graded photographs", :mod:`.calibration_dialog`); a calibrated point made for
other weights is shown as refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QSpinBox,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from ..core.operating_points import PointChoice, describe_points
from ..core.protocol import PROTOCOLS
from .settings import PAGE_SIZES, Settings


class PathField(QWidget):
    """A line edit with a Browse… button (a folder or an image file)."""

    def __init__(self, text: str, folder: bool, placeholder: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.folder = folder
        self.edit = QLineEdit(text, placeholderText=placeholder, clearButtonEnabled=True)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.edit, 1)
        row.addWidget(browse)

    def _browse(self) -> None:
        if self.folder:
            path = QFileDialog.getExistingDirectory(self, "Choose a folder", self.edit.text())
        else:
            path, _ = QFileDialog.getOpenFileName(self, "Choose an image", self.edit.text(),
                                                  "Images (*.png *.jpg *.jpeg)")
        if path:
            self.edit.setText(path)

    def text(self) -> str:
        return self.edit.text().strip()


class SiteOperatingPointField(QWidget):
    """The clinic's calibrated operating point: what it is, and buttons to calibrate,
    choose a saved file or go back to the model card's point."""

    def __init__(self, path: str, card: Any, engine: Any, folder: Path | None, parent: QWidget | None = None,
                 store: Any = None):
        super().__init__(parent)
        self.card, self.engine, self.folder, self.store = card, engine, folder, store
        self.path = path
        self.summary = QLabel()  # one line (a wrapped label overlaps the buttons in a form); details in the tooltip
        self.calibrate = QPushButton("Calibrate on this clinic's graded photographs…")
        self.calibrate.setEnabled(engine is not None and folder is not None)
        self.calibrate.setToolTip("Screen photographs your graders have graded and choose thresholds that hold "
                                  "on each of your cameras (needs about 100 graded eyes or more)")
        choose, clear = QPushButton("Use a saved file…"), QPushButton("Clear")
        self.calibrate.clicked.connect(self.open_calibration)
        choose.clicked.connect(self._choose)
        clear.clicked.connect(lambda: self.set_path(""))
        buttons = QHBoxLayout()
        for b in (self.calibrate, choose, clear):
            buttons.addWidget(b)
        buttons.addStretch(1)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.summary)
        box.addLayout(buttons)
        self.set_path(path)

    def set_path(self, path: str) -> None:
        """Show what ``path`` holds (or why it cannot be used with this model)."""
        from ..core.calibration import CalibrationError, load_operating_point

        self.path = path
        self.summary.setToolTip(path)
        if not path:
            self.summary.setText("None: the model card's operating point above is used.")
            return
        try:
            op = load_operating_point(Path(path), self.card)
        except CalibrationError as exc:
            self.summary.setText('<b style="color:#B71C1C">Refused</b>: not made for this model; calibrate again '
                                 "(hover for why)")
            self.summary.setToolTip(str(exc))
            return
        self.summary.setText(f"<b>{op.name}</b>: referable \u2265 {op.referable:.4f}, urgent \u2265 {op.urgent:.4f}, "
                             f"calibrated {op.created[:10]}")
        self.summary.setToolTip(f"{path}\nUsed for desk screening, folder batches and the hot folder.")

    def open_calibration(self) -> Any:
        """Open the calibration dialog (returned, so tests can drive it)."""
        from .calibration_dialog import CalibrationDialog

        dialog = CalibrationDialog(self.engine, self.folder, self, store=self.store)
        dialog.chosen.connect(self.set_path)
        dialog.open()
        return dialog

    def _choose(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose an operating point file", str(self.folder or ""),
                                              "Operating point (*.json)")
        if path:
            self.set_path(path)


class SettingsDialog(QDialog):
    """Edit the clinic's preferences; ``card`` (the loaded ModelCard, or None)
    supplies the operating points to choose from; ``engine`` (the screening engine)
    and ``calibration_folder`` let the clinic calibrate its own, ``store`` (the clinic
    database) from its graders' confirmed eyes."""

    def __init__(self, settings: Settings, card: Any = None, parent: QWidget | None = None,
                 engine: Any = None, calibration_folder: Path | None = None, people: Any = None,
                 store: Any = None):
        super().__init__(parent)
        self.settings = settings
        self.people_button = QPushButton("People…")   # the clinic's accounts (admins; gui.users_dialog)
        self.people_button.setToolTip("Add, disable and reset the people who sign in to this clinic database")
        self.people_button.setVisible(people is not None)
        if people is not None:
            self.people_button.clicked.connect(people)
        self.setWindowTitle("EyeScreen settings")
        self.setMinimumWidth(720)
        self.protocol = QComboBox()
        for name, protocol in PROTOCOLS.items():
            self.protocol.addItem(protocol.title, name)
        self.protocol.setCurrentIndex(max(0, self.protocol.findData(settings.protocol)))
        self.points: list[PointChoice] = describe_points(card) if card is not None else []
        self.operating_point = QComboBox()
        self.operating_point.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.point_figures = QLabel(wordWrap=True)
        self.point_figures.setObjectName("hint")
        # a form squeezes a wrapped label that changes after layout: keep room for the whole paragraph
        self.point_figures.setMinimumHeight(self.point_figures.fontMetrics().lineSpacing() * 5 + 4)
        chosen = next((p for p in self.points if p.name == settings.operating_point), None)
        self.advanced_points = QCheckBox("Advanced: also offer the developers' points")
        self.advanced_points.setChecked(chosen is not None and chosen.advanced)
        self.advanced_points.toggled.connect(lambda _on: self._fill_points(self.operating_point.currentData()))
        self.operating_point.currentIndexChanged.connect(self._show_figures)
        self._fill_points(settings.operating_point)
        self.site_operating_point = SiteOperatingPointField(settings.site_operating_point, card, engine,
                                                            calibration_folder, store=store)
        self.clinic_name = QLineEdit(settings.clinic_name, placeholderText="printed at the top of each slip")
        self.clinic_address = QPlainTextEdit(settings.clinic_address)
        self.clinic_address.setFixedHeight(70)
        self.clinic_address.setTabChangesFocus(True)
        self.logo = PathField(settings.clinic_logo, False, "EyeScreen's logo when empty")
        self.page_size = QComboBox()
        self.page_size.addItems(list(PAGE_SIZES))
        self.page_size.setCurrentText(settings.page_size)
        self.camera = QLineEdit(settings.camera_source, placeholderText="0-3, a video file or a stream URL")
        self.data_folder = PathField(settings.data_folder, True, "the platform's user data folder when empty")
        self.model_folder = PathField(settings.model_folder, True, "the model shipped with EyeScreen when empty")
        # no password here (settings are plain text): the server trusts the workstation's
        # account or its ~/.pgpass (docs/deployment.md)
        self.database = QLineEdit(settings.database_url, clearButtonEnabled=True,
                                  placeholderText="this computer's own database when empty; "
                                                  "postgresql://eyescreen@server/clinic for a clinic server")
        self.image_store = PathField(settings.image_store, True, "images/ in the data folder when empty")
        self.idle_lock = QSpinBox(minimum=0, maximum=240, suffix=" min", value=int(settings.idle_lock_minutes))
        self.idle_lock.setSpecialValueText("never")
        self.idle_lock.setToolTip(Settings.idle_lock_minutes.doc)
        self.qa_percent = QSpinBox(minimum=0, maximum=100, suffix=" %", value=int(settings.qa_percent))
        self.qa_percent.setToolTip("share of annual encounters drawn at random for a grader (recorded, audited)")
        self.single_grader = QCheckBox("a single grader's decision stands (never downgrading an AI urgent "
                                       "referral alone)", checked=bool(settings.single_grader_stands))
        self.site_name = QLineEdit(settings.site_name, placeholderText="the clinic name when empty")
        self._layout()

    def _fill_points(self, current: str | None) -> None:
        """The card's points in words, the shipped one first ("" = the card's default), the
        developers' only with "advanced"; a stored point this model lacks is kept, said so."""
        box = self.operating_point
        box.blockSignals(True)
        box.clear()
        for point in self.points:
            if point.advanced and not self.advanced_points.isChecked():
                continue
            box.addItem(point.words, "" if point is self.points[0] else point.name)
        if not self.points:
            box.addItem("the model's default", "")
        if current and box.findData(current) < 0 and current not in (p.name for p in self.points):
            box.addItem(f"{current} (not in this model)", current)
        if self.points and current == self.points[0].name:
            current = ""
        box.setCurrentIndex(max(0, box.findData(current or "")))
        box.blockSignals(False)
        self._show_figures()

    def _show_figures(self, *_args: object) -> None:
        """What the chosen point does: sensitivity, specificity, expected referral rate."""
        data = self.operating_point.currentData()
        point = self.points[0] if self.points and not data else next((p for p in self.points if p.name == data), None)
        if point is None:
            self.point_figures.setText("")
        elif point.figures is None:
            self.point_figures.setText("The model card has no figures for this point (a developers' point): "
                                       "check it on your own graded photographs before screening with it.")
        else:
            self.point_figures.setText(" ".join(t for t in (point.rule, point.figures.text()) if t))

    def _layout(self) -> None:
        page = QWidget()
        form = QFormLayout(page)
        form.addRow("Protocol:", self.protocol)
        form.addRow("Operating point:", self.operating_point)
        form.addRow("", self.point_figures)
        form.addRow("", self.advanced_points)
        form.addRow("Clinic's point:", self.site_operating_point)
        form.addRow("Clinic name:", self.clinic_name)
        form.addRow("Clinic address:", self.clinic_address)
        form.addRow("Logo on slips:", self.logo)
        form.addRow("Paper size:", self.page_size)
        form.addRow("Camera:", self.camera)
        form.addRow("Data folder:", self.data_folder)
        form.addRow("Model folder:", self.model_folder)
        form.addRow("Clinic database:", self.database)
        form.addRow("Shared image folder:", self.image_store)
        form.addRow("Lock after idle:", self.idle_lock)
        form.addRow("Accounts:", self.people_button)
        form.addRow("Quality-assurance sample:", self.qa_percent)
        form.addRow("Disagreements:", self.single_grader)
        form.addRow("Site name:", self.site_name)
        note = QLabel("A new data folder, database, image folder or model is used the next time EyeScreen starts.")
        note.setObjectName("hint")
        form.addRow(note)
        # the fields scroll on a short screen (1024x700, 150% scaling); OK and Cancel always show
        area = QScrollArea()
        area.setWidget(page)
        area.setWidgetResizable(True)
        area.setFrameShape(QFrame.Shape.NoFrame)
        area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        box = QVBoxLayout(self)
        box.addWidget(area, 1)
        box.addWidget(buttons)
        height = page.sizeHint().height() + buttons.sizeHint().height() + 24
        if screen := self.screen():
            height = min(height, int(screen.availableGeometry().height() * 0.9))
        self.resize(max(self.minimumWidth(), page.sizeHint().width() + 24), height)

    def accept(self) -> None:
        """Write every field to the settings, then close."""
        s = self.settings
        s.protocol = self.protocol.currentData()
        s.operating_point = self.operating_point.currentData()
        s.site_operating_point = self.site_operating_point.path
        s.clinic_name = self.clinic_name.text().strip()
        s.clinic_address = self.clinic_address.toPlainText().strip()
        s.clinic_logo = self.logo.text()
        s.page_size = self.page_size.currentText()
        s.camera_source = self.camera.text().strip()
        s.data_folder = str(Path(self.data_folder.text())) if self.data_folder.text() else ""
        s.model_folder = str(Path(self.model_folder.text())) if self.model_folder.text() else ""
        s.database_url = self.database.text().strip()
        s.image_store = str(Path(self.image_store.text())) if self.image_store.text() else ""
        s.idle_lock_minutes = self.idle_lock.value()
        s.qa_percent = self.qa_percent.value()
        s.single_grader_stands = self.single_grader.isChecked()
        s.site_name = self.site_name.text().strip()
        s.sync()
        super().accept()
