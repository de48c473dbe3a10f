"""Page settings, fonts and paragraph styles of every EyeScreen PDF: what a clinic
sets once (:class:`SlipSettings`), the queue colours and headlines, the fonts
registered once per process, and the two paragraph makers (:func:`P` for safe
markup, :func:`U` for untrusted user text)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab import rl_config
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4, LETTER
from reportlab.lib.styles import ParagraphStyle
from reportlab.platypus import Paragraph

from ..paths import resource_file
from ..records import Queue
from .scripts import BASE, FAMILIES, register_family, script_markup

PAGE_SIZES: dict[str, tuple[float, float]] = {"A4": A4, "Letter": LETTER}
SERVICE = "Diabetic eye screening"   # the header's first line when a clinic has not set its name
FONT, FONT_BOLD = BASE.name, BASE.bold_name
# Colour of each queue (ink) and its light tint (background). Words always carry
# the meaning too, so a black-and-white print loses nothing.
QUEUE_COLOURS: dict[Queue, tuple[str, str]] = {
    Queue.URGENT: ("#B71C1C", "#FDECEA"),
    Queue.ROUTINE: ("#C43E00", "#FFF3E0"),
    Queue.REVIEW: ("#4A148C", "#F3E5F5"),
    Queue.ANNUAL: ("#1B5E20", "#E8F5E9"),
}
# The decision's headline on a slip; the action line under it says what to do.
HEADLINES: dict[Queue, str] = {Queue.URGENT: "URGENT REFERRAL", Queue.ROUTINE: "ROUTINE REFERRAL",
                               Queue.REVIEW: "REVIEW NEEDED", Queue.ANNUAL: "ANNUAL SCREENING"}
GREY, RULE, WARN_INK, WARN_BG = "#555555", "#B0B0B0", "#8A4B00", "#FFF8E1"


# --------------------------------------------------------------------------- settings


def default_logo_path() -> Path:
    """The logo EyeScreen ships with (resources/report/logo.png)."""
    return resource_file("report", "logo.png")


@dataclass(frozen=True)
class SlipSettings:
    """What a clinic sets once for its slips and reports.

    ``logo_path`` None prints EyeScreen's default logo and ``show_logo=False``
    prints none; an empty ``clinic_name`` prints "Diabetic eye screening";
    ``operating_point_label`` replaces the printed operating-point name when a
    clinic has its own words for it (e.g. "site-locked 2025-01"). ``page_size``
    is "A4" or "Letter" (any case).
    """

    clinic_name: str = SERVICE
    clinic_address: str = ""
    clinic_phone: str = ""
    logo_path: Path | None = None
    show_logo: bool = True
    page_size: str = "A4"
    operating_point_label: str = ""
    show_heatmaps: bool = True

    def __post_init__(self) -> None:
        match = {k.lower(): k for k in PAGE_SIZES}.get(str(self.page_size).strip().lower())
        if match is None:
            raise ValueError(f"page size must be one of {', '.join(PAGE_SIZES)}, not {self.page_size!r}")
        object.__setattr__(self, "page_size", match)

    @property
    def pagesize(self) -> tuple[float, float]:
        """Width and height in points."""
        return PAGE_SIZES[self.page_size]


# --------------------------------------------------------------------------- text and fonts


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]")


def clean_text(text: object) -> str:
    """User text without control characters (which PDF viewers render as junk)."""
    return _CONTROL.sub("", "" if text is None else str(text))


def para_text(text: object) -> str:
    """User text made safe for a reportlab Paragraph: control characters dropped,
    ``& < >`` escaped so markup prints literally, line breaks kept."""
    s = escape(clean_text(text)).replace("\r\n", "\n").replace("\r", "\n")
    return s.replace("\n", "<br/>")


@functools.lru_cache(maxsize=1)
def register_fonts() -> tuple[str, ...]:
    """Register DejaVu Sans (regular, bold) with reportlab once per process and
    name every face documents may print with: the fallback families of
    :mod:`.scripts` (Arabic, Hebrew, Devanagari, Tamil, CJK) load the first time a
    name needs them (``scripts.register_families`` loads them all).

    Also turns off ASCII85 encoding of image streams: without reportlab's
    optional C accelerator it is done in pure Python and cost a third of a
    slip's time; PDF streams are binary anyway."""
    rl_config.useA85 = 0
    register_family(BASE)
    return tuple(face for fam in FAMILIES for face in dict.fromkeys((fam.name, fam.bold_name)))


@functools.lru_cache(maxsize=1)
def _styles() -> dict[str, ParagraphStyle]:
    """The few paragraph styles slips and summaries use."""
    register_fonts()

    def style(name: str, size: float, bold: bool = False, colour: str = "#000000", **kw: Any) -> ParagraphStyle:
        """DejaVu Sans at ``size`` with a 1.22 leading unless told otherwise."""
        return ParagraphStyle(name, fontName=FONT_BOLD if bold else FONT, fontSize=size, shaping=1,
                              leading=kw.pop("leading", size * 1.22), textColor=colors.HexColor(colour), **kw)

    return {
        "body": style("body", 9),
        "small": style("small", 7.5, colour=GREY),
        "tiny": style("tiny", 6.5, colour=GREY),
        "label": style("label", 6.5, colour=GREY),
        "value": style("value", 10.5),
        "name": style("name", 14, bold=True),
        "clinic": style("clinic", 14, bold=True),
        "title": style("title", 11, bold=True, colour="#333333"),
        "h2": style("h2", 11, bold=True, spaceBefore=8, spaceAfter=3),
        "eye": style("eye", 10, bold=True),
        "finding": style("finding", 10, bold=True),
        "queue": style("queue", 21, bold=True, leading=25),
        "action": style("action", 13, leading=16),
        "due_label": style("due_label", 8, bold=True, alignment=TA_CENTER),
        "due": style("due", 16, bold=True, alignment=TA_CENTER, leading=19),
        "due_note": style("due_note", 7.5, alignment=TA_CENTER, colour=GREY),
        "cell": style("cell", 8),
        "cell_bold": style("cell_bold", 8, bold=True),
        "head": style("head", 7.5, bold=True, colour="#FFFFFF"),
        "qr_caption": style("qr_caption", 6, alignment=TA_CENTER, colour=GREY),
        "footer": style("footer", 7, colour=GREY, leading=8),
    }


def P(text: str, style: str = "body") -> Paragraph:
    """A paragraph from markup that is already safe (see :func:`para_text`), its
    text in the fallback fonts and right-to-left words in visual order
    (:func:`.scripts.script_markup`), so a name in any script prints."""
    chosen = _styles()[style]
    return Paragraph(script_markup(text, bold=chosen.fontName == FONT_BOLD), chosen)


def U(text: object, style: str = "body") -> Paragraph:
    """A paragraph of untrusted user text, escaped, in the fallback fonts."""
    return P(para_text(text), style)
