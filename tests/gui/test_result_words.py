"""The window's words for a graded eye say what the evidence supports (issue 24, item 5),
in the same phrases as the slip (core.evidence)."""

from __future__ import annotations

import dataclasses

from eyescreen_desktop.core import records
from eyescreen_desktop.core.protocol import get_protocol
from eyescreen_desktop.core.records import (
    Eye,
    OperatingPoint,
    Patient,
    Prediction,
    Status,
)
from eyescreen_desktop.gui.result_view import ResultView, eye_words
from tests.core.report_fixtures import HEALTHY, encounter, graded

LOW_POINT = OperatingPoint("site-sensitive", referable=0.15, urgent=0.30, maculopathy=0.5)
FAINT = Prediction((0.70, 0.15, 0.10, 0.03, 0.02), p_referable=0.15, p_urgent=0.05)


def _faint() -> records.EyeResult:
    eye = graded("P004_R.jpg", Eye.RIGHT, HEALTHY)
    return dataclasses.replace(eye, prediction=FAINT, decision=get_protocol("icdr-ada").decide_eye(FAINT, LOW_POINT))


def test_eye_words_name_the_threshold_crossed_not_a_grade():
    verdict, detail, _ = eye_words(_faint(), LOW_POINT)
    assert verdict == "Signs of referable retinopathy"
    assert "15%: above this clinic's referral threshold of 15%" in detail
    assert "model probability" not in detail and "Moderate" not in verdict
    assert "Image quality: gradable" in detail


def test_result_view_shows_the_evidence_of_the_saved_visit(qtbot, monkeypatch):
    monkeypatch.setitem(records.QUALITY_VERDICTS, Status.OK, "gradable (borderline)")
    view = ResultView()
    qtbot.addWidget(view)
    summary = encounter(Patient("P-15", "Faint Signs"), (_faint(), graded("P004_L.jpg", Eye.LEFT, HEALTHY)),
                        operating_point=LOW_POINT)
    view.show_summary(summary)
    card = view.cards[Eye.RIGHT]
    assert card.verdict.text() == "Signs of referable retinopathy"
    assert "above this clinic's referral threshold of 15%" in card.detail.text()
    assert "Image quality: gradable (borderline)" in card.detail.text()   # the gate's words flow through
    assert view.cards[Eye.LEFT].verdict.text() == "No signs of referable retinopathy"
