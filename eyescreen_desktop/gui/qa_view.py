"""The "Quality assurance" tab: how EyeScreen's AI agrees with the clinic's graders.

The same numbers as ``eyescreen report --format qa`` (:mod:`..core.qa`), for the
clinic lead at the desk: the summary naming the kappa, the agreement table split
by site, camera, month or grader (referable sensitivity and specificity weighted
1/P(graded)), the AI-vs-grader confusion table, and every eye a grader called
urgent that the AI put in annual, by patient, for follow-up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.gate import card_reject_threshold
from ..core.qa import (
    SPLITS,
    Agreement,
    agreement,
    confusion_table,
    qa_eyes,
    quality_suggestions,
    split,
    summary_line,
)
from ..core.quality_threshold import QualitySuggestion
from ..core.roles import Action, may

GRADES = ("0", "1", "2", "3", "4", "ungradable")
AGREEMENT_COLUMNS = ("Group", "Eyes", "Kappa", "Referable sensitivity (95% CI)", "Referable specificity (95% CI)",
                     "Urgent in annual", "Ungradable agreement", "AI referral rate")


def _rate(r: Any) -> str:
    if r.total == 0 or math.isnan(r.value):
        return "\u2013"
    return f"{r.value:.2f} ({r.low:.2f}\u2013{r.high:.2f})"


def _num(x: float) -> str:
    return "\u2013" if math.isnan(x) else f"{x:.2f}"


class MonthlyChart(QWidget):
    """Referable sensitivity (blue) and specificity (red) per month, 0-1, with their
    95% intervals as bars: the same figures as the per-month table and the PDF's plot."""

    SENS, SPEC = QColor("#1f5fa8"), QColor("#c0392b")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows: list[Agreement] = []
        self.setMinimumHeight(130)

    def set_rows(self, rows: list[Agreement]) -> None:
        self.rows = rows
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt's name
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        left, top, bottom = 34.0, 22.0, 20.0
        plot = QRectF(left, top, self.width() - left - 8, self.height() - top - bottom)
        p.setPen(QPen(QColor("#bbbbbb"), 1))
        for v in (0.0, 0.5, 1.0):
            y = plot.bottom() - v * plot.height()
            p.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
            p.drawText(QRectF(0, y - 8, left - 4, 16), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                       f"{v:.1f}")
        for k, (colour, words) in enumerate(((self.SENS, "referable sensitivity"),
                                             (self.SPEC, "specificity (bars: 95% interval)"))):
            p.fillRect(QRectF(left + k * 170, 4, 8, 8), colour)
            p.setPen(QColor("#000000"))
            p.drawText(QPointF(left + k * 170 + 12, 12), words)
        step = plot.width() / max(len(self.rows), 1)
        for i, a in enumerate(self.rows):
            x = plot.left() + (i + 0.5) * step
            p.setPen(QColor("#000000"))
            p.drawText(QRectF(x - step / 2, plot.bottom() + 2, step, bottom - 2), Qt.AlignmentFlag.AlignCenter,
                       a.group)
            for rate, colour, dx in ((a.sensitivity, self.SENS, -4), (a.specificity, self.SPEC, 4)):
                if rate.total == 0 or math.isnan(rate.value):
                    continue
                p.setPen(QPen(colour, 2))
                if not (math.isnan(rate.low) or math.isnan(rate.high)):
                    p.drawLine(QPointF(x + dx, plot.bottom() - rate.low * plot.height()),
                               QPointF(x + dx, plot.bottom() - rate.high * plot.height()))
                p.setBrush(QBrush(colour))
                p.drawEllipse(QPointF(x + dx, plot.bottom() - rate.value * plot.height()), 3.5, 3.5)
        p.end()


@dataclass(frozen=True)
class _Figures:
    """What one refresh of the view shows, computed off the GUI thread."""

    eyes: list[Any]
    overall: Agreement | None
    confusion: Any                 # confusion_table's 6x6 counts
    monthly: list[Agreement]
    quality: tuple[float | None, float | None, list[QualitySuggestion]]


class QaView(QWidget):
    """The agreement report in the window (see the module's note)."""

    def __init__(self, store: Any, site: str = "clinic", n_boot: int = 300, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store, self.site, self.n_boot = store, site, n_boot
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.split_by = QComboBox()
        self.split_by.addItems(["all", *SPLITS])
        self.refresh_button = QPushButton("Refresh")
        self.agreement = QTableWidget(0, len(AGREEMENT_COLUMNS))
        self.agreement.setHorizontalHeaderLabels(AGREEMENT_COLUMNS)
        self.confusion = QTableWidget(6, 6)
        self.confusion.setHorizontalHeaderLabels([f"AI {g}" for g in GRADES])
        self.confusion.setVerticalHeaderLabels([f"grader {g}" for g in GRADES])
        self.missed = QTableWidget(0, 5)
        self.missed.setHorizontalHeaderLabels(["Patient", "Visit", "Eye", "AI grade", "Grader grade"])
        for table in (self.agreement, self.confusion, self.missed):
            table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
            table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.missed_title = QLabel()
        self.monthly = MonthlyChart()
        self.quality = QLabel()
        self.quality.setWordWrap(True)
        self.apply_quality = QPushButton("Apply the suggested photo-quality threshold")
        self.apply_quality.setToolTip("Admin only: screening then refuses photographs at this threshold (audited)")
        self.apply_quality.clicked.connect(self.apply_suggestion)
        self.suggestion: QualitySuggestion | None = None
        self.eyes: list[Any] = []
        self.overall: Agreement | None = None   # every eye's agreement: the summary line and the "all" row
        self._ticket = 0                         # the latest background refresh
        self._build()
        self.split_by.currentTextChanged.connect(lambda _t: self._fill_agreement())
        self.refresh_button.clicked.connect(self.refresh)

    def _build(self) -> None:
        top = QHBoxLayout()
        top.addWidget(QLabel("Split by:"))
        top.addWidget(self.split_by)
        top.addStretch(1)
        top.addWidget(self.refresh_button)
        lower = QHBoxLayout()
        left = QVBoxLayout()
        left.addWidget(QLabel("<b>AI grade against the grader's (eyes)</b>"))
        left.addWidget(self.confusion)
        right = QVBoxLayout()
        right.addWidget(self.missed_title)
        right.addWidget(self.missed)
        right.addWidget(QLabel("<b>Per month</b>"))
        right.addWidget(self.monthly)
        lower.addLayout(left, 1)
        lower.addLayout(right, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addLayout(top)
        layout.addWidget(self.agreement, 1)
        layout.addLayout(lower, 1)
        quality = QHBoxLayout()
        quality.addWidget(self.quality, 1)
        quality.addWidget(self.apply_quality)
        layout.addLayout(quality)

    def refresh(self) -> None:
        """Read the graded eyes again and recompute every table."""
        self._show(self._read())

    def refresh_later(self) -> None:
        """:meth:`refresh` with the reading and the patient bootstraps (seconds with
        years of grades) on the background helper: the window opens the tab at once."""
        from .worker import run_in_background

        self._ticket += 1
        ticket = self._ticket
        run_in_background(lambda: (ticket, self._read()), self._read_back)

    def _read(self) -> _Figures:
        """Everything a refresh shows, read and computed without touching a widget."""
        eyes = qa_eyes(self.store, self.site)
        return _Figures(eyes, agreement(eyes, "all", self.n_boot) if eyes else None, confusion_table(eyes),
                        split(eyes, "month", self.n_boot) if eyes else [], self._quality_figures(eyes))

    def _read_back(self, loaded: tuple[int, _Figures]) -> None:
        ticket, figures = loaded
        if ticket == self._ticket:   # else a newer refresh is on its way
            self._show(figures)

    def _show(self, figures: _Figures) -> None:
        self.eyes, self.overall = figures.eyes, figures.overall
        if self.overall is None:
            self.summary.setText("No human grades yet: grade in the Grading tab or import a reading centre's "
                                 "grades (eyescreen grades import FILE.csv).")
        else:
            self.summary.setText(f"<b>{summary_line(self.overall)}</b>. Each eye counts "
                                 "1/P(graded) times: an eye of a 10% quality-assurance sample counts 10 times.")
        self._fill_agreement()
        table = figures.confusion
        for i in range(6):
            for j in range(6):
                item = QTableWidgetItem(str(int(table[i, j])) if table[i, j] else "\u00b7")
                share = float(table[i, j] / table[i].sum()) if table[i].sum() else 0.0
                item.setBackground(QColor.fromRgbF(1 - 0.8 * share, 1 - 0.55 * share, 1 - 0.2 * share))
                if share > 0.6:
                    item.setForeground(QColor("#ffffff"))
                self.confusion.setItem(i, j, item)
        self.monthly.set_rows(figures.monthly)
        missed = sorted((e for e in self.eyes if e.urgent_in_annual), key=lambda e: (e.patient_id, e.date, e.eye))
        self.missed_title.setText(f"<b>Grader-urgent eyes the AI put in annual ({len(missed)})</b>: follow them up")
        self.missed.setRowCount(len(missed))
        for row, e in enumerate(missed):
            for col, value in enumerate((e.patient_id, e.date, e.eye, e.ai_grade, e.grader_grade)):
                self.missed.setItem(row, col, QTableWidgetItem(str(value)))
        self._show_quality(figures.quality)

    def _quality_figures(self, eyes: list[Any]) -> tuple[float | None, float | None, list[QualitySuggestion]]:
        """(threshold an admin applied, threshold in force, suggestions per camera): database and sums only."""
        applied = self.store.applied_quality_threshold()
        current = applied if applied is not None else card_reject_threshold()
        return applied, current, quality_suggestions(eyes, current) if current is not None and eyes else []

    def _show_quality(self, figures: tuple[float | None, float | None, list[QualitySuggestion]] | None = None
                      ) -> None:
        """The photo-quality threshold suggested from the graders' ungradable calls (per camera);
        the button applies the suggestion of the camera with the most graded eyes, for an admin."""
        applied, current, suggestions = figures or self._quality_figures(self.eyes)
        ready = [s for s in suggestions if s.threshold is not None and abs(s.threshold - s.current) > 1e-9]
        self.suggestion = max(ready, key=lambda s: s.eyes, default=None)
        in_force = (f"Photo-quality threshold in force: {current:.3f} ("
                    f"{'applied by an admin' if applied is not None else 'the gate card'}). ") if current else ""
        self.quality.setText(in_force + " ".join(s.words() for s in suggestions))
        person = getattr(self.store, "person", None)
        admin = person is None or may(person.roles, Action.OPERATING_POINT)
        self.apply_quality.setEnabled(self.suggestion is not None and admin)

    def apply_suggestion(self) -> None:
        """An admin applies the suggested threshold (the store refuses anyone else, audited)."""
        if self.suggestion is None or self.suggestion.threshold is None:
            return
        self.store.apply_quality_threshold(self.suggestion.threshold)
        self._show_quality()

    def _fill_agreement(self) -> None:
        by = self.split_by.currentText()
        rows: list[Agreement] = ([self.overall] if by == "all" else
                                 split(self.eyes, by, self.n_boot)) if self.overall is not None else []
        self.agreement.setRowCount(len(rows))
        for row, a in enumerate(rows):
            values = (a.group, str(a.eyes), _num(a.kappa), _rate(a.sensitivity), _rate(a.specificity),
                      str(a.urgent_in_annual), _num(a.ungradable_agreement), _num(a.ai_referral_rate))
            for col, value in enumerate(values):
                self.agreement.setItem(row, col, QTableWidgetItem(value))
