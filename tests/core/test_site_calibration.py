"""Site calibration from the clinic database's grader-confirmed eyes: the weights
1/P(graded) in the choice by hand, the refusals (too few eyes, both sources), and a
point chosen on real photographs re-screened by the shipped model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from eyescreen_desktop import cli
from eyescreen_desktop.core import calibration as C
from eyescreen_desktop.core import metrics as M
from eyescreen_desktop.core.classifier import Classifier, read_card
from eyescreen_desktop.core.grading import HumanGrade
from eyescreen_desktop.core.paths import default_model_dir
from eyescreen_desktop.core.records import Eye
from eyescreen_desktop.core.site_calibration import calibrate_site
from eyescreen_desktop.core.store import ClinicStore
from tests.conftest import FUNDUS_DR, read_labels
from tests.core.grading_fixtures import screened

MODEL = default_model_dir()


def test_a_weighted_eye_counts_as_many_eyes_for_sensitivity():
    y = np.array([True, True, True, True])
    score = np.array([0.9, 0.8, 0.7, 0.1])
    assert M.threshold_for_sensitivity(y, score, 0.75) == pytest.approx(0.7)
    # the low-scoring eye stands for 9 eyes (a 1-in-9 QA sample): 75% now needs it found
    assert M.threshold_for_sensitivity(y, score, 0.75, np.array([1, 1, 1, 9.0])) == pytest.approx(0.1)


def test_weights_choose_the_urgent_or_referable_threshold_by_weighted_false_alarms():
    # one urgent eye below both thresholds; lowering referable refers eye 2 (healthy, weight 10),
    # lowering urgent refers eye 3 (healthy, weight 1): the weighted count picks the urgent threshold
    y_ref = np.array([True, True, False, False])
    y_urg = np.array([True, True, False, False])
    p_ref = np.array([0.9, 0.3, 0.35, 0.0])
    p_urg = np.array([0.9, 0.2, 0.0, 0.25])
    t = C.thresholds_from_arrays(y_ref, p_ref, y_urg, p_urg, np.array(["a"] * 4), C.Rule(0.5, 0.5),
                                 weights=np.array([1, 1, 10, 1.0]))
    assert t.urgent == pytest.approx(0.2) and t.referable > 0.35
    unweighted = C.thresholds_from_arrays(y_ref, p_ref, y_urg, p_urg, np.array(["a"] * 4), C.Rule(0.5, 0.5))
    assert unweighted.referable == pytest.approx(0.3)         # a tie, referable wins: the gentler queue


def calibrate_cli(tmp_path, url, *extra):
    return cli.main(["calibrate", "--from-database", "--database", url, "--data-dir", str(tmp_path / "data"),
                     "--out", str(tmp_path / "op.json"), *extra])


def test_too_few_grader_confirmed_eyes_are_refused_saying_how_many_more(tmp_path, database_url, capsys):
    with ClinicStore(database_url, image_store=tmp_path / "data" / "images") as store:
        encounters = [screened(store, "P001", 2, 0), screened(store, "P003", 0, 0)]
        store.record_grades([HumanGrade(encounters[0], Eye.RIGHT, "Dr A", 3, source="import"),
                             HumanGrade(encounters[0], Eye.LEFT, "Dr A", 0, source="import"),
                             HumanGrade(encounters[1], Eye.RIGHT, "Dr A", 0, source="import"),
                             HumanGrade(encounters[1], Eye.LEFT, "Dr A", None, source="import")])
    assert calibrate_cli(tmp_path, database_url, "--model", str(tmp_path / "no-model")) == 1
    err = capsys.readouterr().err
    assert "97 more graded eye(s) (has 3, needs 100)" in err and "29 more referable eye(s) (has 1, needs 30)" in err
    assert not (tmp_path / "op.json").exists() and not (tmp_path / "op.pdf").exists()


def test_from_database_and_data_exclude_each_other(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["calibrate", "--from-database", "--data", str(tmp_path / "labels.csv"), "--out",
                  str(tmp_path / "op.json")])
    assert exc.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


@pytest.fixture
def graded_clinic(tmp_path, database_url):
    """16 real fundus-dr patients of every grade, screened (the AI's grade stands in
    for what the shipped model said on the day), their reference grades imported;
    half the annual ones came from a 50% quality-assurance sample (weight 2)."""
    rows = {(r["patient"], r["eye"]): int(r["icdr_grade"]) for r in read_labels(FUNDUS_DR)}
    patients = sorted({p for p, _ in rows if (p, "L") in rows and (p, "R") in rows})
    by_worst: dict[int, list[str]] = {}
    for p in patients:
        by_worst.setdefault(max(rows[(p, "R")], rows[(p, "L")]), []).append(p)
    chosen = [p for g in range(5) for p in by_worst.get(g, [])[:4]][:16]
    with ClinicStore(database_url, image_store=tmp_path / "data" / "images") as store:
        grades = []
        for p in chosen:
            enc = screened(store, p, min(rows[(p, "R")], 1), min(rows[(p, "L")], 1))   # the AI saw nothing
            grades += [HumanGrade(enc, Eye(side), "Centre", rows[(p, side)], source="import") for side in "RL"]
        store.draw_qa_sample(0.5, seed=1)
        store.record_grades(grades)
        yield store, chosen, rows


@pytest.mark.skipif(not (MODEL / "model.onnx").is_file(), reason="the shipped model is not in this checkout")
def test_the_site_point_is_chosen_on_regraded_stored_photographs_for_the_model_in_force(graded_clinic, tmp_path):
    store, chosen, rows = graded_clinic
    model = Classifier.load(MODEL, backend="onnx")
    c = calibrate_site(store, "north", "north-2026", model, min_graded=20, min_referable=5)
    eyes = 2 * len(chosen)
    assert c.site["graded_eyes"] == eyes and c.sources[0].photographs == eyes
    assert c.site["referable_eyes"] == sum(rows[(p, s)] >= 2 for p in chosen for s in "RL")
    assert c.site["weight_total"] > eyes                       # the sampled annual eyes weigh 2
    assert c.overall.urgent_in_annual == 0                     # never a grader-urgent eye in annual
    assert 0 < c.site["expected_referral_rate"] < 1
    assert c.model["weights_sha256"] == read_card(MODEL).weights_sha256
    op = C.write_operating_point(c, tmp_path / "north.json")
    saved = json.loads(op.read_text())
    assert saved["site"]["source"] == "clinic database" and saved["site"]["weighted"] == "1/P(graded)"
    assert C.load_operating_point(op, read_card(MODEL)).referable == c.thresholds.referable
    assert c.sources[0].labels == store.where


@pytest.mark.skipif(not (MODEL / "model.onnx").is_file(), reason="the shipped model is not in this checkout")
def test_calibrate_from_database_writes_the_point_and_its_report_and_is_audited(tmp_path, database_url, capsys):
    """The command end to end at the real minimums: 110 grader-confirmed eyes of real
    photographs (the most diseased fundus-dr patients, so that >= 30 are referable)."""
    rows = {(r["patient"], r["eye"]): int(r["icdr_grade"]) for r in read_labels(FUNDUS_DR)}
    patients = sorted({p for p, _ in rows if (p, "L") in rows and (p, "R") in rows},
                      key=lambda p: (-max(rows[(p, "R")], rows[(p, "L")]), p))[:55]
    with ClinicStore(database_url, image_store=tmp_path / "data" / "images") as store:
        grades = []
        for p in patients:
            enc = screened(store, p, 0, 0)
            grades += [HumanGrade(enc, Eye(side), "Centre", rows[(p, side)], source="import") for side in "RL"]
        store.record_grades(grades)
    assert calibrate_cli(tmp_path, database_url, "--site", "north", "--user", "Dr Admin", "--backend", "onnx") == 0
    printed = capsys.readouterr().out
    assert "110 grader-confirmed eyes" in printed and "expected referral rate" in printed
    saved = json.loads((tmp_path / "op.json").read_text())
    assert saved["site"]["graded_eyes"] == 110 and saved["model"]["weights_sha256"] == read_card(MODEL).weights_sha256
    assert saved["overall"]["urgent_in_annual"] == 0 and (tmp_path / "op.pdf").is_file()
    with ClinicStore(database_url, image_store=tmp_path / "data" / "images") as store:
        audit = store.audit("site:north")
        assert [(a.action, a.user) for a in audit] == [("site calibrated", "Dr Admin")]
        assert audit[0].details["thresholds"]["referable"] == saved["thresholds"]["referable"]


def test_the_expected_referral_rate_refers_by_either_threshold_weighs_eyes_and_leaves_refused_ones_out():
    """The point refers an eye when p(urgent) or p(referable) reaches its threshold
    (domain's rule, at the threshold itself too); an eye stands for 1/P(graded) eyes;
    a photograph the gate refused goes to review, never counted as referred."""
    from eyescreen_desktop.core.site_calibration import expected_referral_rate

    def eye(weight: float, status: str, p_ref: float, p_urg: float) -> C.ScreenedEye:
        labelled = C.LabelledEye(FUNDUS_DR / "P001_R.jpg", "P001", Eye.RIGHT, False, False, "site", 0, weight)
        return C.ScreenedEye(labelled, status, p_ref, p_urg)

    t = C.Thresholds(referable=0.4, urgent=0.6)
    screened = [eye(1.0, "ok", 0.4, 0.0),          # referable threshold reached exactly
                eye(1.0, "ok", 0.1, 0.6),          # urgent threshold alone
                eye(6.0, "ok", 0.39, 0.59),        # neither, and it stands for 6 eyes
                eye(2.0, "ungradable", float("nan"), float("nan"))]   # refused: review, not referral
    assert expected_referral_rate(screened, t) == pytest.approx(2 / 10)
