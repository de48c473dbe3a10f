"""Screening metrics as small pure numpy functions, so they are checked by hand in tests.

Why not scikit-learn: these few functions are all we need, and owning them lets
the bootstrap resample *patients* (both eyes of a person move together), which
is what the confidence intervals in the evaluation report must mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..domain.thresholds import threshold_for_sensitivity  # noqa: F401 - re-exported: metrics is where callers look for it

QUEUE_ORDER: tuple[str, ...] = ("urgent", "routine", "review", "annual")


def roc_curve(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct threshold (descending),
    starting at (0, 0); a photograph is positive when ``score >= threshold``."""
    y = np.asarray(y).astype(bool).ravel()
    score = np.asarray(score, np.float64).ravel()
    order = np.argsort(-score, kind="mergesort")
    s, yy = score[order], y[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp = np.cumsum(yy)[last_of_tie]
    fp = np.cumsum(~yy)[last_of_tie]
    pos, neg = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    return np.r_[0.0, fp / neg], np.r_[0.0, tp / pos], np.r_[np.inf, s[last_of_tie]]


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve: the chance a random positive scores above a random
    negative (ties count half). NaN when one class is absent."""
    y = np.asarray(y).astype(bool).ravel()
    score = np.asarray(score, np.float64).ravel()
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(score)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    ranks = np.empty(len(x), np.float64)
    start = 0
    for end in np.r_[np.flatnonzero(np.diff(sorted_x)) + 1, len(x)]:
        ranks[order[start:end]] = (start + end + 1) / 2.0  # 1-based average rank of the tie
        start = end
    return ranks


def sens_spec(y: np.ndarray, score: np.ndarray, threshold: float) -> tuple[float, float]:
    """Sensitivity and specificity when ``score >= threshold`` means positive."""
    y = np.asarray(y).astype(bool).ravel()
    pred = np.asarray(score).ravel() >= threshold
    sens = float((pred & y).sum() / y.sum()) if y.any() else float("nan")
    spec = float((~pred & ~y).sum() / (~y).sum()) if (~y).any() else float("nan")
    return sens, spec


def patient_bootstrap(statistic: Callable[[np.ndarray], float], groups: Sequence[str],
                      n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile confidence interval of ``statistic(indices)`` with patients
    resampled with replacement (each drawn patient brings all their photographs).
    Replicates where the statistic is undefined (NaN) are skipped."""
    groups = np.asarray(groups)
    uniq, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(uniq))]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        drawn = rng.integers(0, len(uniq), len(uniq))
        value = statistic(np.concatenate([members[g] for g in drawn]))
        if not np.isnan(value):
            values.append(value)
    if not values:
        return float("nan"), float("nan")
    lo, hi = np.percentile(values, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


@dataclass(frozen=True)
class RateCI:
    """A rate with its patient-bootstrap 95% interval and the counts behind it."""

    value: float
    low: float
    high: float
    hits: int
    total: int

    def text(self) -> str:
        return f"{self.value:.3f} ({self.low:.3f}-{self.high:.3f}) [{self.hits}/{self.total}]"


def sens_spec_ci(y: np.ndarray, score: np.ndarray, threshold: float, groups: Sequence[str],
                 n_boot: int = 1000, seed: int = 0, weights: np.ndarray | None = None) -> tuple[RateCI, RateCI]:
    """Sensitivity and specificity at ``threshold`` with patient-bootstrap CIs; with
    ``weights`` (1 / P(graded) per eye) weighted for verification bias."""
    y = np.asarray(y).astype(bool).ravel()
    pred = np.asarray(score).ravel() >= threshold
    if weights is not None and not np.all(np.asarray(weights, float) == 1.0):
        return (weighted_rate_ci(pred, y, weights, groups, n_boot, seed),
                weighted_rate_ci(~pred, ~y, weights, groups, n_boot, seed))
    sens, spec = sens_spec(y, score, threshold)
    s_ci = patient_bootstrap(lambda i: _rate(pred[i] & y[i], y[i]), groups, n_boot, seed)
    p_ci = patient_bootstrap(lambda i: _rate(~pred[i] & ~y[i], ~y[i]), groups, n_boot, seed)
    return (RateCI(sens, *s_ci, int((pred & y).sum()), int(y.sum())),
            RateCI(spec, *p_ci, int((~pred & ~y).sum()), int((~y).sum())))


def auc_ci(y: np.ndarray, score: np.ndarray, groups: Sequence[str], n_boot: int = 1000,
           seed: int = 0) -> tuple[float, float, float]:
    """ROC AUC and its patient-bootstrap 95% interval."""
    y, score = np.asarray(y).ravel(), np.asarray(score).ravel()
    return (roc_auc(y, score), *patient_bootstrap(lambda i: roc_auc(y[i], score[i]), groups, n_boot, seed))


def _rate(hits: np.ndarray, of: np.ndarray) -> float:
    n = of.sum()
    return float(hits.sum() / n) if n else float("nan")


def calibration_bins(y: np.ndarray, prob: np.ndarray, n_bins: int = 10
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean predicted probability, observed fraction positive and count per
    equal-width probability bin (empty bins dropped)."""
    y = np.asarray(y, np.float64).ravel()
    prob = np.asarray(prob, np.float64).ravel()
    idx = np.clip((prob * n_bins).astype(int), 0, n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins)
    mean_p = np.bincount(idx, prob, n_bins) / np.maximum(counts, 1)
    frac = np.bincount(idx, y, n_bins) / np.maximum(counts, 1)
    keep = counts > 0
    return mean_p[keep], frac[keep], counts[keep]


def confusion(true: Sequence[str], predicted: Sequence[str],
              labels: Sequence[str] = QUEUE_ORDER) -> np.ndarray:
    """Counts matrix, rows = true label, columns = predicted, in ``labels`` order."""
    index = {lab: i for i, lab in enumerate(labels)}
    m = np.zeros((len(labels), len(labels)), np.int64)
    for t, p in zip(true, predicted):
        m[index[t], index[p]] += 1
    return m


def quadratic_weighted_kappa(a: Sequence[int], b: Sequence[int], n_classes: int = 5) -> float:
    """Cohen's kappa with quadratic disagreement weights between two raters' ordinal
    grades (0 .. n_classes-1): 1 = perfect agreement, 0 = chance; a grade two steps
    apart costs four times one step. NaN with no pairs or no spread."""
    a, b = np.asarray(a, int).ravel(), np.asarray(b, int).ravel()
    if len(a) == 0:
        return float("nan")
    observed = np.zeros((n_classes, n_classes))
    np.add.at(observed, (a, b), 1.0)
    i, j = np.indices((n_classes, n_classes))
    weights = (i - j) ** 2 / (n_classes - 1) ** 2
    expected = np.outer(observed.sum(1), observed.sum(0)) / len(a)
    denominator = float((weights * expected).sum())
    return float("nan") if denominator == 0 else 1.0 - float((weights * observed).sum()) / denominator


def weighted_rate(hits: np.ndarray, of: np.ndarray, weights: np.ndarray) -> float:
    """sum(w * hits) / sum(w * of): a rate where each eye stands for 1/P(graded) eyes
    (verification bias). NaN when nothing qualifies."""
    of = np.asarray(of, bool)
    total = float(np.asarray(weights, float)[of].sum())
    return float(np.asarray(weights, float)[of & np.asarray(hits, bool)].sum() / total) if total else float("nan")


def weighted_rate_ci(hits: np.ndarray, of: np.ndarray, weights: np.ndarray, groups: Sequence[str],
                     n_boot: int = 1000, seed: int = 0) -> RateCI:
    """:func:`weighted_rate` with its patient-bootstrap 95% interval and the raw counts."""
    hits, of, weights = np.asarray(hits, bool), np.asarray(of, bool), np.asarray(weights, float)
    value = weighted_rate(hits, of, weights)
    low, high = patient_bootstrap(lambda i: weighted_rate(hits[i], of[i], weights[i]), groups, n_boot, seed) \
        if len(hits) else (float("nan"), float("nan"))
    return RateCI(value, low, high, int((hits & of).sum()), int(of.sum()))


def paired_auc_difference(y: np.ndarray, score_a: np.ndarray, score_b: np.ndarray, groups: Sequence[str],
                          n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """AUC(b) - AUC(a) on the same photographs, with a paired patient-bootstrap 95% CI:
    each replicate draws patients once and scores both on the same draw, so the
    interval reflects the difference between the scorings, not the spread of the
    patients (two separate AUC intervals overlap long before the difference is noise).
    A change is kept when the interval excludes 0."""
    y, a, b = np.asarray(y).ravel(), np.asarray(score_a).ravel(), np.asarray(score_b).ravel()
    lo, hi = patient_bootstrap(lambda i: roc_auc(y[i], b[i]) - roc_auc(y[i], a[i]), groups, n_boot, seed)
    return roc_auc(y, b) - roc_auc(y, a), lo, hi
