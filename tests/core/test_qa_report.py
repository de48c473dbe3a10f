"""The agreement report: kappa and verification-bias weights checked by hand, then
``eyescreen report --format qa`` end to end on a real database with real photographs
(the PDF read back with pypdf, the CSV read back)."""

from __future__ import annotations

import csv
import datetime as dt
import random

import numpy as np
import pytest
from pypdf import PdfReader

from eyescreen_desktop import cli
from eyescreen_desktop.core import metrics as M
from eyescreen_desktop.core.grading import HumanGrade
from eyescreen_desktop.core.records import Eye
from eyescreen_desktop.core.store import ClinicStore
from tests.core.grading_fixtures import VISIT, screened

SEED = 3


def test_quadratic_weighted_kappa_by_hand():
    assert M.quadratic_weighted_kappa([0, 1, 2, 3, 4], [0, 1, 2, 3, 4]) == pytest.approx(1.0)
    # two raters, grades 0/1 only (n_classes 2): observed [[1, 1], [0, 2]] of 4 pairs;
    # weights off-diagonal 1: observed disagreement 1/4, expected (2*1 + 2*3)/16 = 1/2 -> 1 - 0.25/0.5
    assert M.quadratic_weighted_kappa([0, 0, 1, 1], [0, 1, 1, 1], n_classes=2) == pytest.approx(0.5)
    # one step apart costs a quarter of two steps: a rater off by two everywhere agrees less
    truth = [0, 1, 2, 3, 4] * 4
    assert M.quadratic_weighted_kappa(truth, [min(g + 1, 4) for g in truth]) > \
        M.quadratic_weighted_kappa(truth, [min(g + 2, 4) for g in truth])


def test_a_sampled_eye_weighs_one_over_its_chance_of_being_graded():
    found = np.array([True, True, False])
    referable = np.array([True, True, True])
    assert M.weighted_rate(found, referable, np.ones(3)) == pytest.approx(2 / 3)
    assert M.weighted_rate(found, referable, np.array([1.0, 1.0, 10.0])) == pytest.approx(2 / 12)


@pytest.fixture
def clinic(tmp_path, database_url):
    """Two AI referrals graded referable, four AI-annual visits of which a 50% QA
    sample (seed 3) is graded urgent in the right eye: the AI's misses, weighed 2."""
    with ClinicStore(database_url, image_store=tmp_path / "data" / "images") as store:
        referrals = [screened(store, p, 2, 0) for p in ("P001", "P003")]
        annual = {screened(store, p, 0, 0, started=VISIT + dt.timedelta(days=i)): p
                  for i, p in enumerate(("P004", "P006", "P007", "P008"))}
        draw = store.draw_qa_sample(0.5, seed=SEED, user="lead")
        rng = random.Random(SEED)                      # the draw goes in visit order
        assert list(draw.drawn) == sorted(e for e in annual if rng.random() < 0.5)
        assert 0 < len(draw.drawn) < len(annual)
        grades = [HumanGrade(e, Eye.RIGHT, "Dr A", 2, source="import") for e in referrals]
        grades += [HumanGrade(e, Eye.RIGHT, "Dr B", 3, source="import") for e in draw.drawn]
        grades += [HumanGrade(e, eye, "Dr A", 0, source="import") for e in [*referrals, *draw.drawn]
                   for eye in (Eye.LEFT,)]
        store.record_grades(grades, user="clerk")
        return database_url, [annual[e] for e in draw.drawn]


def report(tmp_path, url, fmt, out):
    return cli.main(["report", "--format", fmt, "--out", str(out), "--database", url,
                     "--data-dir", str(tmp_path / "data"), "--site", "North clinic"])


def test_the_qa_report_names_the_kappa_weighs_the_sample_and_lists_urgent_eyes_in_annual(tmp_path, clinic, capsys):
    url, missed = clinic
    out = tmp_path / "qa"
    assert report(tmp_path, url, "qa", out) == 0
    printed = capsys.readouterr().out
    assert "quadratic-weighted kappa" in printed
    expected_sensitivity = 2 / (2 + 2 * len(missed))        # each missed eye of the 50% sample counts twice
    assert f"referable sensitivity {expected_sensitivity:.3f}" in printed
    with open(out / "qa-eyes.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * (2 + len(missed))
    weights = {(r["patient_id"], r["eye"]): float(r["weight"]) for r in rows}
    assert all(weights[(p, "R")] == 2.0 for p in missed) and weights[("P001", "R")] == 1.0
    assert {r["patient_id"] for r in rows if r["urgent_in_annual"] == "1"} == set(missed)
    assert {r["site"] for r in rows} == {"North clinic"} and {r["camera"] for r in rows} == {"1024x685"}
    text = " ".join(page.extract_text() for page in PdfReader(out / "qa-report.pdf").pages)
    assert "Quality assurance" in text and "kappa" in text
    for heading in ("Per site", "Per camera", "Per month", "Per grader", "Per-grader agreement with arbitration",
                    "gate: ungradable"):
        assert heading in text, heading
    assert "North clinic" in text and "2026-05" in text
    for patient in missed:
        assert patient in text.split("Grader-urgent eyes the AI put in annual")[1]


def test_format_all_does_not_include_the_qa_report(tmp_path, clinic):
    url, _ = clinic
    assert report(tmp_path, url, "all", tmp_path / "all") == 0
    assert not (tmp_path / "all" / "qa-report.pdf").exists() and (tmp_path / "all" / "queues.csv").exists()


def test_the_qa_report_draws_the_confusion_heat_map_and_the_monthly_rates(tmp_path, clinic):
    url, _missed = clinic
    out = tmp_path / "qa"
    assert report(tmp_path, url, "qa", out) == 0
    text = " ".join(page.extract_text() for page in PdfReader(out / "qa-report.pdf").pages).replace("\n", " ")
    assert "Each row shaded by its share" in text                  # the confusion heat map
    assert "grader U" in text and "AI U" in text
    assert "specificity (bars: 95% interval)" in text               # the monthly plot's legend
    monthly = text.split("Per month")[1].split("Per grader")[0]
    assert "referable sensitivity" in monthly and "2026-05" in monthly
