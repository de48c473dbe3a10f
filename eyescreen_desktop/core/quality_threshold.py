"""A photo-quality threshold for the clinic's camera, suggested from the grader's
ungradable calls (issue 22).

Why: the learned gate refuses a photograph when its p_reject reaches the card's
``reject`` threshold, chosen on other cameras. On this clinic's camera the
grader's own "ungradable" calls show where the line should lie: a gate that
refuses photographs the grader read without trouble sends patients back for
retakes; one that passes photographs the grader could not read lets the model
grade what nobody can. The agreement report suggests the threshold that best
matches the grader (weighted Youden J: ungradable caught plus gradable passed,
each eye weighed 1/P(graded)); only an admin applies it
(``ClinicStore.apply_quality_threshold``), and screening then reads it
(``screening.site_gate``). Pure: no store, no Qt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MIN_UNGRADABLE = 5
"""Grader-ungradable eyes (with the gate's p_reject) needed before a suggestion."""
MIN_GRADABLE = 20
"""Grader-gradable eyes (with the gate's p_reject) needed before a suggestion."""


@dataclass(frozen=True)
class QualityEye:
    """One graded eye: the gate's p_reject of its photograph, whether the grader
    called it ungradable, and its weight 1/P(graded)."""

    p_reject: float
    grader_ungradable: bool
    weight: float = 1.0


@dataclass(frozen=True)
class QualitySuggestion:
    """The threshold suggested for a camera (None while too few graded eyes), and how
    the current and the suggested thresholds agree with the grader."""

    camera: str
    current: float
    threshold: float | None
    eyes: int
    ungradable: int
    agreement_now: tuple[float, float]          # (ungradable refused, gradable passed), weighted
    agreement_suggested: tuple[float, float] | None
    needs: str = ""

    def words(self) -> str:
        """The suggestion in a grader's and an admin's words."""
        if self.threshold is None:
            return f"Photo-quality threshold for {self.camera}: no suggestion yet ({self.needs})."
        now, new = self.agreement_now, self.agreement_suggested or self.agreement_now
        return (f"Photo-quality threshold for {self.camera}: suggested {self.threshold:.3f} (now {self.current:.3f}), "
                f"from {self.eyes} graded eyes of which {self.ungradable} the grader called ungradable. "
                f"At the suggestion the gate refuses {new[0]:.0%} of the grader's ungradable eyes and passes "
                f"{new[1]:.0%} of the gradable ones (now {now[0]:.0%} and {now[1]:.0%}). An admin applies it.")


def _rates(p: np.ndarray, bad: np.ndarray, w: np.ndarray, t: float) -> tuple[float, float]:
    refused = p >= t
    caught = float(w[bad & refused].sum() / w[bad].sum()) if bad.any() else 0.0
    passed = float(w[~bad & ~refused].sum() / w[~bad].sum()) if (~bad).any() else 0.0
    return caught, passed


def suggest_quality_threshold(eyes: Sequence[QualityEye], current: float, camera: str = "this camera",
                              min_ungradable: int = MIN_UNGRADABLE,
                              min_gradable: int = MIN_GRADABLE) -> QualitySuggestion:
    """The reject threshold on the gate's p_reject that best agrees with the grader's
    ungradable calls (highest weighted Youden J; ties go to the one nearest the
    current threshold, so the point moves only for a reason), or no suggestion, with
    what is missing, below ``min_ungradable`` ungradable or ``min_gradable`` gradable eyes."""
    p = np.array([e.p_reject for e in eyes], float)
    bad = np.array([e.grader_ungradable for e in eyes], bool)
    w = np.array([e.weight for e in eyes], float)
    n_bad, n_good = int(bad.sum()), int((~bad).sum())
    now = _rates(p, bad, w, current)
    if n_bad < min_ungradable or n_good < min_gradable:
        missing = [f"{min_ungradable - n_bad} more ungradable" if n_bad < min_ungradable else "",
                   f"{min_gradable - n_good} more gradable" if n_good < min_gradable else ""]
        return QualitySuggestion(camera, current, None, len(eyes), n_bad, now, None,
                                 "needs " + " and ".join(m for m in missing if m) + " graded eyes")
    candidates = np.unique(np.concatenate([np.floor(p * 1e4) / 1e4, [current]]))
    best, best_key = current, (-np.inf, 0.0)
    for t in candidates:
        caught, passed = _rates(p, bad, w, float(t))
        key = (round(caught + passed - 1.0, 9), -abs(float(t) - current))
        if key > best_key:
            best, best_key = float(t), key
    return QualitySuggestion(camera, current, best, len(eyes), n_bad, now, _rates(p, bad, w, best))
