"""Evaluation: metrics checked against values worked out by hand, and the report
written for a real (tiny) model on real photographs."""

from __future__ import annotations

import argparse
import csv

import numpy as np
import pytest

from eyescreen_desktop.training import metrics as M

# A small fixture: 4 patients, 8 eyes. Scores chosen so every number below is easy by hand.
Y = np.array([0, 0, 1, 1, 0, 1, 0, 0])
S = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9, 0.6, 0.05])
PATIENTS = ["a", "a", "b", "b", "c", "c", "d", "d"]


def test_auc_counts_pairs_and_ties():
    # positives 0.35, 0.8, 0.9 vs negatives 0.1, 0.4, 0.2, 0.6, 0.05:
    # 0.35 beats 3 of 5, 0.8 and 0.9 beat all 5 -> 13 / 15
    assert M.roc_auc(Y, S) == pytest.approx(13 / 15)
    assert M.roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9]) == pytest.approx(3.5 / 4)  # a tie counts half
    assert np.isnan(M.roc_auc([1, 1], [0.2, 0.3]))


def test_roc_curve_points_and_area_agree():
    fpr, tpr, thr = M.roc_curve(Y, S)
    assert fpr[0] == 0 and tpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1
    # descending thresholds 0.9, 0.8, 0.6, 0.4, 0.35 ...: after 0.6 one negative is in
    assert list(thr[1:4]) == [0.9, 0.8, 0.6]
    assert tpr[3] == pytest.approx(2 / 3) and fpr[3] == pytest.approx(1 / 5)
    assert np.trapezoid(tpr, fpr) == pytest.approx(M.roc_auc(Y, S))


def test_sensitivity_specificity_and_threshold_choice():
    assert M.sens_spec(Y, S, 0.5) == pytest.approx((2 / 3, 4 / 5))
    assert M.sens_spec(Y, S, 0.35) == pytest.approx((1.0, 3 / 5))
    # positives sorted 0.9, 0.8, 0.35: 90% sensitivity needs all three -> threshold 0.35
    assert M.threshold_for_sensitivity(Y, S, 0.90) == pytest.approx(0.35)
    assert M.threshold_for_sensitivity(Y, S, 0.60) == pytest.approx(0.8)  # two of three
    assert M.sens_spec(Y, S, M.threshold_for_sensitivity(Y, S, 0.97))[0] >= 0.97


def test_bootstrap_resamples_patients_not_photographs():
    sizes = set()
    M.patient_bootstrap(lambda idx: sizes.add(len(idx)) or 0.0, ["p", "q", "q", "q"], n_boot=200, seed=1)
    assert sizes == {2, 4, 6}  # patients of 1 and 3 photos: never an odd total
    lo, hi = M.patient_bootstrap(lambda idx: float(np.mean(S[idx])), PATIENTS, n_boot=500, seed=0)
    assert lo < S.mean() < hi
    assert (lo, hi) == M.patient_bootstrap(lambda idx: float(np.mean(S[idx])), PATIENTS, n_boot=500, seed=0)
    sens, spec = M.sens_spec_ci(Y, S, 0.5, PATIENTS, n_boot=300)
    assert (sens.value, sens.hits, sens.total) == (pytest.approx(2 / 3), 2, 3)
    assert (spec.hits, spec.total) == (4, 5)
    assert 0 <= sens.low <= sens.value <= sens.high <= 1
    same = M.sens_spec_ci(np.ones(4), np.ones(4), 0.5, ["a", "a", "b", "b"], n_boot=50)[0]
    assert (same.low, same.high) == (1.0, 1.0)


def test_confusion_matrix_and_calibration_bins():
    cm = M.confusion(["urgent", "urgent", "annual", "routine"], ["urgent", "annual", "review", "routine"])
    assert cm.tolist() == [[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0]]
    mean_p, frac, counts = M.calibration_bins([0, 1, 1, 0], [0.05, 0.15, 0.95, 0.92], n_bins=10)
    np.testing.assert_allclose(mean_p, [0.05, 0.15, 0.935])
    np.testing.assert_allclose(frac, [0, 1, 0.5])
    assert counts.tolist() == [1, 1, 2]


def test_evaluate_command_writes_report_plots_and_predictions(tmp_path, tiny_model_dir, small_manifests):
    from eyescreen_desktop.training import evaluate

    parser = argparse.ArgumentParser()
    evaluate.add_arguments(parser)
    args = parser.parse_args(["--data", str(small_manifests[0]), "--data", str(small_manifests[1]),
                              "--model", str(tiny_model_dir), "--out", str(tmp_path / "eval"), "--bootstrap", "50"])
    assert evaluate.run(args) == 0
    report = (tmp_path / "eval" / "report.md").read_text()
    for needle in ("referable", "urgent", "Queue confusion", "Per collection", "fundus-dr", "eyepacs-256",
                   "refused by the quality gate", "roc.png", "calibration.png", "queues.png"):
        assert needle in report
    for png in ("roc.png", "calibration.png", "queues.png"):
        assert (tmp_path / "eval" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(tmp_path / "eval" / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    listed = sum(len(list(csv.DictReader(open(m)))) for m in small_manifests)
    assert len(rows) == listed
    gated = [r for r in rows if r["status"] != "ok"]
    assert all(r["queue"] == "review" and r["p_referable"] == "" for r in gated)
    graded = [r for r in rows if r["status"] == "ok"]
    assert graded and all(r["queue"] in ("urgent", "routine", "annual") for r in graded)
    assert f"{len(gated)} refused by the quality gate" in report


def test_queue_and_summary_follow_the_protocol_at_the_operating_point():
    from pathlib import Path

    from eyescreen_desktop.training.data import Sample
    from eyescreen_desktop.training.evaluate import EvalResult, true_queue

    samples = [Sample(Path(f"{i}.jpg"), p, "L", g, int(g >= 2), "c") for i, (p, g) in
               enumerate(zip(PATIENTS, [0, 0, 2, 3, 0, 4, 1, 0]))]
    assert [true_queue(s) for s in samples] == ["annual", "annual", "routine", "urgent", "annual", "urgent",
                                                "annual", "annual"]
    p_urg = np.array([0.0, 0.1, 0.1, 0.7, 0.0, 0.2, 0.0, 0.0])  # the second urgent eye is missed by urgent...
    result = EvalResult(samples, ["ok"] * 8, [()] * 8, S, p_urg, np.full((8, 5), 0.2),
                        ["annual", "annual", "annual", "urgent", "annual", "routine", "routine", "annual"], 0.5, 0.5)
    s = result.summary(n_boot=50)
    assert s["urgent_sensitivity"].value == pytest.approx(0.5)
    # ... but referable (0.9 >= 0.5) still flags it: referable sensitivity counts either threshold
    assert s["referable_sensitivity"].value == pytest.approx(2 / 3)
    assert s["urgent_in_annual"] == 0
