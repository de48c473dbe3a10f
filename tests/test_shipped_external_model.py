"""The external-eye model EyeScreen ships (models/eyescreen-external): its card
says what it is (web labels, research and demonstration), its hashes hold, its
ONNX twin agrees with Keras on real pictures, and the clinic's own path
(square_eye + ONNX) reproduces the held-out AUC the card reports."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from eyescreen_desktop.core.classifier import Classifier, read_card, sha256_file
from eyescreen_desktop.core.external_eye import ExternalEyeModel
from eyescreen_desktop.core.eye_input import EYE_PREPROCESSING_ID, square_eye
from eyescreen_desktop.core.imageio import read_image
from eyescreen_desktop.core.paths import project_root, shared_datasets_dir
from eyescreen_desktop.training.metrics import roc_auc

MODEL = project_root() / "models" / "eyescreen-external"
IMAGES = shared_datasets_dir() / "external-eye" / "images"


def _held_out() -> list[tuple[str, str]]:
    with open(MODEL / "split.csv", newline="", encoding="utf-8") as f:
        return [(r["file"], r["label"]) for r in csv.DictReader(f) if r["part"] == "test"]


def test_card_says_what_the_model_is():
    card = read_card(MODEL)
    raw = card.raw
    assert raw["modality"] == "external_eye" and raw["classes"] == ["normal", "cataract", "conjunctivitis", "other"]
    assert "web labels" in raw["intended_use"].lower() and "research and demonstration" in raw["intended_use"].lower()
    assert sha256_file(MODEL / card.weights_file) == card.weights_sha256
    assert sha256_file(MODEL / card.runtime_file) == card.runtime_sha256
    assert card.preprocessing == EYE_PREPROCESSING_ID
    assert raw["held_out"]["auc_checkup"] >= 0.92
    assert set(raw["comparison"]) == {"network1", "network2"}
    assert "web labels" in (MODEL / "model_card.md").read_text().lower()


def test_no_near_duplicate_group_sits_on_two_sides():
    with open(MODEL / "split.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    sides: dict[str, set[str]] = {}
    for r in rows:
        sides.setdefault(r["group"], set()).add(r["part"])
    assert all(len(s) == 1 for s in sides.values())
    assert len(rows) == 1274


@pytest.fixture(scope="module")
def held_out_inputs():
    if not IMAGES.is_dir():
        pytest.fail(f"{IMAGES} is missing: tests need ../shared beside the checkout")
    photos = _held_out()
    size = read_card(MODEL).input_size
    return photos, np.stack([square_eye(read_image(IMAGES / name), size) for name, _ in photos])


def test_onnx_twin_agrees_with_keras_on_real_pictures(held_out_inputs):
    _, batch = held_out_inputs
    batch = batch[::24].astype(np.float32)
    keras_out = Classifier.load(MODEL, backend="keras").raw_outputs(batch)
    onnx_out = Classifier.load(MODEL, backend="onnx").raw_outputs(batch)
    assert np.max(np.abs(keras_out["finding"] - onnx_out["finding"])) < 1e-4


def test_the_clinics_path_reproduces_the_held_out_auc(held_out_inputs):
    photos, batch = held_out_inputs
    model = ExternalEyeModel.load(MODEL)
    probs = np.concatenate([model.predict(batch[i:i + 32])[0] for i in range(0, len(batch), 32)])
    y = np.array([label != "normal" for _, label in photos])
    auc = roc_auc(y, 1 - probs[:, 0])
    assert auc == pytest.approx(read_card(MODEL).raw["held_out"]["auc_checkup"], abs=0.005)
