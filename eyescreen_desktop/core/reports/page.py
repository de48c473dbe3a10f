"""The page every EyeScreen PDF is laid out on: the clinic header (logo, name,
address, title), the footer with "page N of M" on every page, the PDF build
itself, and the atomic write that never leaves half a file behind."""

from __future__ import annotations

import functools
import io
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Flowable, SimpleDocTemplate, Spacer, Table, TableStyle

from ... import __version__
from ..records import EncounterSummary
from .pictures import _logo
from .scripts import text_width
from .style import FONT, FONT_BOLD, GREY, RULE, SERVICE, P, SlipSettings, U, clean_text, register_fonts


class _FooterCanvas(Canvas):
    """A canvas that writes "page N of M" and a footer line on every page (pages
    are held until the end so the total is known)."""

    def __init__(self, *args: Any, footer: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._footer = clean_text(footer)
        self._pages: list[dict[str, Any]] = []

    def showPage(self) -> None:  # noqa: N802 - reportlab's name
        """Hold the finished page until the page count is known."""
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        """Draw every held page with its footer, then write the file."""
        for state in self._pages:
            self.__dict__.update(state)
            self._draw_footer(len(self._pages))
            super().showPage()
        super().save()

    def _draw_footer(self, total: int) -> None:
        width = self._pagesize[0]
        self.saveState()
        self.setFont(FONT, 7)
        self.setFillColor(colors.HexColor(GREY))
        self.setStrokeColor(colors.HexColor(RULE))
        self.line(14 * mm, 11 * mm, width - 14 * mm, 11 * mm)
        page = f"Page {self._pageNumber} of {total}"
        room = width - 28 * mm - pdfmetrics.stringWidth(page, FONT, 7) - 12
        footer = P(escape(fit_text(self._footer, FONT, 7, room)), "footer")
        footer.wrapOn(self, room, 10 * mm)   # a Paragraph, so names in any script print here too
        footer.drawOn(self, 14 * mm, 7.5 * mm - 1)   # its baseline on the page number's
        self.drawRightString(width - 14 * mm, 7.5 * mm, page)
        self.restoreState()


def fit_text(text: str, font: str, size: float, width: float) -> str:
    """``text`` shortened with an ellipsis so it is at most ``width`` points wide
    in the fallback fonts (``font`` bold or not)."""
    bold = font == FONT_BOLD
    if text_width(text, size, bold) <= width:
        return text
    while text and text_width(text + "\u2026", size, bold) > width:
        text = text[:-1]
    return text + "\u2026"


def _build_pdf(story: list[Flowable], settings: SlipSettings, title: str, footer: str) -> bytes:
    """Lay the story out on pages and return the PDF bytes."""
    register_fonts()
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf, pagesize=settings.pagesize, leftMargin=14 * mm, rightMargin=14 * mm, topMargin=12 * mm,
        bottomMargin=16 * mm, title=clean_text(title), author=clean_text(settings.clinic_name),
        creator=f"EyeScreen {__version__}", subject="Diabetic retinopathy screening",
    )
    doc.build(story, canvasmaker=functools.partial(_FooterCanvas, footer=footer))
    return buf.getvalue()


def patient_pdf(summary: EncounterSummary, story: Callable[[EncounterSummary, SlipSettings], list[Flowable]],
                settings: SlipSettings | None, label: str) -> bytes:
    """One patient's document as PDF bytes, with the footer and title every such
    document carries (``label`` names it: "Review slip", "Result letter")."""
    settings = settings or SlipSettings()
    footer = (f"{label} \u00b7 patient {summary.patient.patient_id} \u00b7 encounter {summary.encounter_id} "
              "\u00b7 screening aid, not a diagnosis")
    return _build_pdf(story(summary, settings), settings, f"EyeScreen {label.lower()} \u2013 patient "
                      f"{summary.patient.patient_id}", footer)


def _write_atomic(data: bytes, path: Path) -> Path:
    """Write ``data`` to ``path`` via a temporary file, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def screening_title(settings: SlipSettings, document: str) -> str:
    """The title under the clinic's name: ``Diabetic eye screening \u2013 referral slip``,
    or only ``Referral slip`` when the clinic's line already says "diabetic eye
    screening" (the default header said it twice)."""
    if SERVICE.lower() in (settings.clinic_name or SERVICE).lower():
        return document[:1].upper() + document[1:]
    return f"{SERVICE} \u2013 {document[:1].lower() + document[1:]}"


def _header(settings: SlipSettings, title: str, width: float, right: Flowable | None = None) -> Table:
    """Clinic header: logo, clinic name and address, document title; ``right``
    (the QR code on a slip) in the top-right corner."""
    logo = _logo(settings, 26 * mm, 16 * mm)
    lines = [U(settings.clinic_name or SERVICE, "clinic")]
    if settings.clinic_address:
        lines.append(U(settings.clinic_address, "small"))
    if settings.clinic_phone:
        lines.append(U(settings.clinic_phone, "small"))
    lines.append(Spacer(1, 3))
    lines.append(P(title, "title"))
    right_w = 30 * mm if right is not None else 0
    logo_w = 30 * mm if logo is not None else 0
    table = Table([[logo or "", lines, right or ""]], colWidths=[logo_w, width - logo_w - right_w, right_w])
    table.setStyle(TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("LEFTPADDING", (0, 0), (-1, -1), 0), ("RIGHTPADDING", (0, 0), (-1, -1), 0),
        ("TOPPADDING", (0, 0), (-1, -1), 0), ("BOTTOMPADDING", (0, 0), (-1, -1), 4),
        ("LINEBELOW", (0, 0), (-1, 0), 1.2, colors.HexColor("#333333")),
    ]))
    return table
