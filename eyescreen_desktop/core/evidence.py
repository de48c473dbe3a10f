"""What the evidence supports, in words: the one phrase the slip and the window
print for a graded eye, and the image-quality line.

A referable threshold can fire at 15%, so the eye's headline is not a grade
name ("Moderate NPDR ... model probability 15%" claimed more than a 15%
probability supports) but which of the clinic's thresholds the probability
crossed, with both numbers: "Signs of referable retinopathy (15%: above this
clinic's referral threshold of 15%)". The protocol's code (``ICDR 2``) stays
on the slip as the code the protocol files the eye under.

Qt-free and reportlab-free: the window imports it at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from ..domain.grades import is_referable, is_urgent
from .protocol import threshold_flags
from .records import EyeResult, OperatingPoint, Status


def format_probability(p: float | None) -> str:
    """A probability as a percentage, never claiming 0% or 100%."""
    if p is None:
        return "n/a"
    if p < 0.005:
        return "<1%"
    if p > 0.995:
        return ">99%"
    return f"{p * 100:.0f}%"


@dataclass(frozen=True)
class Evidence:
    """One finding the model's output supports: ``headline`` ("Signs of referable
    retinopathy") and ``basis`` ("15%: above this clinic's referral threshold of 15%")."""

    headline: str
    basis: str

    @property
    def words(self) -> str:
        """``Signs of referable retinopathy (15%: above ... of 15%)``."""
        return f"{self.headline} ({self.basis})"


def _basis(p: float, threshold: float | None, which: str) -> str:
    """``15%: above this clinic's referral threshold of 15%`` (p >= threshold fires,
    as in core.protocol); only the probability when no threshold is known."""
    if threshold is None:
        return f"model probability {format_probability(p)}"
    side = "above" if p >= threshold else "below"
    return f"{format_probability(p)}: {side} this clinic's {which} threshold of {format_probability(threshold)}"


def eye_evidence(result: EyeResult, op: OperatingPoint | None) -> list[Evidence]:
    """What a graded eye's probabilities support, most serious first: sight-threatening,
    else referable, else no referable retinopathy; then maculopathy when its threshold
    fired. Which threshold fired comes from the protocol's own rule with ``op``; without
    ``op`` (not known yet) from the decision's grade. Empty for an ungraded eye or an
    eye check of the front of the eye (not a retinopathy grade)."""
    p, d = result.prediction, result.decision
    if result.status is not Status.OK or p is None or d is None or result.p_checkup is not None:
        return []
    if op is not None:
        flags = threshold_flags(p, op)
        urgent, referable, macula = flags.urgent, flags.referable, flags.maculopathy
    else:
        grade = d.grade if d.grade is not None else p.grade
        urgent, referable, macula = is_urgent(grade), is_referable(grade), "maculopathy" in d.finding
    if urgent:
        out = [Evidence("Signs of sight-threatening retinopathy",
                        _basis(p.p_urgent, op.urgent if op else None, "urgent referral"))]
    elif referable:
        out = [Evidence("Signs of referable retinopathy", _basis(p.p_referable, op.referable if op else None,
                                                                   "referral"))]
    else:
        out = [Evidence("No signs of referable retinopathy", _basis(p.p_referable, op.referable if op else None,
                                                                      "referral"))]
    if macula and p.p_maculopathy is not None:
        out.append(Evidence("Signs of maculopathy", _basis(p.p_maculopathy, op.maculopathy if op else None,
                                                           "maculopathy")))
    return out


def quality_line(result: EyeResult) -> str:
    """``Image quality: gradable``, in the gate's own words (``QualityReport.verdict``),
    so a verdict the gate adds (e.g. "borderline") prints without another change here."""
    verdict = result.quality.verdict if result.quality is not None else "not checked"
    return f"Image quality: {verdict}"
