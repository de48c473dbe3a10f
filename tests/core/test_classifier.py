"""Model card, hash verification and batched inference with a tiny real model."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from eyescreen_desktop.core.classifier import Classifier, ModelError, predictions_from_outputs, read_card
from tests.conftest import TINY_SIZE


def test_predictions_sum_grades_when_no_heads():
    out = {"grade": np.array([[0.1, 0.2, 0.3, 0.25, 0.15]])}
    (p,) = predictions_from_outputs(out)
    assert p.grade == 2
    assert p.p_referable == pytest.approx(0.7)
    assert p.p_urgent == pytest.approx(0.4)
    assert p.p_maculopathy is None


def test_predictions_prefer_dedicated_heads():
    out = {"grade": np.array([[0.9, 0.1, 0, 0, 0]]), "referable": np.array([[0.8]]), "maculopathy": np.array([[0.6]])}
    (p,) = predictions_from_outputs(out)
    assert p.p_referable == pytest.approx(0.8)
    assert p.p_urgent == pytest.approx(0.0)
    assert p.p_maculopathy == pytest.approx(0.6)


def test_bad_grade_shape_is_refused():
    with pytest.raises(ModelError, match="shape"):
        predictions_from_outputs({"grade": np.zeros((2, 3))})


def test_tiny_model_loads_and_predicts_a_batch(tiny_model_dir):
    clf = Classifier.load(tiny_model_dir, backend="keras")
    batch = np.random.default_rng(0).integers(0, 255, (3, TINY_SIZE, TINY_SIZE, 3)).astype(np.uint8)
    preds = clf.predict(batch)
    assert len(preds) == 3
    for p in preds:
        assert sum(p.grade_probs) == pytest.approx(1.0, abs=1e-5)
        assert 0.0 <= p.p_urgent <= p.p_referable <= 1.0
    preds2, cams = clf.predict_with_heatmaps(batch)
    assert cams.shape == (3, TINY_SIZE, TINY_SIZE)
    np.testing.assert_allclose([p.grade_probs for p in preds2], [p.grade_probs for p in preds], atol=1e-5)
    assert float(cams.min()) >= 0.0 and float(cams.max()) <= 1.0
    assert clf.info.name == "tiny-test-model"


def test_wrong_batch_shape_is_refused(tiny_model_dir):
    clf = Classifier.load(tiny_model_dir, backend="keras")
    with pytest.raises(ValueError, match="expected a batch"):
        clf.predict(np.zeros((1, 10, 10, 3), np.uint8))


def test_model_with_changed_weights_is_refused(tiny_model_dir, tmp_path):
    copy = tmp_path / "m"
    shutil.copytree(tiny_model_dir, copy)
    with open(copy / "model.keras", "ab") as f:
        f.write(b"tampered")
    with pytest.raises(ModelError, match="do not match their model card"):
        Classifier.load(copy)


def test_card_without_required_field_is_refused(tiny_model_dir, tmp_path):
    copy = tmp_path / "m"
    shutil.copytree(tiny_model_dir, copy)
    card = json.loads((copy / "model_card.json").read_text())
    del card["input_size"]
    (copy / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="input_size"):
        read_card(copy)


def test_missing_model_folder_says_what_to_do(tmp_path):
    with pytest.raises(ModelError, match="no model card"):
        Classifier.load(tmp_path / "nowhere")
