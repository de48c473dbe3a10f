"""Shared layout of every EyeScreen PDF: fonts and styles, words for findings and
quality, photograph and heat-map boxes, the page header and footer, the patient,
decision, eyes and provenance blocks and the disclaimer.

The referral slip, the result letter, the review slip and the batch summary are
all built from these, so a change of wording or of the header shows on every
document at once."""

from __future__ import annotations

import datetime as dt
import functools
import io
import logging
import os
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import cv2
import numpy as np
from reportlab import rl_config
from reportlab.graphics.barcode.qr import QrCode
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4, LETTER
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Flowable, Image, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from ... import __version__
from ...domain.vocabulary import REASON_WORDS, reason_words  # noqa: F401 - REASON_WORDS re-exported by reports
from .. import imageio
from ..evidence import eye_evidence, format_probability, quality_line
from ..fundus import channel_max
from ..heatmap import NO_AREA_TEXT
from ..paths import resource_file
from ..protocol import PROTOCOLS
from ..records import PHOTO_QUALITY_BORDERLINE, EncounterSummary, Eye, EyeResult, OperatingPoint, Queue, Status
from .scripts import BASE, FAMILIES, register_family, script_markup, text_width

log = logging.getLogger(__name__)

PAGE_SIZES: dict[str, tuple[float, float]] = {"A4": A4, "Letter": LETTER}
SERVICE = "Diabetic eye screening"   # the header's first line when a clinic has not set its name
FONT, FONT_BOLD = BASE.name, BASE.bold_name
DISCLAIMER = (
    "The findings come from an automated analysis of "
    "fundus photographs and must be confirmed by an eye-care professional. A result without referral "
    "does not rule out eye disease: a patient with new visual symptoms needs an eye examination whatever "
    "the screening result."
)
PHOTO_PX = 360      # long side of the embedded photograph thumbnails
HEATMAP_PX = 256    # side of the embedded heat-map thumbnails

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


# --------------------------------------------------------------------------- words


def format_date(d: dt.date | None) -> str:
    """A date no reader can misread: ``12 Mar 2025`` (never 03/12)."""
    return f"{d.day} {d:%b %Y}" if d else "not recorded"


def format_datetime(t: dt.datetime | None) -> str:
    """``12 Mar 2025, 14:05``."""
    return f"{format_date(t.date())}, {t:%H:%M}" if t else "not recorded"


def age_on(birth: dt.date | None, day: dt.date) -> int | None:
    """Age in whole years on ``day``."""
    if birth is None:
        return None
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def eye_heading(eye: Eye) -> str:
    """Column heading for an eye, with the Latin abbreviation clinicians use."""
    return {Eye.RIGHT: "RIGHT EYE (OD)", Eye.LEFT: "LEFT EYE (OS)"}.get(eye, "EYE, SIDE UNKNOWN")


def quality_note(result: EyeResult) -> str:
    """One line for the reader about why an eye has no grade (empty when graded),
    e.g. ``Left eye could not be graded: out of focus``."""
    eye = result.eye.label.capitalize()
    reasons = reason_words(result.quality.reasons) if result.quality else ""
    if result.status is Status.OK:
        return ""
    if result.status is Status.UNGRADABLE:
        return f"{eye} could not be graded" + (f": {reasons}" if reasons else "")
    if result.status is Status.NOT_FUNDUS:
        return f"{eye}: the picture is not a fundus photograph"
    return f"{eye}: the photograph file could not be read"


def quality_advice(result: EyeResult) -> str:
    """What to do about an ungraded eye (the gate's advice, else the engine's message)."""
    if result.status is Status.OK:
        return ""
    advice = result.quality.advice if result.quality and result.quality.advice else ""
    return advice or result.message or "Retake the photograph, or examine the eye in person"


def eye_finding_short(result: EyeResult) -> str:
    """A few words for tables: ``ICDR 3 severe non-proliferative ...`` or ``ungradable (out of focus)``."""
    if result.status is Status.OK and result.decision is not None:
        return f"{result.decision.code}: {result.decision.finding}"
    if result.status is Status.UNGRADABLE:
        reasons = reason_words(result.quality.reasons) if result.quality else ""
        return "ungradable" + (f" ({reasons})" if reasons else "")
    if result.status is Status.NOT_FUNDUS:
        return Status.NOT_FUNDUS.label
    return Status.ERROR.label


def due_note(summary: EncounterSummary) -> str:
    """How the due date relates to the visit: ``14 days after screening``."""
    days = (summary.due_date - summary.started_at.date()).days
    if days <= 0:
        return "same day as screening"
    return f"{days} day{'s' if days != 1 else ''} after screening"


def due_label(queue: Queue) -> str:
    """What the due date means for this queue."""
    return {Queue.URGENT: "SEE BY", Queue.ROUTINE: "SEE BY", Queue.ANNUAL: "RESCREEN BY"}.get(queue, "ACT BY")


def operating_point_text(summary: EncounterSummary, settings: SlipSettings) -> str:
    """The operating point's name and thresholds, or the clinic's own label."""
    op = summary.operating_point
    thresholds = (f"referable \u2265 {op.referable:.2f}, urgent \u2265 {op.urgent:.2f}, "
                  f"maculopathy \u2265 {op.maculopathy:.2f}") if op else ""
    name = settings.operating_point_label or (op.name if op else "not recorded")
    return f"{name} ({thresholds})" if thresholds else name


def protocol_text(name: str) -> str:
    """``icdr-ada - ICDR grading, ADA follow-up timing``."""
    proto = PROTOCOLS.get(name)
    return f"{name} \u2013 {proto.title}" if proto else name


# --------------------------------------------------------------------------- pictures


def _encode_jpeg(rgb: np.ndarray, quality: int = 85) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("could not encode a thumbnail")
    return buf.tobytes()


@functools.lru_cache(maxsize=32)
def _thumbnail_cached(path: str, mtime_ns: int, size: int) -> np.ndarray | None:
    """The photograph at PHOTO_PX long side (read-only array), or None if unreadable."""
    try:
        rgb = imageio.read_image(Path(path), max_side=PHOTO_PX)
    except (imageio.ImageReadError, OSError, ValueError) as exc:
        log.warning("slip: no thumbnail for %s: %s", path, exc)
        return None
    scale = PHOTO_PX / max(rgb.shape[:2])
    if scale < 1:
        rgb = cv2.resize(rgb, (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale))),
                         interpolation=cv2.INTER_AREA)
    rgb = np.ascontiguousarray(rgb)
    rgb.setflags(write=False)
    return rgb


def photo_thumbnail(path: str | os.PathLike[str]) -> np.ndarray | None:
    """A small RGB copy of the photograph for a slip, cached by path and mtime;
    None when the file is gone or unreadable (the slip then says so)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return _thumbnail_cached(str(path), st.st_mtime_ns, st.st_size)


def heatmap_overlay(photo: np.ndarray, heatmap: Any, px: int = HEATMAP_PX) -> np.ndarray | None:
    """The heat map in colour over the photograph as the model saw it (cropped to
    the field of view and colour-normalised), ``px`` square; None if it fails."""
    from ..preprocess import MASK_RADIUS, disc_mask, model_frame, preprocess

    try:
        heat = np.nan_to_num(np.asarray(heatmap, np.float32)).clip(0.0, 1.0)
        if heat.ndim != 2 or min(heat.shape) < 1:
            raise ValueError(f"heat map must be a 2-D array, got shape {heat.shape}")
        photo = np.asarray(photo)
        base = preprocess(photo, px, model_frame(photo)).astype(np.float32)   # framed as the model saw it
    except Exception as exc:  # noqa: BLE001 - a slip without heat map beats no slip
        log.warning("slip: heat map not drawn: %s", exc)
        return None
    heat = cv2.resize(heat, (px, px), interpolation=cv2.INTER_LINEAR)
    colour = cv2.cvtColor(cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    alpha = (0.10 + 0.55 * heat)[..., None]
    out = base * (1 - alpha) + colour.astype(np.float32) * alpha
    out[~disc_mask(px, MASK_RADIUS)] = 0
    return out.clip(0, 255).astype(np.uint8)


def _image_flowable(rgb: np.ndarray, box_w: float, box_h: float) -> Image:
    """An embedded JPEG scaled to fit ``box_w`` x ``box_h`` points, aspect kept."""
    h, w = rgb.shape[:2]
    scale = min(box_w / w, box_h / h)
    return Image(io.BytesIO(_encode_jpeg(rgb)), width=w * scale, height=h * scale)


LOGO_MAX_PX = 400


@functools.lru_cache(maxsize=8)
def _logo_png(path: str, mtime_ns: int) -> tuple[bytes, int, int] | None:
    """The logo as a small PNG (transparency kept), so a 20-megapixel logo file
    does not make every slip 20 MB; None when unreadable."""
    try:
        img = cv2.imdecode(np.frombuffer(Path(path).read_bytes(), np.uint8), cv2.IMREAD_UNCHANGED)
    except OSError:
        img = None
    if img is None or img.ndim not in (2, 3) or min(img.shape[:2]) < 1:
        log.warning("slip: the logo %s could not be read; printing without it", path)
        return None
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    scale = LOGO_MAX_PX / max(img.shape[:2])
    if scale < 1:
        img = cv2.resize(img, (max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale))),
                         interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".png", img)
    return (buf.tobytes(), img.shape[1], img.shape[0]) if ok else None


def _logo(settings: SlipSettings, box_w: float, box_h: float) -> Flowable | None:
    """The clinic logo, loaded once per file version; None when switched off or
    unreadable (a slip without logo beats no slip)."""
    if not settings.show_logo:
        return None
    path = settings.logo_path or default_logo_path()
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError:
        log.warning("slip: the logo %s does not exist; printing without it", path)
        return None
    loaded = _logo_png(str(path), mtime)
    if loaded is None:
        return None
    data, w, h = loaded
    scale = min(box_w / w, box_h / h)
    return Image(io.BytesIO(data), width=w * scale, height=h * scale, mask="auto")


def qr_code(value: str, size: float) -> Flowable:
    """A QR code of ``value`` (the encounter ID), ``size`` points square, quiet
    zone included; error-correction level M survives a crease in the paper."""
    return QrCode(clean_text(value) or "-", width=size, height=size, qrLevel="M", qrBorder=4)


# --------------------------------------------------------------------------- page furniture


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


# --------------------------------------------------------------------------- referral slip


def _field(label: str, value: object, style: str = "value") -> list[Paragraph]:
    """A labelled value: small grey label above the (escaped) value."""
    return [P(escape(label.upper()), "label"), U(value if value not in (None, "") else "not recorded", style)]


def _patient_block(summary: EncounterSummary, width: float) -> Table:
    """Name, ID, birth date (with age), sex, when screened and the encounter ID."""
    p = summary.patient
    age = age_on(p.birth_date, summary.started_at.date())
    born = format_date(p.birth_date) + (f" (age {age})" if age is not None else "") if p.birth_date else ""
    diabetes = " ".join(x for x in (clean_text(p.diabetes_type),
                                    f"for {p.diabetes_years} years" if p.diabetes_years is not None else "") if x)
    rows = [
        [_field("Patient", p.name or "(no name recorded)", "name"), "", _field("Patient ID", p.patient_id, "name"), ""],
        [_field("Birth date", born), _field("Sex", p.sex), _field("Screened", format_datetime(summary.started_at)),
         _field("Diabetes", diabetes)],
        [_field("Encounter ID", summary.encounter_id, "cell"), "", "", ""],
    ]
    table = Table(rows, colWidths=[width * f for f in (0.27, 0.18, 0.30, 0.25)])
    table.setStyle(TableStyle([
        ("SPAN", (0, 0), (1, 0)), ("SPAN", (2, 0), (3, 0)), ("SPAN", (0, 2), (3, 2)),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LEFTPADDING", (0, 0), (-1, -1), 0), ("TOPPADDING", (0, 0), (-1, -1), 3),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]))
    return table


def _decision_block(summary: EncounterSummary, width: float) -> Table:
    """The decision in large type: queue, what to do, and the due date boxed."""
    ink, tint = QUEUE_COLOURS[summary.queue]
    left = [P(f'<font color="{ink}">{escape(HEADLINES[summary.queue])}</font>', "queue"),
            U(summary.action, "action")]
    if summary.queue_note and not summary.overridden:
        left += [Spacer(1, 3), U(summary.queue_note[:1].upper() + summary.queue_note[1:] + ".", "finding")]
    if summary.override_reason:
        was = (f" (the screening gave {summary.computed_queue.label.lower()})"
               if summary.computed_queue and summary.computed_queue is not summary.queue else "")
        left += [Spacer(1, 3), U(f"Queue set by a clinician{was}: {summary.override_reason}", "body")]
    if summary.state != "open":
        left += [Spacer(1, 2), U(f"State: {summary.state}", "small")]
    if grading_words(summary):
        left += [Spacer(1, 3), U(grading_words(summary), "body")]
    if summary.supersedes:
        left += [Spacer(1, 2), U(summary.supersedes, "small")]
    due = [P(due_label(summary.queue), "due_label"), P(escape(format_date(summary.due_date)), "due"),
           P(escape(due_note(summary)), "due_note")]
    return decision_box(summary.queue, left, due, width)


def grading_words(summary: EncounterSummary) -> str:
    """The "graded by" line of a patient's document, or the note that a second
    grader has yet to arbitrate (the more urgent outcome stands meanwhile)."""
    if summary.grading_state == "arbitration_pending":
        return (f"Graded by {summary.graded_by}; the grader and EyeScreen differ, so a second grader will "
                "arbitrate. This referral stands meanwhile; you will hear from us if it changes.")
    if summary.grading_state == "arbitrated":
        return f"Graded by {summary.graded_by} (arbitration)."
    if summary.grading_state == "final":
        return f"Graded by {summary.graded_by}."
    return ""


def decision_box(queue: Queue, left: list[Flowable], due: list[Flowable], width: float) -> Table:
    """The queue-coloured box of a decision with the due date boxed on the right
    (slips and the result letter share it)."""
    ink, tint = QUEUE_COLOURS[queue]
    due_w = 44 * mm
    table = Table([[left, due]], colWidths=[width - due_w, due_w])
    table.setStyle(TableStyle([
        ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor(tint)),
        ("BACKGROUND", (1, 0), (1, 0), colors.white),
        ("BOX", (0, 0), (-1, -1), 0.8, colors.HexColor(ink)),
        ("BOX", (1, 0), (1, 0), 1.6, colors.HexColor(ink)),
        ("LINEBEFORE", (0, 0), (0, 0), 7, colors.HexColor(ink), 0),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("LEFTPADDING", (0, 0), (0, 0), 12), ("TOPPADDING", (0, 0), (-1, -1), 8),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 9),
    ]))
    return table


def trim_black(rgb: np.ndarray, level: int = 20) -> np.ndarray:
    """The photograph without the camera's black surround (plus a small margin),
    so the retina fills the thumbnail."""
    bright = channel_max(rgb) > level
    rows, cols = np.flatnonzero(bright.mean(axis=1) > 0.02), np.flatnonzero(bright.mean(axis=0) > 0.02)
    if len(rows) < 8 or len(cols) < 8:
        return rgb
    m = max(2, round(0.01 * max(rgb.shape[:2])))
    return rgb[max(0, rows[0] - m):rows[-1] + m + 1, max(0, cols[0] - m):cols[-1] + m + 1]


def _eye_pictures(result: EyeResult, width: float, settings: SlipSettings) -> Flowable:
    """Photograph and (when present) heat map side by side at the same height,
    with captions."""
    photo = photo_thumbnail(result.path) if result.path else None
    if photo is None:
        return _warning_box([U("No picture: the photograph file is not available "
                               f"({Path(result.path).name if result.path else 'no file'}).", "small")])
    heat = heatmap_overlay(photo, result.heatmap) if (settings.show_heatmaps and result.heatmap is not None) else None
    pictures = [trim_black(photo)] + ([heat] if heat is not None else [])
    captions = ["Photograph"] + (["Heat map: where the model saw signs of disease"] if heat is not None else [])
    if heat is None and settings.show_heatmaps and result.status is Status.OK:
        captions[0] = f"Photograph. {NO_AREA_TEXT}"  # maps are kept only for referred eyes
    gap = 8.0 if heat is not None else 0.0
    aspects = [p.shape[1] / p.shape[0] for p in pictures]
    height = min(42 * mm, (width - gap - 2 * len(pictures)) / sum(aspects))
    images: list[Any] = [_image_flowable(p, a * height, height) for p, a in zip(pictures, aspects)]
    words: list[Any] = [P(escape(c), "tiny") for c in captions]
    widths = [a * height + 2 for a in aspects]
    if heat is not None:  # a narrow empty column keeps the two pictures apart
        images.insert(1, "")
        words.insert(1, "")
        widths.insert(1, gap)
    return Table([images, words], colWidths=widths, style=_PICTURE_STYLE, hAlign="LEFT")


_PICTURE_STYLE = TableStyle([
    ("ALIGN", (0, 0), (-1, 0), "LEFT"), ("VALIGN", (0, 0), (-1, 0), "MIDDLE"),
    ("LEFTPADDING", (0, 0), (-1, -1), 1), ("RIGHTPADDING", (0, 0), (-1, -1), 1),
    ("TOPPADDING", (0, 0), (-1, -1), 1), ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
])


def _eye_words(result: EyeResult, op: OperatingPoint | None = None) -> list[Flowable]:
    """Finding, probabilities and quality notes of one eye: what the evidence
    supports against the clinic's thresholds (``op``), then the protocol's code."""
    out: list[Flowable] = []
    if result.status is Status.OK and result.decision is not None:
        d = result.decision
        evidence = eye_evidence(result, op)
        for e in evidence:
            out.append(P(f"<b>{escape(e.headline)}</b> ({escape(e.basis)})", "body"))
        grade = f" (ICDR grade {d.grade})" if d.grade is not None and not d.code.startswith("ICDR") else ""
        out.append(U(f"Protocol code: {d.code}{grade}", "small" if evidence else "body"))
        if result.p_checkup is not None:   # external-eye photograph: an eye check, never a DR grade
            out.insert(0, U(f"{d.finding[:1].upper()}{d.finding[1:]}", "finding"))
            out.append(P(escape("Photograph of the front of the eye (eye check, not a diabetic-retinopathy "
                                f"grade). Probability that an eye check-up is needed: "
                                f"{format_probability(result.p_checkup)}"), "small"))
        elif result.quality is not None and result.quality.borderline:
            out.append(P(f'<font color="{WARN_INK}">Image quality: {PHOTO_QUALITY_BORDERLINE}</font>', "small"))
        else:
            out.append(P(f'<font color="#1B5E20">{escape(quality_line(result))}</font>', "small"))
    else:
        out.append(_warning_box([U(quality_note(result), "finding"), U(quality_advice(result), "body")]))
    if result.path:
        out.append(U(f"File: {Path(result.path).name}", "tiny"))
    return out


def _warning_box(content: list[Flowable]) -> Table:
    """An amber box for what could not be graded."""
    table = Table([[content]])
    table.setStyle(TableStyle([
        ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor(WARN_BG)),
        ("BOX", (0, 0), (-1, -1), 0.8, colors.HexColor(WARN_INK)),
        ("LEFTPADDING", (0, 0), (-1, -1), 5), ("TOPPADDING", (0, 0), (-1, -1), 3),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 4),
    ]))
    return table


def missing_words(summary: EncounterSummary, side: Eye) -> str:
    """Why this eye has no photograph, when staff recorded it; else ''."""
    return next((m.words for m in summary.missing_eyes if m.eye is side), "")


def _eye_cell(result: EyeResult | None, side: Eye, width: float, settings: SlipSettings,
              missing: str = "", op: OperatingPoint | None = None) -> list[Flowable]:
    """Everything about one eye, for one column of the eyes table."""
    if result is None:
        words = f"Not photographed: {missing}." if missing else "No photograph of this eye in this encounter."
        return [P(escape(eye_heading(side)), "eye"), Spacer(1, 4), U(words, "body")]
    ink = QUEUE_COLOURS[result.queue][0]
    heading = (f'{escape(eye_heading(result.eye))}'
               f'<font color="{ink}" size="8">  \u25cf {escape(result.queue.value)}</font>')
    pictures: list[Flowable] = [] if result.status is Status.ERROR else [_eye_pictures(result, width, settings),
                                                                         Spacer(1, 3)]
    return [P(heading, "eye"), Spacer(1, 3), *pictures, *_eye_words(result, op)]


def eye_pairs(eyes: Sequence[EyeResult]) -> list[tuple[tuple[EyeResult | None, Eye], tuple[EyeResult | None, Eye]]]:
    """Eyes in rows of two: right eye on the left, left eye on the right (as the
    clinician faces the patient); extra photographs and eyes of unknown side
    follow in further rows."""
    right = [e for e in eyes if e.eye is Eye.RIGHT]
    left = [e for e in eyes if e.eye is Eye.LEFT]
    other = [e for e in eyes if e.eye is Eye.UNKNOWN]
    rows = []
    for i in range(max(len(right), len(left), 0 if other else 1)):
        rows.append(((right[i] if i < len(right) else None, Eye.RIGHT),
                     (left[i] if i < len(left) else None, Eye.LEFT)))
    for i in range(0, len(other), 2):
        second = other[i + 1] if i + 1 < len(other) else None
        rows.append(((other[i], Eye.UNKNOWN), (second, Eye.UNKNOWN)))
    return rows


def _eyes_block(summary: EncounterSummary, width: float, settings: SlipSettings) -> list[Flowable]:
    """The eyes side by side, one table row per pair."""
    col = (width - 8) / 2
    out: list[Flowable] = []
    for (a, side_a), (b, side_b) in eye_pairs(summary.eyes):
        op = summary.operating_point
        right_cell = _eye_cell(a, side_a, col - 12, settings, missing_words(summary, side_a), op)
        left_cell = _eye_cell(b, side_b, col - 12, settings, missing_words(summary, side_b), op) \
            if (b is not None or side_b is not Eye.UNKNOWN) else ""
        table = Table([[right_cell, "", left_cell]], colWidths=[col, 8, col])
        boxes = [("BOX", (0, 0), (0, 0), 0.6, colors.HexColor(RULE))]
        if left_cell != "":
            boxes.append(("BOX", (2, 0), (2, 0), 0.6, colors.HexColor(RULE)))
        table.setStyle(TableStyle([
            *boxes, ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("LEFTPADDING", (0, 0), (-1, -1), 6), ("RIGHTPADDING", (0, 0), (-1, -1), 6),
            ("TOPPADDING", (0, 0), (-1, -1), 5), ("BOTTOMPADDING", (0, 0), (-1, -1), 6),
        ]))
        out += [table, Spacer(1, 5)]
    return out


def sha_markup(sha: str) -> str:
    """A SHA-256 printed once, in full, its first 12 characters bold (what staff
    compare against the model card); it was printed short and then again in full."""
    sha = clean_text(sha)
    return f"<b>{escape(sha[:12])}</b>{escape(sha[12:])}"


def gate_text(summary: EncounterSummary) -> str:
    """The gate(s) that let this visit's photographs through (``core.gate``), or
    that only the hand-made checks ran."""
    gates = sorted({e.gate for e in summary.eyes if e.gate})
    return ", ".join(gates) if gates else "hand-made checks only"


def _provenance_block(summary: EncounterSummary, settings: SlipSettings, width: float) -> Table:
    """Model, weights hash, protocol, operating point: enough to trace the result."""
    m = summary.model
    sha = clean_text(m.sha256) if m else ""
    rows = [
        ("Model", f"{m.name} {m.version}" if m else "not recorded"),
        ("Image gate", gate_text(summary)),
        ("Weights SHA-256", sha_markup(sha) if sha else "not recorded"),
        ("Protocol", protocol_text(summary.protocol_name)),
        ("Operating point", operating_point_text(summary, settings)),
        ("Slip printed", format_datetime(dt.datetime.now()) + f" by EyeScreen {__version__}"),
    ]
    cells = [[P(escape(k), "small"), P(v, "tiny") if k == "Weights SHA-256" else U(v, "small")] for k, v in rows]
    table = Table(cells, colWidths=[30 * mm, width - 30 * mm])
    table.setStyle(TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0),
        ("TOPPADDING", (0, 0), (-1, -1), 0.5), ("BOTTOMPADDING", (0, 0), (-1, -1), 0.5),
    ]))
    return table


def _disclaimer(width: float) -> Table:
    """The "screening aid, not a diagnosis" statement, boxed so it is read."""
    table = Table([[P(f"<b>Screening aid, not a diagnosis.</b> {escape(DISCLAIMER)}", "small")]],
                  colWidths=[width])
    table.setStyle(TableStyle([
        ("BOX", (0, 0), (-1, -1), 0.6, colors.HexColor("#333333")),
        ("LEFTPADDING", (0, 0), (-1, -1), 6), ("TOPPADDING", (0, 0), (-1, -1), 4),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 5),
    ]))
    return table


def _qr_block(encounter_id: str) -> list[Flowable]:
    """QR code of the encounter ID with its caption."""
    return [qr_code(encounter_id, 22 * mm), P("Encounter ID", "qr_caption")]


