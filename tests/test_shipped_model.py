"""The model EyeScreen ships (models/eyescreen-dr): its card, its size, its
two runtimes agreeing, and how it grades the fundus-dr patients it was
validated on (never trained on), through the engine's own path."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from eyescreen_desktop.core.classifier import Classifier, read_card, sha256_file
from eyescreen_desktop.core.paths import default_model_dir, shared_datasets_dir
from eyescreen_desktop.core.records import Eye, Queue, Status
from eyescreen_desktop.core.screening import ScreenItem, Screener
from eyescreen_desktop.training.metrics import roc_auc

MODEL = default_model_dir()
FUNDUS_DR = shared_datasets_dir() / "fundus-dr"

pytestmark = pytest.mark.skipif(not (MODEL / "model_card.json").is_file(), reason="no shipped model")


def test_the_default_point_was_chosen_behind_the_shipped_gate():
    """The default operating point is chosen on the photographs the gate lets
    through (training.worst_camera), so a new gate needs a new choice: the
    card names the shipped gate's version and its card's SHA-256, and the gate
    was fitted on this grader's runtime file."""
    import json

    from eyescreen_desktop.core.gate import CARD_FILE, default_gate_dir

    card = read_card(MODEL)
    chosen_behind = card.raw["worst_camera"]["gate"]
    gate_card = json.loads((default_gate_dir() / CARD_FILE).read_text())
    assert chosen_behind["version"] == gate_card["version"]
    assert chosen_behind["card_sha256"] == sha256_file(default_gate_dir() / CARD_FILE)
    assert gate_card["grader"]["runtime_sha256"] == card.runtime_sha256
    assert card.raw["operating_points"]["default"]["referable"] == card.operating_point.referable


def test_card_describes_the_shipped_weights():
    card = read_card(MODEL)
    raw = card.raw
    assert sha256_file(MODEL / card.weights_file) == card.weights_sha256
    assert sha256_file(MODEL / card.runtime_file) == card.runtime_sha256
    assert (MODEL / card.weights_file).stat().st_size <= 25 * 1024 * 1024
    assert "not for clinical use" in raw["intended_use"]
    # four cameras in training, and the maculopathy output with its own threshold
    assert set(raw["data_sources"]) == {"fundus-dr", "eyepacs-256", "odir-384", "idrid"}
    assert raw["base"]["name"] == "efficientnet-lite0"
    assert "maculopathy" in card.outputs and 0 < card.operating_point.maculopathy < 1
    assert raw["validation"]["maculopathy_auc"] >= 0.8
    assert raw["training_time_minutes"] > 0
    point = card.operating_point
    assert 0 < point.urgent < 1 and 0 < point.referable < 1
    assert raw["runtime_check"]["max_abs_diff_vs_keras"] <= 1e-4
    assert "fundus-dr" in card.operating_points
    # the default holds on every collection's validation patients (issue 10's safety rule)
    for name, m in raw["validation"]["per_collection"].items():
        assert m["urgent_in_annual"] == 0, name
        assert m["referable_sensitivity"] >= 0.90, name


def _validation_photos() -> list[tuple[Path, Eye, int, int]]:
    """(path, eye, referable label, ICDR grade) of the fundus-dr photographs the split put on the validation side."""
    with open(MODEL / "split.csv", newline="") as fh:
        val = {row["key"].split("/", 1)[1] for row in csv.DictReader(fh)
               if row["part"] == "val" and row["key"].startswith("fundus-dr/")}
    with open(FUNDUS_DR / "labels.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["file"] in val]
    return [(FUNDUS_DR / "images" / r["file"], Eye(r["eye"]), int(r["referable"]), int(r["icdr_grade"]))
            for r in rows]


@pytest.fixture(scope="module")
def graded():
    if not (FUNDUS_DR / "labels.csv").is_file():
        pytest.skip("../shared/datasets/fundus-dr is not beside the project")
    photos = _validation_photos()
    screener = Screener(Classifier.load(MODEL), decode_workers=2, batch_size=16)
    results = list(screener.screen(ScreenItem(p, eye) for p, eye, _, _ in photos))
    return photos, results


def test_validation_patients_grade_like_the_card_says(graded):
    photos, results = graded
    card = read_card(MODEL).raw["validation"]["per_collection"]["fundus-dr"]
    assert len(photos) >= 80  # about 20% of the 224 patients, both eyes, on the validation side
    ok = [(ref, g, r.prediction) for (_, _, ref, g), r in zip(photos, results) if r.status is Status.OK]
    assert len(ok) >= len(photos) - 6      # the gate may send a few hazy photographs to review
    referable_auc = roc_auc(np.array([ref for ref, _, _ in ok]) == 1, np.array([p.p_referable for *_, p in ok]))
    urgent_auc = roc_auc(np.array([g for _, g, _ in ok]) >= 3, np.array([p.p_urgent for *_, p in ok]))
    # the card's figures for these patients, through the product's path: decoding and the
    # learned gate differ a little from training's, nothing more
    assert referable_auc >= card["referable_auc"] - 0.03, referable_auc
    assert urgent_auc >= card["urgent_auc"] - 0.03, urgent_auc


def test_no_urgent_eye_of_the_validation_patients_waits_in_annual(graded):
    photos, results = graded
    urgent_eyes = [r for (_, _, _, g), r in zip(photos, results) if g >= 3]
    assert urgent_eyes
    assert all(r.queue is not Queue.ANNUAL for r in urgent_eyes)


def test_onnx_runtime_matches_keras_on_real_photographs(graded):
    photos, _ = graded
    from eyescreen_desktop.core.screening import prepare

    size = read_card(MODEL).input_size
    batch = np.stack([prepare(ScreenItem(p), size).tensor for p, *_ in photos[:3]])
    onnx = Classifier.load(MODEL, backend="onnx").predict(batch)
    keras = Classifier.load(MODEL, backend="keras").predict(batch)
    for a, b in zip(onnx, keras):
        assert np.max(np.abs(np.asarray(a.grade_probs) - np.asarray(b.grade_probs))) <= 1e-4
        assert abs(a.p_referable - b.p_referable) <= 1e-4 and abs(a.p_urgent - b.p_urgent) <= 1e-4
