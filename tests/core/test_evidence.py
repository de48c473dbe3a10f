"""What a slip says a graded eye's probabilities support (issue 24, item 5).

A clinic's referral threshold can sit at 15%; an eye over it was printed as
"Moderate non-proliferative diabetic retinopathy" with "(model probability 15%)",
a grade that a 15% probability does not support. The slip now says which
threshold the probability crossed, with both numbers, and the image-quality
line carries the gate's own verdict words."""

from __future__ import annotations

import dataclasses

from eyescreen_desktop.core import records, reports
from eyescreen_desktop.core.evidence import eye_evidence
from eyescreen_desktop.core.protocol import get_protocol
from eyescreen_desktop.core.records import (
    Eye,
    OperatingPoint,
    Patient,
    Prediction,
    Queue,
    Status,
)
from tests.core.report_fixtures import HEALTHY, encounter, graded, pdf_text

LOW_POINT = OperatingPoint("site-sensitive", referable=0.15, urgent=0.30, maculopathy=0.5)
# most probable grade 0; 15% on grade 2 and above: referable at this point, but no grade is shown
FAINT = Prediction((0.70, 0.15, 0.10, 0.03, 0.02), p_referable=0.15, p_urgent=0.05)


def _faint_eye(path_from: records.EyeResult) -> records.EyeResult:
    decision = get_protocol("icdr-ada").decide_eye(FAINT, LOW_POINT)
    return dataclasses.replace(path_from, prediction=FAINT, decision=decision)


def test_a_15_percent_referral_says_what_the_evidence_supports_not_a_grade(tmp_path):
    right = _faint_eye(graded("P004_R.jpg", Eye.RIGHT, HEALTHY))
    assert right.queue is Queue.ROUTINE and right.decision.grade == 2   # the protocol still refers
    summary = encounter(Patient("P-15", "Faint Signs"), (right, graded("P004_L.jpg", Eye.LEFT, HEALTHY)),
                        operating_point=LOW_POINT)
    text = pdf_text(reports.write_referral_slip(summary, tmp_path / "slip.pdf"))
    assert "Signs of referable retinopathy (15%: above this clinic's referral threshold of 15%)" in text
    assert "No signs of referable retinopathy (" in text          # the left eye, below the same threshold
    assert "moderate non-proliferative" not in text.lower()       # no grade named for 15%
    assert "Protocol code: ICDR 2" in text                        # the code the protocol files it under


def test_evidence_without_a_known_operating_point_gives_the_probability_only():
    right = _faint_eye(graded("P004_R.jpg", Eye.RIGHT, HEALTHY))
    (only,) = eye_evidence(right, None)
    assert only.words == "Signs of referable retinopathy (model probability 15%)"


def test_image_quality_line_uses_the_gates_own_verdict(tmp_path, monkeypatch):
    """The slip prints QualityReport.verdict, so a verdict the gate adds flows through."""
    monkeypatch.setitem(records.QUALITY_VERDICTS, Status.OK, "gradable (borderline)")
    summary = encounter(Patient("P-16", "Borderline"), (graded("P004_R.jpg", Eye.RIGHT, HEALTHY),))
    text = pdf_text(reports.write_referral_slip(summary, tmp_path / "slip.pdf"))
    assert "Image quality: gradable (borderline)" in text
