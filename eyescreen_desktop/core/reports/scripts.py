"""Every patient's name in its own script on every PDF: font fallback, shaping and direction.

A clinic screens people whose names are written in Latin, Greek, Cyrillic,
Chinese, Japanese, Korean, Devanagari, Tamil, Arabic or Hebrew script, often
mixed with Latin ("王芳 Wang"). One font covers none of that, so:

* **Fallback per character.** :func:`font_runs` gives each character the first
  shipped font (``resources/fonts``, all TrueType: reportlab embeds no CFF
  outlines) whose character map has it; combining marks and joiners stay with
  the character they modify. :func:`script_markup` wraps each run in a
  ``<font face=...>`` tag of the paragraph markup, so bold stays bold where the
  fallback family has a bold face.
* **Shaping.** The fonts are registered shapable and the paragraph styles have
  ``shaping=1``, so reportlab shapes each word with HarfBuzz (``uharfbuzz``):
  Arabic letters join, Devanagari and Tamil conjuncts and vowel signs take
  their places, and a right-to-left word comes out in visual order. reportlab
  shapes a word with its first font only, so :func:`install_run_shaping` makes
  it shape each single-font run of a word on its own ("good_ñame_王芳.jpg").
* **Direction.** Documents are left-to-right; a run of right-to-left words
  inside them (a name in Arabic or Hebrew) is laid out right to left by
  :func:`rtl_word_order`, which reverses the order of the words while
  HarfBuzz orders the letters inside each word.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

from ..paths import resource_file


@dataclass(frozen=True)
class FontFamily:
    """A shipped font family: reportlab names of its faces and their files
    (``bold_file`` empty: the regular face also prints bold text)."""

    name: str
    file: str
    bold_file: str = ""
    subfont: int = 0   # index in a TrueType collection (.ttc)

    @property
    def bold_name(self) -> str:
        """reportlab's name of the bold face (the regular one when there is none)."""
        return f"{self.name}-Bold" if self.bold_file else self.name


BASE = FontFamily("DejaVuSans", "DejaVuSans.ttf", "DejaVuSans-Bold.ttf")
ARABIC = FontFamily("NotoSansArabic", "NotoSansArabic-Regular.ttf", "NotoSansArabic-Bold.ttf")
HEBREW = FontFamily("NotoSansHebrew", "NotoSansHebrew-Regular.ttf", "NotoSansHebrew-Bold.ttf")
DEVANAGARI = FontFamily("NotoSansDevanagari", "NotoSansDevanagari-Regular.ttf", "NotoSansDevanagari-Bold.ttf")
TAMIL = FontFamily("NotoSansTamil", "NotoSansTamil-Regular.ttf", "NotoSansTamil-Bold.ttf")
CJK = FontFamily("WenQuanYiMicroHei", "wqy-microhei.ttc")
# Tried in this order for a character; a script's own font first for the scripts
# DejaVu also covers but Noto draws and shapes better (SCRIPT_FONTS).
FAMILIES: tuple[FontFamily, ...] = (BASE, ARABIC, HEBREW, DEVANAGARI, TAMIL, CJK)
SCRIPT_FONTS: tuple[tuple[int, int, FontFamily], ...] = (
    (0x0590, 0x05FF, HEBREW), (0xFB1D, 0xFB4F, HEBREW),
    (0x0600, 0x06FF, ARABIC), (0x0750, 0x077F, ARABIC), (0x08A0, 0x08FF, ARABIC),
    (0xFB50, 0xFDFF, ARABIC), (0xFE70, 0xFEFF, ARABIC),
)
# reportlab's default asks for discretionary ligatures ("dlig"), which turn the name محمد
# into the ornamental sign ﷴ, and HarfBuzz's for standard ones ("liga"), which print "file"
# with the single sign "ﬁ" that a search of the PDF no longer finds: names and words print
# in their plain letters. Ligatures a script requires (Arabic lam-alef, Indic conjuncts)
# are other features and stay on.
SHAPING_FEATURES = {"kern": True, "liga": False, "dlig": False}
_STICKY = {"Mn", "Mc", "Me", "Cf"}   # combining marks, joiners: stay in the run of the letter before
_RTL_CLASSES = {"R", "AL"}


def register_family(fam: FontFamily) -> FontFamily:
    """Register one shipped family's faces with reportlab (shapable), its bold with
    the family, once; a missing file says to reinstall."""
    faces = [(fam.name, fam.file)] + ([(fam.bold_name, fam.bold_file)] if fam.bold_file else [])
    registered = pdfmetrics.getRegisteredFontNames()
    for name, file in faces:
        if name in registered:
            continue
        path = resource_file("fonts", file)
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: reinstall EyeScreen (slips need this font "
                                    "to print names in every script)")
        pdfmetrics.registerFont(TTFont(name, str(path), subfontIndex=fam.subfont, shapable=True))
    pdfmetrics.registerFontFamily(fam.name, normal=fam.name, bold=fam.bold_name, italic=fam.name,
                                  boldItalic=fam.bold_name)
    install_run_shaping()
    return fam


def register_families() -> tuple[FontFamily, ...]:
    """Register every shipped family (the install check: all are there and load).
    Documents need not call it: a fallback family is loaded the first time a
    character needs it (:func:`family_for`), so a slip of Latin names does not
    parse the 5 MB CJK font."""
    return tuple(register_family(fam) for fam in FAMILIES)


@functools.lru_cache(maxsize=None)
def _covers(fam: FontFamily) -> frozenset[int]:
    """The code points the family's regular face has a glyph for (loading it)."""
    register_family(fam)
    return frozenset(pdfmetrics.getFont(fam.name).face.charToGlyph)


def family_for(ch: str) -> FontFamily | None:
    """The shipped family that draws ``ch``: its script's own font when it has
    one, else the first in :data:`FAMILIES` that has the glyph; None when none does."""
    cp = ord(ch)
    for lo, hi, fam in SCRIPT_FONTS:
        if lo <= cp <= hi and cp in _covers(fam):
            return fam
    return next((fam for fam in FAMILIES if cp in _covers(fam)), None)


def font_runs(text: str) -> Iterator[tuple[FontFamily, str]]:
    """``text`` cut into runs of one font family each (characters no font has
    stay in the base font and print as its missing-glyph box)."""
    register_family(BASE)
    run, fam = "", BASE
    for ch in text:
        if ch.isspace() or (run and unicodedata.category(ch) in _STICKY):
            run += ch       # spaces and marks never start a font change
            continue
        want = family_for(ch) or BASE
        if want is not fam and run:
            yield fam, run
            run = ""
        fam = want
        run += ch
    if run:
        yield fam, run


def _is_rtl_word(word: str) -> bool:
    """True when the word's first strong character is right-to-left."""
    for ch in word:
        klass = unicodedata.bidirectional(ch)
        if klass in _RTL_CLASSES:
            return True
        if klass == "L":
            return False
    return False


def _has_strong(word: str) -> bool:
    return any(unicodedata.bidirectional(ch) in (*_RTL_CLASSES, "L") for ch in word)


def rtl_word_order(text: str) -> str:
    """``text`` with each run of right-to-left words (and the neutral words
    between them) in visual order, right to left, inside a left-to-right line:
    ``"Dr محمد علي"`` keeps "Dr" first and puts "علي" before "محمد". The letters
    of each word stay in logical order for the shaper, which orders them."""
    parts = re.split(r"(\s+)", text)
    out: list[str] = []
    i = 0
    while i < len(parts):
        if parts[i] and _is_rtl_word(parts[i]):
            j = i
            k = i   # last right-to-left word of the run
            while j + 2 < len(parts) and (_is_rtl_word(parts[j + 2]) or not _has_strong(parts[j + 2])):
                j += 2
                if _is_rtl_word(parts[j]):
                    k = j
            out.extend(reversed(parts[i:k + 1]))
            i = k + 1
        else:
            out.append(parts[i])
            i += 1
    return "".join(out)


_MARKUP = re.compile(r"(<[^>]*>|&#?\w+;)")


def script_markup(markup: str, bold: bool = False) -> str:
    """Paragraph markup with every text stretch between tags in visual word
    order and cut into ``<font face=...>`` runs of the shipped fonts, bold faces
    where the style (``bold``) or a ``<b>`` tag makes the text bold; tags and
    entities pass through unchanged. Text in the base font gets no tag."""
    out = []
    depth = 0   # open <b> tags
    for piece in _MARKUP.split(markup):
        if not piece or piece[0] in "<&":
            tag = piece.lower().replace(" ", "")
            depth += tag in ("<b>", "<strong>")
            depth -= tag in ("</b>", "</strong>") and depth > 0
            out.append(piece)
            continue
        for fam, run in font_runs(rtl_word_order(piece)):
            face = fam.bold_name if (bold or depth) else fam.name
            out.append(run if fam is BASE else f'<font face="{face}">{run}</font>')
    return "".join(out)


def text_width(text: str, size: float, bold: bool = False) -> float:
    """Width in points of plain ``text`` printed with the fallback fonts."""
    return sum(pdfmetrics.stringWidth(run, fam.bold_name if bold else fam.name, size)
               for fam, run in font_runs(text))


# --------------------------------------------------------------------------- one shaper call per font


def _font_of(item: Any) -> str | None:
    f = item[0]
    return None if hasattr(f, "cbDefn") else f.fontName


def install_run_shaping() -> None:
    """Make reportlab shape each single-font run of a word separately.

    reportlab's ``shapeFragWord`` shapes a whole word with its first font's
    HarfBuzz face and reads the other runs' glyph numbers from their own fonts:
    "good_ñame_王芳" would print the CJK run as glyphs of DejaVu's numbering.
    The paragraph module's reference is replaced once by :func:`_shape_runs`."""
    from reportlab.platypus import paragraph

    if getattr(paragraph.shapeFragWord, "_eyescreen_runs", False):
        return
    original = paragraph.shapeFragWord

    def shape_runs(w: Any, *args: Any, **kwargs: Any) -> Any:
        if not args:
            kwargs.setdefault("features", dict(SHAPING_FEATURES))
        return _shape_runs(original, w, *args, **kwargs)

    shape_runs._eyescreen_runs = True  # type: ignore[attr-defined]  # a marker attribute on reportlab's function, so it is wrapped once
    paragraph.shapeFragWord = shape_runs


def _shape_runs(shape: Any, w: Any, *args: Any, **kwargs: Any) -> Any:
    """``shape`` (reportlab's) applied to each single-font run of the frag word ``w``,
    the results joined into one shaped word (``w`` itself when nothing changed)."""
    from reportlab.pdfbase.ttfonts import ShapedFragWord, makeShapedFragWord

    fonts = {name for name in map(_font_of, w[1:]) if name is not None}
    if len(fonts) <= 1 or isinstance(w, ShapedFragWord):
        return shape(w, *args, **kwargs)
    groups: list[list[Any]] = []
    for item in w[1:]:
        name = _font_of(item)
        if groups and (name is None or name == _font_of(groups[-1][-1]) or _font_of(groups[-1][-1]) is None):
            groups[-1].append(item)
        else:
            groups.append([item])
    total, items, changed = 0.0, [], False
    for group in groups:
        width = sum(pdfmetrics.stringWidth(s, f.fontName, f.fontSize) for f, s in group if not hasattr(f, "cbDefn"))
        sub = w.__class__([width, *group])
        shaped = shape(sub, *args, **kwargs)
        changed = changed or shaped is not sub
        total += shaped[0]
        items.extend(shaped[1:])
    return makeShapedFragWord(w)([total, *items]) if changed else w
