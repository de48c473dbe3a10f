"""ICDR grade cut-offs and the referral-flag rule, once.

Referable diabetic retinopathy is ICDR grade 2 or worse (or maculopathy), urgent is
grade 3 or worse. An eye is referred when p(urgent) reaches the urgent threshold,
p(referable) reaches the referable threshold, or maculopathy is flagged; the scalar
form decides one eye at the desk, the numpy form counts thousands in calibration and
training, and both are written side by side so they cannot disagree.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

REFERABLE_GRADE = 2
URGENT_GRADE = 3


def is_referable(grade: int) -> bool:
    """ICDR grade 2 (moderate NPDR) or worse needs an ophthalmologist."""
    return grade >= REFERABLE_GRADE


def is_urgent(grade: int) -> bool:
    """ICDR grade 3 (severe NPDR) or worse needs one soon."""
    return grade >= URGENT_GRADE


def risks_from_grades(grade_probs: npt.ArrayLike) -> tuple[npt.NDArray[np.floating], npt.NDArray[np.floating]]:
    """p(referable) and p(urgent) that a grade softmax implies, one row per eye: the
    probability of ICDR grade 2 or worse and of 3 or worse (the classifier's fallback
    when a model has no referable/urgent head, and training's comparison with the heads)."""
    g = np.asarray(grade_probs)
    return g[:, REFERABLE_GRADE:].sum(axis=1), g[:, URGENT_GRADE:].sum(axis=1)


def referred(p_referable: float, p_urgent: float, t_referable: float, t_urgent: float,
             maculopathy: bool = False) -> bool:
    """One eye: is it referred at these thresholds (urgent or routine, not annual)?"""
    return bool(p_urgent >= t_urgent or p_referable >= t_referable or maculopathy)


def referred_array(p_referable: npt.ArrayLike, p_urgent: npt.ArrayLike, t_referable: float, t_urgent: float,
                   maculopathy: npt.ArrayLike | None = None) -> npt.NDArray[np.bool_]:
    """Many eyes at once: :func:`referred` elementwise, as a boolean array."""
    flags: npt.NDArray[np.bool_] = (np.asarray(p_urgent) >= t_urgent) | (np.asarray(p_referable) >= t_referable)
    if maculopathy is not None:
        flags = flags | np.asarray(maculopathy, bool)
    return flags
