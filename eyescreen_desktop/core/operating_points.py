"""The model card's operating points in the clinic's words, with what each one does.

A card names its points for the people who trained the model ("default",
"previous-default", "all-validation", "eyepacs-256"); a clinic choosing one in
Settings needs to read what the point promises ("shipped: referable sensitivity
>= 0.90 on every camera") and what it costs (specificity, how many eyes it
refers). Both come from the card's own validation: the ``worst_camera`` section
(per collection, with the counts behind each rate) for the shipped point and the
one before it. Points the card gives no figures for are the developers' (one
collection's, or all validation photographs pooled): offered only as "advanced".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

TYPICAL_PREVALENCE = 0.10
"""Share of referable eyes in a screening clinic, for the "about N% referred" estimate
(validation collections hold far more disease than a clinic sees)."""


@dataclass(frozen=True)
class PointFigures:
    """How an operating point did on labelled photographs (eyes that could be graded)."""

    sensitivity: float          # referable eyes referred
    specificity: float          # other eyes not referred
    referral_rate: float        # share of all the eyes that were referred
    eyes: int
    source: str                 # "validation photographs of 4 collections", "this clinic's graded photographs"

    def referral_rate_at(self, prevalence: float = TYPICAL_PREVALENCE) -> float:
        """Expected share of eyes referred where ``prevalence`` of eyes are referable."""
        return self.sensitivity * prevalence + (1.0 - self.specificity) * (1.0 - prevalence)

    def text(self) -> str:
        """One paragraph a clinic reads before choosing."""
        return (f"Finds {self.sensitivity:.0%} of referable eyes (sensitivity) and clears {self.specificity:.0%} of "
                f"the others (specificity). Expected referral rate: {self.referral_rate:.0%} of the {self.eyes:,} "
                f"{self.source}; about {self.referral_rate_at():.0%} of eyes in a clinic where "
                f"{TYPICAL_PREVALENCE:.0%} of eyes are referable.")


@dataclass(frozen=True)
class PointChoice:
    """One operating point as Settings offers it: ``name`` is the card's key."""

    name: str
    words: str
    advanced: bool
    figures: PointFigures | None = None
    rule: str = ""              # how the point was chosen, in full (the words are its short form)


def figures_from_counts(found: int, referable: int, cleared: int, others: int, source: str) -> PointFigures:
    """Figures from the counts behind them (referable eyes found of all referable; others cleared)."""
    eyes = referable + others
    return PointFigures(found / referable if referable else 0.0, cleared / others if others else 0.0,
                        (found + others - cleared) / eyes if eyes else 0.0, eyes, source)


def _pooled(per_collection: Mapping[str, Any], key: str | None) -> PointFigures | None:
    """Figures pooled over the collections' counts (``key``: a nested point, e.g. previous_default)."""
    totals = [0, 0, 0, 0]
    for figures in per_collection.values():
        f = figures.get(key, {}) if key else figures
        try:
            sens, spec = f["referable_sensitivity"]["n"], f["referable_specificity"]["n"]
        except (KeyError, TypeError):
            return None
        for i, v in enumerate((*sens, *spec)):
            totals[i] += int(v)
    if not totals[1] or not totals[3]:
        return None
    source = f"validation eyes of {len(per_collection)} collections"
    return figures_from_counts(totals[0], totals[1], totals[2], totals[3], source)


def _at_least(rule: str, what: str) -> str:
    """"0.90" from "... referable sensitivity >= 0.90 ..." ("" when the rule does not say)."""
    found = re.search(rf"{what} sensitivity >= ([0-9.]+)", rule)
    return found.group(1) if found else ""


def _shipped_words(rule: str) -> str:
    referable = _at_least(rule, "referable")
    if not referable:
        return "shipped: the model's recommended point"
    return f"shipped: referable sensitivity \u2265 {referable} on every camera"


def _rule_words(rule: str) -> str:
    """The card's rule for people: "on every collection: referable sensitivity >= 0.90, ..." ->
    "Chosen so that on every camera (collection) referable sensitivity is ≥ 0.90, ..."."""
    if not rule:
        return ""
    text = rule.replace(">=", "\u2265").replace("on every collection: ", "")
    return f"Chosen so that, on every camera (collection) it was checked on: {text}."


def describe_points(card: Any) -> list[PointChoice]:
    """Every operating point of ``card`` (a ``ModelCard``), the shipped one first, each in
    words with its validation figures where the card has them; the rest are advanced."""
    raw = getattr(card, "raw", {}) or {}
    worst = raw.get("worst_camera") or {}
    per_collection = worst.get("per_collection") or {}
    default = card.default_operating_point
    rule = str(worst.get("rule", ""))
    choices = [PointChoice(default, _shipped_words(rule), False,
                           _pooled(per_collection, None) if per_collection else None, _rule_words(rule))]
    collections = set(per_collection) | set((raw.get("validation") or {}).get("per_collection") or {})
    for name in card.operating_points:
        if name == default:
            continue
        if name == "previous-default":
            choices.append(PointChoice(name, "previous release's point (chosen during training)", True,
                                       _pooled(per_collection, "previous_default") if per_collection else None))
        elif name == "all-validation":
            choices.append(PointChoice(name, "developers: all validation photographs pooled", True))
        elif name in collections:
            choices.append(PointChoice(name, f"developers: tuned on the {name} collection only", True))
        else:
            choices.append(PointChoice(name, f"{name} (from the model card)", True))
    return choices


def calibration_figures(overall: Any) -> PointFigures:
    """Figures of a clinic's own calibration (``Calibration.overall``), as for the card's points."""
    sens, spec = overall.referable_sensitivity, overall.referable_specificity
    return figures_from_counts(sens.hits, sens.total, spec.hits, spec.total, "eyes your graders graded")
