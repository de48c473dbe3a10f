"""The agreement report's two plots, as reportlab drawings (issue 22).

Why pictures beside the tables: a clinic lead reads a confusion table's shape
(mass on the diagonal, a cloud below it) and a month-by-month drift faster from
a picture than from numbers. Both are drawn from the same figures as the tables
(:mod:`.qa`), so they cannot disagree with them.

* :func:`confusion_drawing`: the AI-vs-grader confusion table as a heat map, each
  row shaded by its share of the grader's eyes of that grade;
* :func:`monthly_drawing`: referable sensitivity and specificity per month, with
  their 95% intervals as bars (weighted 1/P(graded), bootstrap over patients).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from reportlab.graphics.shapes import Drawing, Line, Rect, String
from reportlab.lib import colors

from .qa import Agreement

GRADES = ("0", "1", "2", "3", "4", "U")
SENS_COLOUR = colors.HexColor("#1f5fa8")
SPEC_COLOUR = colors.HexColor("#c0392b")


def confusion_drawing(table: np.ndarray, width: float, font: str = "Helvetica") -> Drawing:
    """The confusion table (rows: grader, columns: AI) as shaded cells with counts."""
    n = table.shape[0]
    label = 52.0
    cell = min((width - label) / n, 26.0)
    height = cell * n + 30
    d = Drawing(width, height)
    rows = table.sum(axis=1)
    for i in range(n):
        y = height - 18 - (i + 1) * cell
        d.add(String(label - 4, y + cell / 2 - 3, f"grader {GRADES[i]}", fontName=font, fontSize=7, textAnchor="end"))
        for j in range(n):
            share = float(table[i, j] / rows[i]) if rows[i] else 0.0
            shade = colors.Color(1 - 0.8 * share, 1 - 0.55 * share, 1 - 0.2 * share)
            d.add(Rect(label + j * cell, y, cell, cell, fillColor=shade, strokeColor=colors.white, strokeWidth=1))
            if table[i, j]:
                ink = colors.white if share > 0.6 else colors.black
                d.add(String(label + (j + 0.5) * cell, y + cell / 2 - 3, str(int(table[i, j])), fontName=font,
                             fontSize=7, textAnchor="middle", fillColor=ink))
    for j in range(n):
        d.add(String(label + (j + 0.5) * cell, height - 12, f"AI {GRADES[j]}", fontName=font, fontSize=7,
                     textAnchor="middle"))
    return d


def _finite(x: float) -> bool:
    return not math.isnan(x)


def monthly_drawing(rows: Sequence[Agreement], width: float, font: str = "Helvetica") -> Drawing:
    """Sensitivity (blue) and specificity (red) per month, 0-1, with 95% interval bars."""
    height, left, bottom, top = 124.0, 30.0, 22.0, 20.0
    d = Drawing(width, height)
    plot_w, plot_h = width - left - 10, height - bottom - top
    for v in (0.0, 0.5, 1.0):
        y = bottom + v * plot_h
        d.add(Line(left, y, left + plot_w, y, strokeColor=colors.HexColor("#cccccc"), strokeWidth=0.5))
        d.add(String(left - 4, y - 3, f"{v:.1f}", fontName=font, fontSize=7, textAnchor="end"))
    step = plot_w / max(len(rows), 1)
    for k, a in enumerate(rows):
        x = left + (k + 0.5) * step
        d.add(String(x, bottom - 12, a.group, fontName=font, fontSize=7, textAnchor="middle"))
        for rate, colour, dx in ((a.sensitivity, SENS_COLOUR, -3), (a.specificity, SPEC_COLOUR, 3)):
            if rate.total == 0 or not _finite(rate.value):
                continue
            if _finite(rate.low) and _finite(rate.high):
                d.add(Line(x + dx, bottom + rate.low * plot_h, x + dx, bottom + rate.high * plot_h,
                           strokeColor=colour, strokeWidth=1))
            d.add(Rect(x + dx - 2, bottom + rate.value * plot_h - 2, 4, 4, fillColor=colour, strokeColor=colour))
    d.add(Rect(left, height - 9, 6, 6, fillColor=SENS_COLOUR, strokeColor=SENS_COLOUR))
    d.add(String(left + 9, height - 8, "referable sensitivity", fontName=font, fontSize=7))
    d.add(Rect(left + 100, height - 9, 6, 6, fillColor=SPEC_COLOUR, strokeColor=SPEC_COLOUR))
    d.add(String(left + 109, height - 8, "specificity (bars: 95% interval)", fontName=font, fontSize=7))
    return d
