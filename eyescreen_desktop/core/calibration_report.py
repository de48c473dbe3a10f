"""The calibration report PDF: what a clinic's operating point rests on, on one or two pages.

A clinic lead signs off thresholds on this page, so it says in words which
photographs chose them, by which rule, for which model, and what each
collection gets at that point (sensitivity and specificity with 95% intervals
from a bootstrap over patients, urgent eyes left in annual, and the specificity
the worst collection costs each one), with the sensitivity/specificity curves
drawn as vector graphics (reportlab's own: no matplotlib, which only the training
extra installs). Built from the reports' shared layout (fonts, header, footer,
tables, disclaimer) so it looks like every other EyeScreen document.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
from reportlab.graphics.shapes import Drawing, Line, Polygon, PolyLine, Rect, String
from reportlab.lib import colors
from reportlab.lib.units import mm
from reportlab.platypus import Flowable, KeepTogether, Spacer, Table, TableStyle

from .calibration import Calibration, Curve, Figures
from .reports.layout import (
    FONT,
    FONT_BOLD,
    P,
    WARN_BG,
    WARN_INK,
    SlipSettings,
    U,
    _build_pdf,
    _disclaimer,
    _header,
    _write_atomic,
    format_datetime,
    register_fonts,
)
from .reports.summary import _table

TITLE = "Site calibration \u2013 operating point"
CURVE_HEIGHT = 2.7   # inches, for 7.6 wide: one page holds the table, the curves and the photographs used


SENSITIVITY_INK, SPECIFICITY_INK, AXIS_INK = "#B71C1C", "#1565C0", "#333333"


def curve_drawing(curves: Sequence[Curve], thresholds: dict[str, float], width: float,
                  height: float) -> Drawing:
    """Sensitivity and specificity against each threshold, with their 95% bands and the
    chosen threshold marked: one panel per decision, drawn with reportlab's own
    vector graphics so calibration needs nothing of the training extra (matplotlib)."""
    register_fonts()
    drawing = Drawing(width, height)
    gap = 14.0
    panel_w = (width - gap * (len(curves) - 1)) / max(1, len(curves))
    for i, c in enumerate(curves):
        _panel(drawing, c, thresholds[c.decision], i * (panel_w + gap), panel_w, height)
    return drawing


def _panel(d: Drawing, c: Curve, chosen: float, left: float, width: float, height: float) -> None:
    """One decision's panel: log-scaled threshold axis (the interesting thresholds are
    small), 0..1 rate axis, shaded bootstrap bands, curves, dashed chosen threshold."""
    x0, y0 = left + 26, 26.0                        # room for tick labels and the axis label
    w, h = width - 30, height - y0 - 16             # room for the title above
    lo_dec = math.floor(math.log10(max(float(np.min(c.thresholds)), 1e-6)))

    def x(t: float) -> float:
        return x0 + w * (math.log10(max(float(t), 10.0 ** lo_dec)) - lo_dec) / -lo_dec

    def y(v: float) -> float:
        return y0 + h * float(v) / 1.02

    grid = dict(strokeColor=colors.HexColor("#DDDDDD"), strokeWidth=0.4)
    for k in range(lo_dec, 1):
        d.add(Line(x(10.0 ** k), y0, x(10.0 ** k), y0 + h, **grid))
        d.add(String(x(10.0 ** k), y0 - 9, f"{10.0 ** k:.{max(0, -k)}f}", fontName=FONT, fontSize=6.5,
                     textAnchor="middle"))
    for v in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
        d.add(Line(x0, y(v), x0 + w, y(v), **grid))
        d.add(String(x0 - 3, y(v) - 2.3, f"{v:.1f}", fontName=FONT, fontSize=6.5, textAnchor="end"))
    for values, band, ink in ((c.sensitivity, c.sensitivity_band, SENSITIVITY_INK),
                              (c.specificity, c.specificity_band, SPECIFICITY_INK)):
        upper = [p for t, v in zip(c.thresholds, band[1]) for p in (x(t), y(v))]
        lower = [p for t, v in reversed(list(zip(c.thresholds, band[0]))) for p in (x(t), y(v))]
        d.add(Polygon(upper + lower, fillColor=colors.HexColor(ink), fillOpacity=0.18, strokeColor=None))
        d.add(PolyLine([p for t, v in zip(c.thresholds, values) for p in (x(t), y(v))],
                       strokeColor=colors.HexColor(ink), strokeWidth=1.3))
    d.add(Line(x(chosen), y0, x(chosen), y0 + h, strokeColor=colors.HexColor(AXIS_INK), strokeWidth=0.8,
               strokeDashArray=[3, 2]))
    d.add(String(x(chosen) + (3 if x(chosen) < x0 + w * 0.7 else -3), y0 + 4, f"chosen {chosen:.4f}",
                 fontName=FONT, fontSize=6.5, textAnchor="start" if x(chosen) < x0 + w * 0.7 else "end"))
    d.add(Rect(x0, y0, w, h, fillColor=None, strokeColor=colors.HexColor(AXIS_INK), strokeWidth=0.6))
    for j, (label, ink) in enumerate((("sensitivity", SENSITIVITY_INK), ("specificity", SPECIFICITY_INK))):
        ly = y0 + h * 0.55 - j * 9
        d.add(Line(x0 + 5, ly + 2, x0 + 17, ly + 2, strokeColor=colors.HexColor(ink), strokeWidth=1.3))
        d.add(String(x0 + 20, ly, label, fontName=FONT, fontSize=6.5))
    d.add(String(x0 + w / 2, height - 10, f"{c.decision}: eyes flagged at each threshold", fontName=FONT_BOLD,
                 fontSize=8, textAnchor="middle"))
    d.add(String(x0 + w / 2, 3, f"{c.decision} threshold (p \u2265 threshold flags the eye, log scale)",
                 fontName=FONT, fontSize=7, textAnchor="middle"))


def _rate(r: object) -> str:
    v, lo, hi, hits, total = (getattr(r, k) for k in ("value", "low", "high", "hits", "total"))
    if total == 0:
        return "\u2013"
    return f"<b>{v:.2f}</b><br/>{hits}/{total}<br/>{lo:.2f}\u2013{hi:.2f}"


def _auc(a: tuple[float, float, float]) -> str:
    return "\u2013" if a[0] != a[0] else f"<b>{a[0]:.3f}</b><br/>{a[1]:.3f}\u2013{a[2]:.3f}"


def _cost(f: Figures) -> str:
    if f.collection == "all":
        return "\u2013"
    return f"\u2212{f.specificity_cost:.2f}" if f.specificity_cost > 0.0005 else "none"


def _figures_rows(rows: Sequence[Figures]) -> list[list[Flowable]]:
    out = []
    for f in rows:
        annual = f'<font color="#B71C1C"><b>{f.urgent_in_annual}</b></font>' if f.urgent_in_annual else "0"
        out.append([U(f.collection, "cell_bold"), P(f"{f.photographs - f.gated} ({f.gated})", "cell"),
                    P(_auc(f.referable_auc), "cell"), P(_rate(f.referable_sensitivity), "cell"),
                    P(_rate(f.referable_specificity), "cell"), P(_rate(f.urgent_sensitivity), "cell"),
                    P(_rate(f.urgent_specificity), "cell"), P(annual, "cell"), P(_cost(f), "cell")])
    return out


def _thresholds_box(c: Calibration, width: float) -> Table:
    text = (f"<b>Referable threshold: {c.thresholds.referable:.4f}</b> \u00b7 "
            f"<b>Urgent threshold: {c.thresholds.urgent:.4f}</b><br/>"
            f"Rule: {escape(c.rule.text())}.")
    box = Table([[P(text, "body")]], colWidths=[width])
    box.setStyle(TableStyle([("BOX", (0, 0), (-1, -1), 0.8, colors.HexColor("#333333")),
                             ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#F4F6F7")),
                             ("LEFTPADDING", (0, 0), (-1, -1), 6), ("TOPPADDING", (0, 0), (-1, -1), 5),
                             ("BOTTOMPADDING", (0, 0), (-1, -1), 6)]))
    return box


def _warnings_box(warnings: Sequence[str], width: float) -> list[Flowable]:
    if not warnings:
        return []
    text = "<b>Caution.</b> " + " ".join(escape(w) + "." for w in warnings)
    box = Table([[P(f'<font color="{WARN_INK}">{text}</font>', "cell")]], colWidths=[width])
    box.setStyle(TableStyle([("BACKGROUND", (0, 0), (-1, -1), colors.HexColor(WARN_BG)),
                             ("BOX", (0, 0), (-1, -1), 0.6, colors.HexColor(WARN_INK)),
                             ("LEFTPADDING", (0, 0), (-1, -1), 6)]))
    return [Spacer(1, 5), box]


def _short(path: str) -> str:
    """``.../site-a/labels.csv``: enough of the path to tell the files apart."""
    p = Path(path)
    return f"\u2026/{p.parent.name}/{p.name}" if p.parent.name else p.name


def calibration_story(c: Calibration, settings: SlipSettings) -> list[Flowable]:
    """The report's flowables (exposed for tests and previews)."""
    width = settings.pagesize[0] - 28 * mm
    m = c.model
    intro = (f"Operating point <b>{escape(c.name)}</b>, made {escape(c.created.replace('T', ' ')[:16])} UTC "
             f"for model <b>{escape(m.get('name', ''))} {escape(m.get('version', ''))}</b> "
             f"(weights SHA-256 {escape(m.get('weights_sha256', '')[:16])}\u2026), from "
             f"{sum(s.photographs for s in c.sources)} graded photographs of "
             f"{sum(s.patients for s in c.sources)} patients screened through EyeScreen's own path "
             "(quality gate first: photographs it refuses go to review and are not counted below).")
    src_rows = [[U(s.collection, "cell_bold"), U(_short(s.labels), "cell"), P(str(s.photographs), "cell"),
                 P(str(s.gradable), "cell"), P(str(s.patients), "cell"), P(str(s.referable), "cell"),
                 P(str(s.urgent), "cell")] for s in c.sources]
    header = ["Collection", "Gradable (gated)", "Referable AUC (95% CI)", "Referable sensitivity",
              "Referable specificity", "Urgent sensitivity", "Urgent specificity", "Urgent eyes in annual",
              "Specificity the worst collection costs"]
    fr = (0.12, 0.09, 0.12, 0.12, 0.12, 0.11, 0.11, 0.09, 0.12)  # collection names wrap, numbers do not
    thresholds = {"referable": c.thresholds.referable, "urgent": c.thresholds.urgent}
    story: list[Flowable] = [
        _header(settings, TITLE, width), Spacer(1, 4), P(intro, "body"), Spacer(1, 6), _thresholds_box(c, width),
        *_warnings_box(c.warnings, width),
        P("What each collection gets at this point", "h2"),
        _table(header, _figures_rows([*c.per_collection, c.overall] if len(c.per_collection) > 1
                                     else list(c.per_collection)), [width * f for f in fr]),
        P("Sensitivity and specificity: value, eyes found / eyes, then the 95% interval from a bootstrap "
          "over patients (both eyes of a person drawn together); the same interval under each AUC. An eye "
          "counts as referred when either threshold fires. "
          "The last column is the referable specificity lost against the same rule applied to that collection "
          "alone.", "small"),
        P("Curves", "h2"),
        curve_drawing(c.curves, thresholds, width, width * CURVE_HEIGHT / 7.6), Spacer(1, 3),
        P("Shaded: 95% band from a bootstrap over patients. Dashed: the chosen threshold. For the referable "
          "curve the urgent threshold stays at its chosen value (an urgent eye is always referred).", "small"),
        KeepTogether([  # the disclaimer never stands alone on a page
            P("Photographs used", "h2"),
            _table(["Collection", "Labels file", "Photos", "Gradable", "Patients", "Referable eyes",
                    "Urgent eyes"], src_rows, [width * f for f in (0.16, 0.34, 0.1, 0.1, 0.1, 0.1, 0.1)]),
            Spacer(1, 10), _disclaimer(width)]),
    ]
    return story


def write_calibration_report(c: Calibration, path: Path, settings: SlipSettings | None = None) -> Path:
    """Write the calibration report PDF to ``path`` (atomically)."""
    settings = settings or SlipSettings()
    footer = f"EyeScreen site calibration \u00b7 {c.name} \u00b7 printed {format_datetime(dt.datetime.now())}"
    return _write_atomic(_build_pdf(calibration_story(c, settings), settings, TITLE, footer), Path(path))

