"""Leave-one-collection-out validation (training/loco.py) on a few real photographs of
three collections, with a tiny stand-in for the ImageNet base (grid colour means)
so a whole run takes seconds."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from eyescreen_desktop.training import data as D
from eyescreen_desktop.training import loco
from eyescreen_desktop.training import metrics as M
from tests.conftest import EYEPACS, FUNDUS_DR, SHARED, read_labels
from tests.training.conftest import small_manifest

IDRID = SHARED / "idrid"
FUNDUS_PATIENTS = ("P001", "P003", "P011", "P017", "P031", "P037", "P097", "P206")


@pytest.fixture(scope="module")
def manifests(tmp_path_factory):
    """Three small manifests named like the real collections: 16 fundus-dr photographs
    (8 patients, maculopathy graded), 12 eyepacs-256 ones (both eyes of 6 patients,
    at least one graded quality=reject) and 10 idrid ones (one per patient)."""
    root = tmp_path_factory.mktemp("loco-manifests")
    fundus = [r for r in read_labels(FUNDUS_DR) if r["patient"] in FUNDUS_PATIENTS]
    eyepacs_rows = read_labels(EYEPACS)
    reject = next(r["patient"] for r in eyepacs_rows if r["quality"] == "reject")
    graded = []
    for grade in "01234":
        graded.append(next(r["patient"] for r in eyepacs_rows if r["icdr_grade"] == grade and r["quality"] == "good"))
    eyepacs = [r for r in eyepacs_rows if r["patient"] in {reject, *graded}]
    idrid_rows = read_labels(IDRID)
    idrid = [r for g in "0234" for r in [x for x in idrid_rows if x["icdr_grade"] == g][:3]][:10]
    return [small_manifest(root / "fundus-dr", FUNDUS_DR, fundus),
            small_manifest(root / "eyepacs-256", EYEPACS, eyepacs),
            small_manifest(root / "idrid", IDRID, idrid)]


class GridMeans:
    """Stand-in base: the mean colour of a 4 x 4 grid (48 features), counting its calls."""

    calls = 0

    def predict_on_batch(self, x: np.ndarray) -> np.ndarray:
        GridMeans.calls += len(x)
        n, s = x.shape[0], x.shape[1] // 4
        return x[:, :4 * s, :4 * s].reshape(n, 4, s, 4, s, 3).mean(axis=(2, 4)).reshape(n, -1) / 255.0


def test_held_out_collection_never_trains_its_own_fold_and_patients_stay_whole(manifests):
    everything = loco.read_all(manifests)
    folds = loco.make_folds(everything, everything, D.DEFAULT_DROP_QUALITY)
    assert [f.name for f in folds] == ["fundus-dr", "eyepacs-256", "idrid", loco.PATIENT_SPLIT]
    for fold in folds:
        train = [everything[i] for i in fold.train]
        test = [everything[i] for i in fold.test]
        assert not {s.patient for s in train} & {s.patient for s in test}, fold.name
        assert all(s.quality != "reject" for s in train), fold.name
        if fold.name != loco.PATIENT_SPLIT:
            assert {s.collection for s in test} == {fold.name}
            assert fold.name not in {s.collection for s in train}
            # every photograph of the held-out collection is graded, the rejected ones too
            assert len(test) == sum(s.collection == fold.name for s in everything)
    split = folds[-1]
    assert {everything[i].collection for i in split.test} == {"fundus-dr", "eyepacs-256", "idrid"}
    assert any(s.quality == "reject" for s in everything)


def test_subsample_takes_whole_patients_up_to_the_limit_reproducibly():
    samples = D.read_manifest(FUNDUS_DR / "labels.csv")
    sub = loco.subsample_patients(samples, 25, seed=42)
    assert 23 <= len(sub) <= 25
    per_patient = {p: sum(s.patient == p for s in samples) for p in {s.patient for s in sub}}
    assert all(sum(s.patient == p for s in sub) == n for p, n in per_patient.items())
    assert [s.key for s in loco.subsample_patients(samples, 25, seed=42)] == [s.key for s in sub]
    assert {s.key for s in loco.subsample_patients(samples, 25, seed=7)} != {s.key for s in sub}


def test_thresholds_catch_every_urgent_eye_and_nine_in_ten_referable():
    rng = np.random.default_rng(0)
    y_ref = rng.random(200) < 0.4
    y_urg = y_ref & (rng.random(200) < 0.3)
    p_ref = np.clip(y_ref * 0.3 + rng.random(200) * 0.7, 0, 1)
    p_urg = np.clip(y_urg * 0.3 + rng.random(200) * 0.7, 0, 1)
    op = loco.choose_thresholds(y_ref, p_ref, y_urg, p_urg)
    assert (p_urg[y_urg] >= op["urgent"]).all()
    assert p_urg[y_urg].min() - op["urgent"] < 1e-6
    assert M.sens_spec(y_ref, p_ref, op["referable"])[0] >= 0.90


def test_confidence_intervals_resample_patients_not_photographs():
    """Two eyes of a patient with one score move together: the patient bootstrap
    gives a wider interval than resampling photographs would."""
    samples = D.read_manifest(FUNDUS_DR / "labels.csv")
    rng = np.random.default_rng(1)
    patient_score = {p: rng.random() for p in {s.patient for s in samples}}
    p = np.array([patient_score[s.patient] * 0.6 + 0.4 * s.referable for s in samples])
    pred = {"referable": p, "urgent": p, "maculopathy": p, "grade": np.zeros((len(p), 5))}
    m = loco.fold_metrics(samples, pred, {"referable": 0.5, "urgent": 0.9}, n_boot=200)
    y = np.array([s.referable for s in samples])
    by_patient = M.auc_ci(y, p, [s.patient for s in samples], 200)
    by_photo = M.auc_ci(y, p, [s.key for s in samples], 200)
    assert m["referable_auc"] == pytest.approx(M.roc_auc(y, p))
    assert m["referable_auc_ci"] == pytest.approx(list(by_patient[1:]))
    assert m["referable_auc_ci"] != pytest.approx(list(by_photo[1:]))
    assert m["patients"] == len(patient_score) < m["photographs"]


def test_a_run_grades_each_collection_from_the_others_and_reuses_cached_features(manifests):
    GridMeans.calls = 0
    result = loco.loco(manifests, "grid-means", 64, variants=2, n_boot=20, extractor_factory=GridMeans,
                       head="probe")
    passed = sum(result["photographs"].values()) - sum(result["gate_refused"].values())
    assert GridMeans.calls == 2 * passed  # every gate-passed photograph, as is and mirrored
    folds = result["folds"]
    assert set(folds) == {"fundus-dr", "eyepacs-256", "idrid", loco.PATIENT_SPLIT}
    assert folds["idrid"]["trained_on"].keys() == {"fundus-dr", "eyepacs-256"}
    assert folds["fundus-dr"]["trained_on"].keys() == {"eyepacs-256", "idrid"}
    assert folds["eyepacs-256"]["trained_on"]["fundus-dr"] == 16 - result["gate_refused"].get("fundus-dr", 0)
    # maculopathy is graded where the held-out collection has it, and nowhere else
    assert "maculopathy_auc" in folds["fundus-dr"] and "maculopathy_auc" not in folds["eyepacs-256"]
    assert "| grid-means @ 64 |" in loco.bases_table([result])

    GridMeans.calls = 0
    cache = D.ImageCache(64)
    samples, _ = loco.gate_passed(loco.read_all(manifests), cache)
    again = loco.features(samples, "grid-means", cache, 2, loco.LazyExtractor(GridMeans))
    assert GridMeans.calls == 0 and again.shape == (passed, 2, 48)  # train.FeatureCache had them all


def test_recipe_head_takes_thresholds_from_the_training_collections(manifests):
    """Recipe 1's Keras head on one fold: epochs and thresholds come from inner
    validation patients of the other collections, then the left-out one is graded."""
    from eyescreen_desktop.training import train as T

    cache = D.ImageCache(64)
    everything = loco.read_all(manifests)
    samples, _ = loco.gate_passed(everything, cache)
    feats = loco.features(samples, "grid-means", cache, 2, loco.LazyExtractor(GridMeans))
    fold = next(f for f in loco.make_folds(samples, everything, D.DEFAULT_DROP_QUALITY) if f.name == "idrid")
    recipe = replace(T.RECIPES["feature"], head_epochs=2)
    result = loco.run_folds(samples, feats, [fold], recipe, n_boot=20, say=lambda _: None)["idrid"]
    assert result["trained_on"].keys() == {"fundus-dr", "eyepacs-256"}
    assert 1 <= result["epochs"] <= 2 and 0 < result["thresholds_chosen_on_photographs"] < len(fold.train)
    assert 0 <= result["thresholds"]["urgent"] <= 1 and 0 <= result["thresholds"]["referable"] <= 1
    assert 0 <= result["urgent_in_annual"] <= result["urgent"] == sum(s.urgent for s in samples
                                                                       if s.collection == "idrid")
    assert result["maculopathy_photographs"] == result["photographs"]  # idrid grades maculopathy
    assert "| idrid | eyepacs-256 " in loco.loco_table({"folds": {"idrid": result}})


def test_config_names_base_and_pixels():
    assert loco.parse_config("efficientnet-lite1@448") == ("efficientnet-lite1", 448)
    with pytest.raises(Exception, match="BASE@PIXELS"):
        loco.parse_config("efficientnet-lite1")


def test_one_referable_label_rule_for_training_and_the_grader_outputs_report():
    """Training's targets and the grader-outputs report read an eye's referable
    label by one rule: the collection's own column when it has one (fundus-dr's
    mild NPDR with maculopathy counts), else ICDR >= 2."""
    import csv

    from eyescreen_desktop.training import grader_outputs
    from tests.conftest import FUNDUS_DR

    assert D.label_referable({"referable": "1"}, 1) is True       # the column wins over the grade
    assert D.label_referable({"referable": "0"}, 0) is False
    assert D.label_referable({}, 2) is True and D.label_referable({"referable": ""}, 1) is False
    with open(FUNDUS_DR / "labels.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    mild_but_referable = [r for r in rows if r["referable"] == "1" and int(r["icdr_grade"]) < 2]
    assert mild_but_referable                                        # the case the column exists for
    samples = {s.path.name: s for s in D.read_manifest(FUNDUS_DR / "labels.csv")}
    for r in rows:
        assert grader_outputs._referable(r, r["icdr_grade"]) == bool(samples[r["file"]].referable), r["file"]
