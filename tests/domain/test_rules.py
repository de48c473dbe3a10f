"""Grade cut-offs, the referral-flag rule (scalar and numpy agree) and the threshold rule."""

from __future__ import annotations

import numpy as np
import pytest

from eyescreen_desktop.domain.grades import is_referable, is_urgent, referred, referred_array, risks_from_grades
from eyescreen_desktop.domain.thresholds import Rule, floor6, threshold_for_sensitivity, thresholds_from_arrays
from eyescreen_desktop.domain.vocabulary import REASON_WORDS, Eye, Modality, Queue, Status, reason_words


def test_grade_cut_offs():
    assert [is_referable(g) for g in range(5)] == [False, False, True, True, True]
    assert [is_urgent(g) for g in range(5)] == [False, False, False, True, True]


def test_a_grade_softmax_implies_referable_from_grade_2_and_urgent_from_grade_3():
    """The classifier's fallback without heads and training's comparison with them."""
    grades = np.array([[0.5, 0.2, 0.15, 0.1, 0.05], [0.0, 0.0, 0.0, 0.0, 1.0]])
    p_ref, p_urg = risks_from_grades(grades)
    assert p_ref == pytest.approx([0.3, 1.0]) and p_urg == pytest.approx([0.15, 1.0])


def test_referral_flag_scalar_and_numpy_agree():
    rng = np.random.default_rng(3)
    p_ref, p_urg, mac = rng.random(200), rng.random(200), rng.random(200) > 0.9
    many = referred_array(p_ref, p_urg, 0.6, 0.8, mac)
    one_by_one = [referred(float(r), float(u), 0.6, 0.8, bool(m)) for r, u, m in zip(p_ref, p_urg, mac)]
    assert many.tolist() == one_by_one and 0 < many.sum() < 200
    assert referred(0.6, 0.0, 0.6, 0.8) and referred(0.0, 0.8, 0.6, 0.8) and not referred(0.59, 0.79, 0.6, 0.8)


def test_floor6_never_rounds_up():
    assert floor6(0.1234569) == 0.123456 and floor6(0.5) == 0.5
    assert floor6(0.9999999) < 0.9999999


def test_threshold_rule_leaves_no_urgent_eye_in_annual():
    y_urg = np.array([1, 0, 0, 0, 1, 0], bool)
    y_ref = np.array([1, 1, 0, 0, 1, 0], bool)
    p_ref = np.array([0.2, 0.9, 0.1, 0.3, 0.8, 0.05])
    p_urg = np.array([0.1, 0.2, 0.05, 0.1, 0.9, 0.01])
    t = thresholds_from_arrays(y_ref, p_ref, y_urg, p_urg, np.array(["a"] * 6), Rule(0.5, 0.5))
    assert referred_array(p_ref, p_urg, t.referable, t.urgent)[y_urg].all()
    assert threshold_for_sensitivity(y_ref, p_ref, 0.5) == pytest.approx(0.8)


def test_words_for_staff():
    assert Status.UNGRADABLE.label == "could not be graded" and Status.ERROR.label == "file could not be read"
    assert Queue.ANNUAL.label == "Annual screening" and Eye.LEFT.label == "left eye"
    assert Modality("external_eye") is Modality.EXTERNAL_EYE and Modality.FUNDUS == "fundus"
    assert Modality.OTHER.label == "not an eye photograph"
    assert reason_words(["small_field", "odd_thing"]) == f"{REASON_WORDS['small_field']}, odd thing"
