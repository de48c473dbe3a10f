"""The referral slip dialog: preview, print (to a PDF printer) and save, read back."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
from pathlib import Path

import pypdf
import pypdfium2 as pdfium
import pytest
from PySide6.QtCore import Qt
from PySide6.QtPrintSupport import QPrinter
from PySide6.QtWidgets import QDialog

from eyescreen_desktop.core.records import Eye, Queue
from eyescreen_desktop.core.reports import SlipSettings
from eyescreen_desktop.gui import slip_dialog
from eyescreen_desktop.gui.queues import QueuesWidget
from eyescreen_desktop.gui.slip_dialog import SlipDialog, page_count
from tests.conftest import FUNDUS_DR

from .clinic_fixtures import TODAY, add_encounter, filled_store, graded_eye, store  # noqa: F401 - fixtures

A4_RATIO = 210 / 297
LETTER_RATIO = 8.5 / 11


@pytest.fixture
def photo_summary(store, tmp_path):
    """An urgent encounter whose eyes are real photographs (copied into tmp_path)."""
    eyes = []
    for eye, grade in ((Eye.RIGHT, 3), (Eye.LEFT, 1)):
        src = FUNDUS_DR / "images" / f"P001_{eye.value}.jpg"
        path = shutil.copy(src, tmp_path / src.name)
        eyes.append(dataclasses.replace(graded_eye(eye, grade), path=str(path)))
    started = dt.datetime.combine(TODAY, dt.time(10, 15))
    encounter_id = add_encounter(store, "P001", "Zoë Ñúñez", tuple(eyes), started)
    return store.encounter_summary(encounter_id)


def _dialog(qtbot, summary, settings=None) -> SlipDialog:
    dialog = SlipDialog(summary, settings or SlipSettings(clinic_name="Riverside Eye Clinic"))
    qtbot.addWidget(dialog)
    with qtbot.waitSignal(dialog.ready, timeout=60_000):   # built and rasterised off the GUI thread
        assert not dialog.print_button.isEnabled()
    return dialog


def _pdf_printer(path: Path) -> QPrinter:
    printer = QPrinter(QPrinter.PrinterMode.HighResolution)
    printer.setOutputFormat(QPrinter.OutputFormat.PdfFormat)
    printer.setOutputFileName(str(path))
    return printer


def _ink(pdf_path: Path) -> float:
    """Share of clearly non-white pixels on page 1 (0: a blank page)."""
    doc = pdfium.PdfDocument(str(pdf_path))
    grey = doc[0].render(scale=0.5, grayscale=True).to_numpy()
    doc.close()
    return float((grey < 200).mean())


def test_preview_shows_every_page_at_the_slip_page_size(qtbot, photo_summary):
    dialog = _dialog(qtbot, photo_summary)
    pages = page_count(dialog.pdf)
    assert pages >= 1 and dialog.preview_count == pages
    assert dialog.print_button.isEnabled() and dialog.save_button.isEnabled()
    first = dialog.findChildren(slip_dialog.QLabel)
    pixmaps = [w.pixmap() for w in first if not w.pixmap().isNull()]
    assert pixmaps[0].width() / pixmaps[0].height() == pytest.approx(A4_RATIO, abs=0.01)
    letter = _dialog(qtbot, photo_summary, SlipSettings(page_size="Letter"))
    size = next(w.pixmap() for w in letter.findChildren(slip_dialog.QLabel) if not w.pixmap().isNull())
    assert size.width() / size.height() == pytest.approx(LETTER_RATIO, abs=0.01)


def test_save_writes_the_slip_with_the_patient_on_it(qtbot, photo_summary, tmp_path, monkeypatch):
    dialog = _dialog(qtbot, photo_summary)
    target = tmp_path / "out" / "slip"
    target.parent.mkdir()
    monkeypatch.setattr(slip_dialog.QFileDialog, "getSaveFileName",
                        staticmethod(lambda *a, **k: (str(target), "PDF files (*.pdf)")))
    with qtbot.waitSignal(dialog.saved) as signal:
        qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert signal.args[0] == photo_summary.encounter_id
    saved = Path(signal.args[1])
    assert saved == target.with_name("slip.pdf")
    text = "".join(page.extract_text() for page in pypdf.PdfReader(saved).pages)
    assert "Zoë Ñúñez" in text and "P001" in text and "Riverside Eye Clinic" in text
    assert any(page.images for page in pypdf.PdfReader(saved).pages)  # the photographs are on it


def test_save_to_an_unwritable_place_says_so(qtbot, photo_summary, tmp_path):
    dialog = _dialog(qtbot, photo_summary)
    with qtbot.assertNotEmitted(dialog.saved):
        assert not dialog.save_to(tmp_path / "no such folder" / "slip.pdf")
    box = dialog.findChild(slip_dialog.QMessageBox)
    assert box is not None and "no such folder" in box.text()


def test_print_paints_every_page_at_printer_resolution(qtbot, photo_summary, tmp_path, monkeypatch):
    dialog = _dialog(qtbot, photo_summary)
    out = tmp_path / "printed.pdf"

    class AcceptingPrintDialog:
        """Stands in for the modal Qt print dialog: the nurse picks a PDF printer and OK."""

        def __init__(self, printer: QPrinter, parent=None) -> None:
            printer.setOutputFormat(QPrinter.OutputFormat.PdfFormat)
            printer.setOutputFileName(str(out))

        def exec(self) -> QDialog.DialogCode:
            return QDialog.DialogCode.Accepted

    monkeypatch.setattr(slip_dialog, "QPrintDialog", AcceptingPrintDialog)
    with qtbot.waitSignal(dialog.printed) as signal:
        qtbot.mouseClick(dialog.print_button, Qt.MouseButton.LeftButton)
    assert signal.args == [photo_summary.encounter_id]
    printed = pypdf.PdfReader(out)
    assert len(printed.pages) == page_count(dialog.pdf)
    image = printed.pages[0].images[0]
    assert image.image.width >= 1500  # rendered for the printer, not the 96 dpi preview
    assert _ink(out) > 0.02


def test_printing_from_the_queue_marks_the_slip_printed(qtbot, filled_store, tmp_path):
    clinic, ids = filled_store
    widget = QueuesWidget(clinic, user="coordinator", today=lambda: TODAY)
    qtbot.addWidget(widget)
    assert widget.select(ids["P002"])
    qtbot.mouseClick(widget.buttons["slip"], Qt.MouseButton.LeftButton)
    dialog = widget.dialog
    assert isinstance(dialog, SlipDialog)
    qtbot.waitUntil(lambda: dialog.preview_count >= 1, timeout=60_000)   # built off the GUI thread
    with qtbot.waitSignal(widget.changed):
        assert dialog.print_to(_pdf_printer(tmp_path / "p.pdf"))
    assert clinic.encounter_summary(ids["P002"]).slip_printed_at is not None
    entry = clinic.audit(f"encounter:{ids['P002']}")[-1]
    assert (entry.action, entry.user) == ("slip printed", "coordinator")
    assert widget.models[Queue.URGENT].data(widget.models[Queue.URGENT].index(
        widget.models[Queue.URGENT].row_of(ids["P002"]), 5)).startswith("Yes, printed")
    assert widget.tabs.tabText(0) == "Urgent (3)"  # printing a slip does not take a patient off the list
    assert clinic.encounter_summary(ids["P002"]).queue is Queue.URGENT


def test_a_slip_that_cannot_be_made_is_explained(qtbot, photo_summary, monkeypatch):
    def broken(*_args, **_kwargs):
        raise OSError("font file missing")

    monkeypatch.setattr(slip_dialog, "build_document", broken)
    dialog = _dialog(qtbot, photo_summary)
    assert dialog.preview_count == 0
    assert not dialog.print_button.isEnabled() and not dialog.save_button.isEnabled()
    texts = [w.text() for w in dialog.findChildren(slip_dialog.QLabel)]
    assert any("could not be made: font file missing" in t for t in texts)


def test_saving_as_pdf_from_the_queue_records_it_like_printing(qtbot, filled_store, tmp_path):
    """Issue 12 item 11: a document saved as PDF counts as issued, and the queue shows it."""
    clinic, ids = filled_store
    widget = QueuesWidget(clinic, user="coordinator", today=lambda: TODAY)
    qtbot.addWidget(widget)
    assert widget.select(ids["P004"])                              # annual: a result letter
    widget.open_slip()
    dialog = widget.dialog
    qtbot.waitUntil(lambda: dialog.preview_count >= 1, timeout=60_000)
    assert dialog.document.kind == "letter" and "Result letter" in dialog.windowTitle()
    with qtbot.waitSignal(widget.changed):
        assert dialog.save_to(tmp_path / "letter.pdf")
    summary = clinic.encounter_summary(ids["P004"])
    assert summary.slip_saved_at is not None and summary.slip_issued_at is not None
    model = widget.models[Queue.ANNUAL]
    assert model.data(model.index(model.row_of(ids["P004"]), 5)).startswith("Yes, saved as PDF")
    text = "".join(p.extract_text() for p in pypdf.PdfReader(tmp_path / "letter.pdf").pages)
    assert "not a diagnosis" in text.lower()


def test_mark_referred_without_a_slip_asks_and_is_recorded(qtbot, filled_store):
    clinic, ids = filled_store
    widget = QueuesWidget(clinic, user="coordinator", today=lambda: TODAY)
    qtbot.addWidget(widget)
    assert widget.select(ids["P001"])
    qtbot.mouseClick(widget.buttons["referred"], Qt.MouseButton.LeftButton)
    assert clinic.encounter_summary(ids["P001"]).state == "open"       # asked first, nothing written yet
    assert "No slip" in widget.dialog.windowTitle()
    with qtbot.waitSignal(widget.changed):
        widget.referred_anyway.click()
    summary = clinic.encounter_summary(ids["P001"])
    assert summary.state == "referred" and summary.referred_without_slip
    widget.state_box.setCurrentIndex(widget.state_box.findData("referred"))
    model = widget.models[Queue.URGENT]
    row = model.row_of(ids["P001"])
    assert model.data(model.index(row, 4)) == "Referred without a slip"
    assert model.data(model.index(row, 5)) == "No, referred without"


def test_printing_rasterises_the_pages_off_the_gui_thread(qtbot, photo_summary, tmp_path, monkeypatch):
    """Issue 20, defect 6: a photo slip at the printer's resolution takes seconds to
    rasterise; the window does not wait for it, and the printout is whole."""
    import threading

    dialog = _dialog(qtbot, photo_summary)
    threads, real = [], slip_dialog.render_pages

    def recorded(pdf, dpi):
        threads.append(threading.current_thread())
        return real(pdf, dpi)

    monkeypatch.setattr(slip_dialog, "render_pages", recorded)
    out = tmp_path / "printed.pdf"
    with qtbot.waitSignal(dialog.printed, timeout=60_000):
        assert dialog.print_to(_pdf_printer(out))
    assert threads and all(t is not threading.main_thread() for t in threads)
    assert len(pypdf.PdfReader(out).pages) == page_count(dialog.pdf) and _ink(out) > 0.02
