"""The agreement (quality-assurance) report PDF: how EyeScreen's AI agrees with the clinic's graders.

A clinic lead reads it monthly: the kappa and the referable sensitivity and
specificity (weighted for verification bias, with 95% intervals from a
bootstrap over patients), split by site, camera, month and grader; every eye a
grader called urgent that the AI put in annual, by patient, for follow-up; how
the gate's ungradable verdicts agree with the graders'; and how often each
grader's first reads held at arbitration. Built on the reports' shared layout.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

from reportlab.lib.units import mm
from reportlab.platypus import Flowable, KeepTogether, Spacer

from .gate import card_reject_threshold
from .qa_plots import confusion_drawing, monthly_drawing
from .qa import (
    SPLITS,
    Agreement,
    ArbitrationAgreement,
    QaEye,
    agreement,
    arbitration_agreement,
    confusion_table,
    qa_eyes,
    quality_suggestions,
    split,
    summary_line,
    write_qa_csv,
)
from .reports.layout import (
    P,
    SlipSettings,
    U,
    _build_pdf,
    _disclaimer,
    _header,
    _write_atomic,
    format_datetime,
)
from .reports.summary import _table

if TYPE_CHECKING:
    from .store import ClinicStore

TITLE = "Quality assurance \u2013 AI and graders"
GRADE_LABELS = ("0", "1", "2", "3", "4", "ungradable")


def _rate(r: object) -> str:
    value, low, high, hits, total = (getattr(r, k) for k in ("value", "low", "high", "hits", "total"))
    if total == 0 or math.isnan(value):
        return "\u2013"
    ci = "" if math.isnan(low) else f" ({low:.2f}\u2013{high:.2f})"
    return f"{value:.2f}{ci} [{hits}/{total}]"


def _num(x: float | None, fmt: str = ".2f") -> str:
    return "\u2013" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def _agreement_rows(rows: Sequence[Agreement]) -> list[list[Flowable]]:
    return [[U(a.group, "cell_bold"), P(str(a.eyes), "cell"), P(_num(a.kappa), "cell"),
             P(_rate(a.sensitivity), "cell"), P(_rate(a.specificity), "cell"), P(str(a.urgent_in_annual), "cell"),
             P(_num(a.ungradable_agreement), "cell"), P(_num(a.ai_referral_rate), "cell"),
             P(_num(a.grader_referral_rate), "cell")] for a in rows]


AGREEMENT_HEADER = ["Group", "Eyes", "Kappa", "Referable sensitivity", "Referable specificity", "Urgent in annual",
                    "Ungradable agreement", "AI referral rate", "Graded referral rate"]
AGREEMENT_WIDTHS = (0.14, 0.06, 0.07, 0.17, 0.17, 0.08, 0.12, 0.09, 0.1)


def qa_story(eyes: Sequence[QaEye], arbitration: Sequence[ArbitrationAgreement], settings: SlipSettings,
             n_boot: int = 1000, quality_threshold: float | None = None) -> list[Flowable]:
    """The report's flowables (exposed for tests and previews). ``quality_threshold``:
    the photo-quality threshold in force (the admin's, else the gate card's)."""
    width = settings.pagesize[0] - 28 * mm
    overall = agreement(eyes, "all", n_boot)
    widths = [width * f for f in AGREEMENT_WIDTHS]
    story: list[Flowable] = [
        _header(settings, TITLE, width), Spacer(1, 4),
        P(f"<b>{escape(summary_line(overall))}.</b>", "body"), Spacer(1, 3),
        P(f"{overall.eyes} eyes of {overall.patients} patients have a human grade (the arbitration where there was "
          "one). Only referrals, reviews and a random quality-assurance sample of annual encounters are graded, so "
          "each eye counts 1/P(graded) times in sensitivity, specificity and the rates: an eye of a 10% sample "
          "counts 10 times, a referral or a reading-centre census once. Brackets: eyes found / eyes, unweighted. "
          "Intervals: 95%, bootstrap over patients. Kappa: quadratic-weighted, the AI's ICDR grade against the "
          "grader's, on eyes both graded.", "small"),
        P("Agreement", "h2"),
        _table(AGREEMENT_HEADER, _agreement_rows([overall]), widths),
    ]
    for by in SPLITS:
        rows = split(eyes, by, n_boot // 2)
        story += [P(f"Per {by}", "h2"), _table(AGREEMENT_HEADER, _agreement_rows(rows), widths)]
        if by == "month" and rows:
            story += [Spacer(1, 4), monthly_drawing(rows, width)]
    story += _confusion(eyes, width) + _urgent_in_annual(eyes, width) + _gate(overall, width)
    story += _quality_suggestions(eyes, quality_threshold)
    story += _arbitration(arbitration, width)
    story.append(KeepTogether([Spacer(1, 10), _disclaimer(width)]))
    return story


def _confusion(eyes: Sequence[QaEye], width: float) -> list[Flowable]:
    table = confusion_table(eyes)
    rows = [[P(f"grader {GRADE_LABELS[i]}", "cell_bold"), *[P(str(int(v)) if v else "\u00b7", "cell") for v in row],
             P(str(int(row.sum())), "cell")] for i, row in enumerate(table)]
    rows.append([P("all", "cell_bold"), *[P(str(int(v)), "cell") for v in table.sum(0)],
                 P(str(int(table.sum())), "cell")])
    header = ["", *[f"AI {g}" for g in GRADE_LABELS], "all"]
    return [KeepTogether([P("AI grade against the grader's (eyes)", "h2"),
                          _table(header, rows, [width * 0.16] + [width * 0.12] * 6 + [width * 0.12])]), Spacer(1, 4),
            KeepTogether([confusion_drawing(table, width * 0.5),
                          P("Each row shaded by its share of the grader's eyes of that grade: a good agreement "
                            "is dark on the diagonal.", "small")])]


def _urgent_in_annual(eyes: Sequence[QaEye], width: float) -> list[Flowable]:
    missed = [e for e in eyes if e.urgent_in_annual]
    title = P(f"Grader-urgent eyes the AI put in annual ({len(missed)}): follow these patients up", "h2")
    if not missed:
        return [title, P("None.", "body")]
    rows = [[U(e.patient_id, "cell_bold"), P(e.date, "cell"), P(e.eye, "cell"), P(_num(e.p_referable, ".3f"), "cell"),
             P(str(e.ai_grade), "cell"), P(str(e.grader_grade), "cell"), U(e.grader, "cell"), U(e.camera, "cell")]
            for e in sorted(missed, key=lambda e: (e.patient_id, e.date, e.eye))]
    header = ["Patient", "Visit", "Eye", "AI p(referable)", "AI grade", "Grader grade", "Grader", "Camera"]
    return [title, _table(header, rows, [width * f for f in (0.16, 0.12, 0.06, 0.12, 0.09, 0.11, 0.17, 0.17)])]


def _gate(a: Agreement, width: float) -> list[Flowable]:
    both, gate, grader, neither = a.gate_vs_grader
    rows = [[P("gate: ungradable", "cell_bold"), P(str(both), "cell"), P(str(gate), "cell")],
            [P("gate: gradable", "cell_bold"), P(str(grader), "cell"), P(str(neither), "cell")]]
    return [P("Photo quality: the gate's ungradable verdicts against the graders'", "h2"),
            _table(["", "grader: ungradable", "grader: gradable"], rows, [width * 0.3] * 3),
            P(f"Agreement {_num(a.ungradable_agreement)}. A photograph the gate refused but the grader graded "
              "costs a recall; one the gate let through and the grader could not grade is graded by the AI on "
              "a poor picture.", "small")]


def _quality_suggestions(eyes: Sequence[QaEye], current: float | None) -> list[Flowable]:
    """The photo-quality threshold suggested per camera from the graders' ungradable calls."""
    current = current if current is not None else card_reject_threshold()
    if current is None:
        return []
    return [P("Suggested photo-quality threshold (from the graders' ungradable calls)", "h2"),
            *[U(s.words(), "body") for s in quality_suggestions(eyes, current)]]


def _arbitration(rows: Sequence[ArbitrationAgreement], width: float) -> list[Flowable]:
    title = P("Per-grader agreement with arbitration", "h2")
    if not rows:
        return [title, P("No grades yet.", "body")]
    data = [[U(r.grader, "cell_bold"), P(str(r.first_reads), "cell"), P(str(r.arbitrated), "cell"),
             P(str(r.upheld), "cell"), P(_num(r.upheld / r.arbitrated) if r.arbitrated else "\u2013", "cell")]
            for r in rows]
    return [title, _table(["Grader", "Eyes first-read", "Went to arbitration", "Upheld by the arbiter",
                           "Share upheld"], data, [width * f for f in (0.3, 0.17, 0.17, 0.18, 0.18)])]


def export_qa(store: ClinicStore, out: Path, site: str, settings: SlipSettings | None = None,
              n_boot: int = 1000) -> tuple[Path, Path, str]:
    """``eyescreen report --format qa``: ``out/qa-report.pdf`` and ``out/qa-eyes.csv``;
    returns their paths and the summary line (which names the kappa)."""
    eyes = qa_eyes(store, site)
    grades = store.grades()
    protocols = {s.encounter_id: s.protocol_name for s in store.encounter_summaries(sorted({g.encounter_id for g in grades}))}
    arbitration = arbitration_agreement(grades, protocols.__getitem__)
    csv_path = write_qa_csv(eyes, out / "qa-eyes.csv")
    pdf = write_qa_report(eyes, arbitration, out / "qa-report.pdf", settings, n_boot,
                          store.applied_quality_threshold())
    return pdf, csv_path, summary_line(agreement(eyes, "all", n_boot))


def write_qa_report(eyes: Sequence[QaEye], arbitration: Sequence[ArbitrationAgreement], path: Path,
                    settings: SlipSettings | None = None, n_boot: int = 1000,
                    quality_threshold: float | None = None) -> Path:
    """Write the quality-assurance report PDF to ``path`` (atomically)."""
    settings = settings or SlipSettings()
    footer = f"EyeScreen quality assurance \u00b7 printed {format_datetime(dt.datetime.now())}"
    return _write_atomic(_build_pdf(qa_story(eyes, arbitration, settings, n_boot, quality_threshold), settings, TITLE, footer),
                         Path(path))

