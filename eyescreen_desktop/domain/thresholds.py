"""How an operating point's thresholds are chosen from graded photographs: one rule for
site calibration, the shipped model card and every point the card carries.

:class:`Rule` on arrays (:func:`thresholds_from_arrays`): on every collection
separately the worst one sets each threshold, then no urgent eye is left in annual.
:func:`floor6` rounds a threshold down to six places, never up (up would drop the eye
that set it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .grades import referred_array


def floor6(t: float) -> float:
    """Round a threshold down (never up: that would drop the eye that set it)."""
    return float(np.floor(float(t) * 1e6) / 1e6)


def threshold_for_sensitivity(y: npt.ArrayLike, score: npt.ArrayLike, min_sensitivity: float,
                              weights: npt.ArrayLike | None = None) -> float:
    """The highest threshold whose sensitivity is at least ``min_sensitivity``
    (the most specific operating point that still meets the screening target); with
    ``weights`` (1 / P(graded) per eye, site calibration), the weighted sensitivity."""
    pos_mask = np.asarray(y).astype(bool).ravel()
    scores = np.asarray(score, np.float64).ravel()
    if weights is not None and not np.all(np.asarray(weights, float) == 1.0):
        return _weighted_threshold(pos_mask, scores, min_sensitivity, np.asarray(weights, float).ravel())
    pos = np.sort(scores[pos_mask])[::-1]
    if len(pos) == 0:
        return 0.5
    k = int(np.ceil(min_sensitivity * len(pos)))  # positives that must score >= t
    return float(pos[max(k, 1) - 1])


def _weighted_threshold(y: np.ndarray, score: np.ndarray, min_sensitivity: float, weights: np.ndarray) -> float:
    """The highest positive's score at which the weighted share of positives reached is enough."""
    order = np.argsort(-score[y], kind="mergesort")
    pos, w = score[y][order], weights[y][order]
    if len(pos) == 0:
        return 0.5
    reached = np.cumsum(w) / w.sum() >= min_sensitivity - 1e-12
    return float(pos[int(np.argmax(reached))])


@dataclass(frozen=True)
class Rule:
    """How thresholds are chosen from graded photographs; written into every operating point.

    On **every** collection separately (the worst one sets each threshold):
    urgent threshold: the highest with urgent sensitivity >= ``urgent_sensitivity``;
    referable threshold: the highest with referable sensitivity >= ``referable_sensitivity``
    on p(referable); then, until **no urgent eye of any collection is left in annual**
    (both thresholds missing it), the referable or the urgent threshold is lowered,
    whichever refers fewer eyes without disease. Thresholds are rounded down, never up."""

    referable_sensitivity: float = 0.90
    urgent_sensitivity: float = 0.97
    name: str = "worst-collection"

    def text(self) -> str:
        """The rule in one sentence, for the operating point file and the report."""
        return (f"on every collection: referable sensitivity >= {self.referable_sensitivity:.2f}, urgent "
                f"sensitivity >= {self.urgent_sensitivity:.2f}, and no urgent eye in annual (worst collection wins)")


@dataclass(frozen=True)
class Thresholds:
    """The two numbers an operating point is made of."""

    referable: float
    urgent: float


def thresholds_from_arrays(y_ref: npt.ArrayLike, p_ref: npt.ArrayLike, y_urg: npt.ArrayLike, p_urg: npt.ArrayLike,
                           collections: npt.ArrayLike, rule: Rule = Rule(),
                           also_flagged: npt.ArrayLike | None = None,
                           weights: npt.ArrayLike | None = None) -> Thresholds:
    """:class:`Rule` on arrays of gradable eyes (calibration and training's points use it).

    Each urgent eye that both thresholds still leave in annual (most probable first)
    is caught by lowering whichever threshold, referable or urgent, refers fewer
    eyes without referable disease (referable on a tie: the gentler queue).
    ``also_flagged`` marks eyes referred anyway (maculopathy above its threshold).
    ``weights`` (1 / P(graded) per eye, default 1: site calibration from a clinic's own
    grades, where only some annual eyes are graded) weigh sensitivity and the eyes
    without disease a threshold refers; no urgent eye is left in annual whatever its weight."""
    yr, yu = np.asarray(y_ref, bool), np.asarray(y_urg, bool)
    pr, pu = np.asarray(p_ref, float), np.asarray(p_urg, float)
    colls = np.asarray(collections)
    extra = np.zeros(len(yr), bool) if also_flagged is None else np.asarray(also_flagged, bool)
    w = np.ones(len(yr)) if weights is None else np.asarray(weights, float)
    t_ref, t_urg = math.inf, math.inf
    for c in np.unique(colls):
        m = colls == c
        if yu[m].any():
            t_urg = min(t_urg, threshold_for_sensitivity(yu[m], pu[m], rule.urgent_sensitivity, w[m]))
        if yr[m].any():
            t_ref = min(t_ref, threshold_for_sensitivity(yr[m], pr[m], rule.referable_sensitivity, w[m]))
    t_urg = 1.0 if math.isinf(t_urg) else floor6(t_urg)
    t_ref = 1.0 if math.isinf(t_ref) else floor6(t_ref)

    def false_alarms(tr: float, tu: float) -> float:
        return float(w[referred_array(pr, pu, tr, tu, extra) & ~yr].sum())

    for i in sorted(np.flatnonzero(yu & ~referred_array(pr, pu, t_ref, t_urg, extra)), key=lambda i: -pr[i]):
        if referred_array(pr, pu, t_ref, t_urg, extra)[i]:
            continue
        by_ref, by_urg = (floor6(min(t_ref, pr[i])), t_urg), (t_ref, floor6(min(t_urg, pu[i])))
        t_ref, t_urg = by_ref if false_alarms(*by_ref) <= false_alarms(*by_urg) else by_urg
    return Thresholds(t_ref, t_urg)
