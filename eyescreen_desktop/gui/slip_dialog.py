"""Preview, print and save one patient's document: the referral slip, the
review slip or the result letter, whichever ``core.reports.patient_document``
chooses for the patient (every screened patient leaves with one).

The document itself is drawn by the Qt-free reports module (the same PDF the
batch command writes), so what the nurse previews, prints and saves is exactly
what the patient or the receiving eye clinic gets. It is built and rasterised
for the preview on the background helper, so the window never waits for it;
printing rasterises again at the printer's own resolution, so a printed slip
stays sharp and its QR code stays readable. Printing and saving as PDF are both
recorded (``printed`` / ``saved``): handing on the file counts as issuing it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pypdfium2 as pdfium
from PySide6.QtCore import QRect, QSize, Qt, Signal, Slot
from PySide6.QtGui import QImage, QPainter, QPalette, QPixmap
from PySide6.QtPrintSupport import QPrintDialog, QPrinter
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QLabel,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from ..core.records import EncounterSummary

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ..core.reports import PatientDocument, SlipSettings

log = logging.getLogger(__name__)

PREVIEW_DPI = 96.0
MAX_PRINT_DPI = 300.0  # sharper than a slip needs; higher only costs memory


def build_document(summary: EncounterSummary, settings: "SlipSettings | None") -> "PatientDocument":
    """The patient's document (kind, title, PDF bytes), chosen and drawn by the
    reports module: the very document the batch command writes, kept in memory
    so nothing is left in /tmp."""
    from ..core.reports import patient_document

    return patient_document(summary, settings)


def render_pages(pdf: bytes, dpi: float) -> Iterator[QImage]:
    """Each page of ``pdf`` as a QImage at ``dpi`` (white background)."""
    doc = pdfium.PdfDocument(pdf)
    try:
        for index in range(len(doc)):
            page = doc[index]
            bitmap = page.render(scale=dpi / 72.0, rev_byteorder=True, prefer_bgrx=True)
            yield _to_qimage(bitmap)
            page.close()
    finally:
        doc.close()


def page_count(pdf: bytes) -> int:
    """How many pages ``pdf`` has."""
    doc = pdfium.PdfDocument(pdf)
    try:
        return len(doc)
    finally:
        doc.close()


def _to_qimage(bitmap: Any) -> QImage:
    """Copy a pdfium RGBx bitmap into a QImage that owns its pixels."""
    array = bitmap.to_numpy()
    height, width = array.shape[:2]
    image = QImage(array.data, width, height, array.strides[0], QImage.Format.Format_RGBX8888)
    return image.copy()  # detach from the numpy buffer before it is freed


def paint_pages(printer: QPrinter, pdf: bytes) -> int:
    """Paint every page of ``pdf`` onto ``printer`` at its resolution; returns
    the number of pages painted. Each page is scaled to fit the printable area
    with its proportions kept, so nothing of the slip is cut off."""
    dpi = float(min(printer.resolution(), MAX_PRINT_DPI))
    painter = QPainter()
    if not painter.begin(printer):
        raise OSError("the printer could not be started: check that it is switched on and try again")
    painted = 0
    try:
        for image in render_pages(pdf, dpi):
            if painted:
                printer.newPage()
            painter.drawImage(_fit(image.size(), painter.viewport()), image)
            painted += 1
    finally:
        painter.end()
    return painted


def _fit(size: QSize, area: QRect) -> QRect:
    """The largest rectangle of ``size``'s proportions centred in ``area``."""
    scaled = size.scaled(area.size(), Qt.AspectRatioMode.KeepAspectRatio)
    left = area.x() + (area.width() - scaled.width()) // 2
    top = area.y() + (area.height() - scaled.height()) // 2
    return QRect(left, top, scaled.width(), scaled.height())


class SlipDialog(QDialog):
    """The patient's document of one encounter, with Print and Save as PDF.

    ``summary`` is the encounter, or a function reading it (called on the
    background thread with the building, so no database read waits on the GUI
    thread). ``ready()`` fires once the preview (or the problem) is on show;
    ``printed(encounter_id)`` after the document went to a printer and
    ``saved(encounter_id, path)`` after it was saved, so the queue can record
    that it was issued."""

    printed = Signal(str)
    saved = Signal(str, str)
    ready = Signal()

    def __init__(self, summary: EncounterSummary | Callable[[], EncounterSummary],
                 settings: "SlipSettings | None" = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.summary: EncounterSummary | None = None if callable(summary) else summary
        self.document: "PatientDocument | None" = None
        self.pdf: bytes = b""
        self.setWindowTitle("Patient's document")
        self._pages = QVBoxLayout()
        self.heading = QLabel("Preparing the document…")
        self._build_ui()
        self._fit_to_screen()
        self._start(summary, settings)

    # ------------------------------------------------------------------ UI

    def _build_ui(self) -> None:
        self.heading.setTextFormat(Qt.TextFormat.PlainText)
        self.heading.setWordWrap(True)
        pages = QWidget()
        pages.setLayout(self._pages)
        self._pages.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        self._pages.setSpacing(12)
        scroll = QScrollArea()
        scroll.setWidget(pages)
        scroll.setWidgetResizable(True)
        scroll.setBackgroundRole(QPalette.ColorRole.Dark)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.print_button = QPushButton("&Print…")
        self.save_button = QPushButton("&Save as PDF…")
        for button in (self.print_button, self.save_button):
            button.setEnabled(False)   # until the document is made
            buttons.addButton(button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        self.print_button.clicked.connect(self.print_slip)
        self.save_button.clicked.connect(self.save_slip)
        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addWidget(scroll, 1)
        layout.addWidget(buttons)

    def _heading(self) -> str:
        s, kind = self.summary, self.document.title if self.document else "Document"
        assert s is not None
        who = f"{s.patient.name} ({s.patient.patient_id})" if s.patient.name else s.patient.patient_id
        return f"{kind} for {who}: {s.queue.label}, by {s.due_date.isoformat()}. {s.action}"

    def _start(self, source: Any, settings: "SlipSettings | None") -> None:
        """Build and rasterise the document on the background helper."""
        from .worker import run_in_background

        dpi = PREVIEW_DPI * self.devicePixelRatioF()

        def work() -> tuple[EncounterSummary, Any, list[QImage]]:
            summary = source() if callable(source) else source
            document = build_document(summary, settings)
            return summary, document, list(render_pages(document.data, dpi))

        run_in_background(work, self._loaded, self._not_made)

    @Slot(object)
    def _loaded(self, loaded: tuple[EncounterSummary, Any, list[QImage]]) -> None:
        self.summary, self.document, images = loaded
        self.pdf = self.document.data
        self.setWindowTitle(f"{self.document.title}: {self.summary.patient.name or self.summary.patient.patient_id}")
        self.heading.setText(self._heading())
        for image in images:
            image.setDevicePixelRatio(self.devicePixelRatioF())
            page = QLabel()
            page.setPixmap(QPixmap.fromImage(image))
            page.setFrameShape(QLabel.Shape.Box)
            self._pages.addWidget(page)
        self.print_button.setEnabled(True)
        self.save_button.setEnabled(True)
        self.ready.emit()

    @Slot(str)
    def _not_made(self, message: str) -> None:
        log.error("the patient's document could not be made: %s", message)
        self._show_problem(f"The document could not be made: {message}")
        self.ready.emit()

    def _fit_to_screen(self) -> None:
        """Wide enough for a whole page width at preview size, as tall as the screen allows."""
        width, height = 880, 1000
        if screen := self.screen():
            available = screen.availableGeometry()
            width, height = min(width, available.width()), min(height, int(available.height() * 0.9))
        self.resize(width, height)

    def _show_problem(self, text: str) -> None:
        label = QLabel(text)
        label.setWordWrap(True)
        self._pages.addWidget(label)
        self.print_button.setEnabled(False)
        self.save_button.setEnabled(False)

    @property
    def preview_count(self) -> int:
        """Pages shown in the preview (0 when the slip could not be made)."""
        return sum(1 for i in range(self._pages.count())
                   if isinstance(w := self._pages.itemAt(i).widget(), QLabel) and w.pixmap() is not None
                   and not w.pixmap().isNull())

    # ------------------------------------------------------------------ actions

    @Slot()
    def print_slip(self) -> None:
        """Ask for a printer (Qt print dialog) and print the slip on it."""
        printer = QPrinter(QPrinter.PrinterMode.HighResolution)
        printer.setDocName(f"{self.document.title if self.document else 'Slip'} {self.summary.patient.patient_id}")
        dialog = QPrintDialog(printer, self)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        self.print_to(printer)

    def print_to(self, printer: QPrinter) -> bool:
        """Print on an already chosen printer; True when printing started. The pages
        are rasterised at the printer's resolution and painted on the background
        helper (Qt paints on a QPrinter from any thread): seconds for a photo slip
        at 300 dpi, which the window must not wait for. ``printed`` fires once the
        printer has every page; a failure is said in a message."""
        from .worker import run_in_background

        if not self.pdf:
            self._warn("Printing failed", "The slip is still being made: print it again in a moment.")
            return False
        pdf, encounter_id = self.pdf, self.summary.encounter_id
        self.print_button.setEnabled(False)   # one print job at a time
        run_in_background(lambda: paint_pages(printer, pdf), self._printed, self._not_printed)
        log.info("printing the slip of encounter %s", encounter_id)
        return True

    @Slot(object)
    def _printed(self, _pages: int) -> None:
        self.print_button.setEnabled(True)
        self.printed.emit(self.summary.encounter_id)

    @Slot(str)
    def _not_printed(self, message: str) -> None:
        self.print_button.setEnabled(True)
        self._warn("Printing failed", f"The slip was not printed: {message}")

    @Slot()
    def save_slip(self) -> None:
        """Ask where to save the slip and write it there."""
        from ..core.report_names import report_stem

        kind = self.document.kind if self.document else "slip"
        suggested = f"{kind}-{report_stem(self.summary.patient.patient_id, self.summary.encounter_id)}.pdf"
        title = f"Save the {(self.document.title if self.document else 'slip').lower()}"
        path, _ = QFileDialog.getSaveFileName(self, title, suggested, "PDF files (*.pdf)")
        if path:
            self.save_to(Path(path))

    def save_to(self, path: Path) -> bool:
        """Write the slip PDF to ``path``; True when it worked."""
        if path.suffix.lower() != ".pdf":
            path = path.with_name(path.name + ".pdf")
        try:
            path.write_bytes(self.pdf)
        except OSError as exc:
            log.exception("saving the slip to %s failed", path)
            self._warn("Saving failed", f"The slip could not be saved to {path}: {exc.strerror or exc}. "
                       "Choose another folder and try again.")
            return False
        self.saved.emit(self.summary.encounter_id, str(path))
        return True

    def _warn(self, title: str, text: str) -> None:
        """Tell the nurse what went wrong without blocking the window (already logged)."""
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, parent=self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
