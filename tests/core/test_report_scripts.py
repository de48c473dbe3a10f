"""Names in every script on every PDF (issue 24, item 6), read back from the PDF itself.

Each document is checked through what the PDF embeds: every embedded TrueType
subset is opened with fontTools and each of its codes looked up through the
subset's own character map, so a character drawn as the missing-glyph box
(.notdef) is caught; the font each script needs must be embedded; characters
printed unshaped must be in the fonts' ToUnicode maps. Right-to-left names are
checked in visual order from pdfium's character positions."""

from __future__ import annotations

import dataclasses
import io
import re
import unicodedata
from pathlib import Path

import pypdf
import pypdfium2 as pdfium
import pytest
from fontTools.ttLib import TTFont

from eyescreen_desktop.core import reports
from eyescreen_desktop.core.records import Eye, Patient, Status
from tests.core.report_fixtures import (
    mixed_batch,
    not_graded,
    pdf_text,
    urgent_with_ungradable_eye,
)

# name, the font its script needs, whether its characters print unshaped (so they are
# in the ToUnicode maps one for one; shaped scripts print glyphs of ligatures and forms)
SCRIPTS = {
    "latin": ("Zoë Ñúñez", "DejaVuSans-Bold", True),
    "greek": ("Ελένη Παπαδοπούλου", "DejaVuSans-Bold", True),
    "cyrillic": ("Наталья Иванова", "DejaVuSans-Bold", True),
    "chinese": ("王芳 Wang", "WenQuanYiMicroHei", True),
    "japanese": ("山田 さくら", "WenQuanYiMicroHei", True),
    "korean": ("김민준", "WenQuanYiMicroHei", True),
    "devanagari": ("प्रिया शर्मा", "NotoSansDevanagari-Bold", False),
    "tamil": ("கார்த்திக் Raj", "NotoSansTamil-Bold", False),
    "arabic": ("محمد علي", "NotoSansArabic-Bold", False),
    "hebrew": ("דוד כהן", "NotoSansHebrew-Bold", True),
}


@dataclasses.dataclass
class EmbeddedFont:
    name: str
    chars: set[str]            # what its codes stand for (ToUnicode)
    notdef: set[str]           # characters whose code draws the missing-glyph box


def _to_unicode(font: pypdf.generic.DictionaryObject) -> dict[int, str]:
    """code -> text from the font's ToUnicode CMap (bfchar entries, as reportlab writes them)."""
    data = font["/ToUnicode"].get_object().get_data().decode("latin-1")
    out = {}
    for code, text in re.findall(r"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", data.split("beginbfchar", 1)[-1]):
        out[int(code, 16)] = bytes.fromhex(text).decode("utf-16-be")
    return out


def _used_codes(page: pypdf.PageObject) -> dict[str, set[int]]:
    """Font resource name -> the codes the page's text operators show with it."""
    used: dict[str, set[int]] = {}
    current = ""
    for operands, operator in pypdf.generic.ContentStream(page.get_contents(), page.pdf).operations:
        if operator == b"Tf":
            current = str(operands[0])
        elif operator in (b"Tj", b"'", b'"', b"TJ"):
            parts = operands[-1] if operator == b"TJ" else [operands[-1]]
            for part in parts:
                if isinstance(part, (pypdf.generic.ByteStringObject, pypdf.generic.TextStringObject)):
                    raw = part.original_bytes if hasattr(part, "original_bytes") else bytes(part)
                    used.setdefault(current, set()).update(raw)
    return used


def embedded_font_glyphs(pdf: bytes) -> list[EmbeddedFont]:
    """Every embedded TrueType subset with the characters the pages draw with it and
    those among them drawn as .notdef (the missing-glyph box)."""
    fonts: dict[str, EmbeddedFont] = {}
    for page in pypdf.PdfReader(io.BytesIO(pdf)).pages:
        used = _used_codes(page)
        for resource, ref in page["/Resources"].get_object().get("/Font", {}).items():
            font = ref.get_object()
            descriptor = font.get("/FontDescriptor")
            if descriptor is None or "/FontFile2" not in descriptor.get_object():
                continue
            key = str(font["/BaseFont"]).lstrip("/")
            program = TTFont(io.BytesIO(descriptor.get_object()["/FontFile2"].get_object().get_data()))
            cmap: dict[int, str] = {}
            for table in program["cmap"].tables:
                cmap.update(table.cmap)
            order = program.getGlyphOrder()
            base = re.sub(r"-\d+$", "", re.sub(r"^[A-Z]{6}\+", "", key))  # subset prefix, collection index
            entry = fonts.setdefault(key, EmbeddedFont(base, set(), set()))
            to_unicode = _to_unicode(font)
            for code in used.get(str(resource), ()):
                text = to_unicode.get(code, "?")
                entry.chars.add(text)
                if cmap.get(code, ".notdef") in (".notdef", order[0]) and not text.isspace():
                    entry.notdef.add(text)
    return [f for f in fonts.values() if f.chars]


def visual_line(pdf: bytes, needle: set[str]) -> str:
    """The characters of the first page's text line holding any of ``needle``, left to right."""
    page = pdfium.PdfDocument(pdf)[0]
    text = page.get_textpage()
    lines: dict[int, list[tuple[float, str]]] = {}
    for i in range(text.count_chars()):
        ch = text.get_text_range(i, 1)
        left, bottom, _right, _top = text.get_charbox(i, loose=True)
        lines.setdefault(round(bottom), []).append((left, ch))
    for _y, chars in sorted(lines.items(), reverse=True):
        if (needle - {" "}) & {c for _x, c in chars}:
            return "".join(c for _x, c in sorted(chars, key=lambda t: t[0]) if c not in "\r\n")
    return ""


def _check_names(pdf: bytes, name: str, font: str, unshaped: bool) -> None:
    fonts = embedded_font_glyphs(pdf)
    boxes = {f.name: sorted(f.notdef) for f in fonts if f.notdef}
    assert not boxes, f"characters printed as boxes: {boxes}"
    assert font in {f.name for f in fonts}, f"{name!r} needs {font}; embedded: {[f.name for f in fonts]}"
    if unshaped:
        drawn = set().union(*(f.chars for f in fonts))
        assert set(name.replace(" ", "")) <= drawn, set(name.replace(" ", "")) - drawn


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("document", ["slip", "letter", "review"])
def test_every_script_prints_on_every_patient_document(script, document):
    """Slip, result letter and review slip print the name in its own script, with a glyph for each character."""
    name, font, unshaped = SCRIPTS[script]
    summary = urgent_with_ungradable_eye(name=name, patient_id=f"P-{script}")
    pdf = {"slip": reports.slip_pdf_bytes, "letter": reports.letter_pdf_bytes,
           "review": reports.review_pdf_bytes}[document](summary)
    _check_names(pdf, name, font, unshaped)


def test_hebrew_name_reads_right_to_left():
    """דוד כהן: the first name stands rightmost, its letters right to left."""
    name = "דוד כהן"
    line = visual_line(reports.slip_pdf_bytes(urgent_with_ungradable_eye(name=name)), set(name))
    assert name[::-1] in line, line


def test_arabic_name_is_joined_and_reads_right_to_left():
    """محمد علي: letters in their joined forms (presentation forms in the PDF), in visual order."""
    name = "محمد علي"
    pdf = reports.slip_pdf_bytes(urgent_with_ungradable_eye(name=name))
    forms = {unicodedata.lookup(n) for n in ("ARABIC LETTER MEEM INITIAL FORM", "ARABIC LETTER AIN INITIAL FORM")}
    arabic = set().union(*(f.chars for f in embedded_font_glyphs(pdf) if f.name.startswith("NotoSansArabic")))
    assert forms <= arabic, arabic  # joined: initial forms drawn, not the isolated letters
    line = unicodedata.normalize("NFKC", visual_line(pdf, set(name)))
    assert name[::-1] in line, line


def test_mixed_scripts_in_one_word_print_in_the_batch_summary(tmp_path):
    """A file name mixing Latin and CJK in one word ("good_ñame_王芳") prints whole in the summary."""
    encounters, rejected = mixed_batch()
    bad = not_graded("/camera/good_ñame_王芳.jpg", Eye.UNKNOWN, Status.ERROR, (), "",
                     message="good_ñame_王芳.jpg is truncated: copy it from the camera again")
    chinese = dataclasses.replace(encounters[0], patient=Patient("ZH-1", "王芳 Wang"))
    path = reports.write_batch_summary([chinese, *encounters[1:]], [*rejected, bad], tmp_path / "summary.pdf")
    pdf = Path(path).read_bytes()
    _check_names(pdf, "good_ñame_王芳 王芳 Wang", "WenQuanYiMicroHei", True)
    assert "good_ñame_王芳.jpg" in pdf_text(path)


def test_footer_prints_a_patient_id_in_any_script():
    """The page footer names the patient ID; it prints in the fallback fonts too."""
    summary = urgent_with_ungradable_eye(name="Test", patient_id="患者-42")
    pdf = reports.slip_pdf_bytes(summary)
    _check_names(pdf, "患者", "WenQuanYiMicroHei", True)
