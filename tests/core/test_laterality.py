"""Laterality from the optic disc's side (core.laterality) on real photographs of
known side, from patients the weights were neither fitted nor tuned on (the
grader's validation patients, models/eyescreen-dr/split.csv)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from eyescreen_desktop.core.imageio import read_image
from eyescreen_desktop.core.laterality import (
    FEATURES,
    LateralityModel,
    SideEstimate,
    default_card_path,
    default_model,
    estimate_side,
)
from eyescreen_desktop.core.paths import models_dir
from eyescreen_desktop.core.records import Eye
from tests.conftest import FUNDUS_DR, SHARED

ODIR = SHARED / "odir-384"
# held-out photographs of known side: two cameras, both eyes
KNOWN_SIDE = [
    (FUNDUS_DR / "images" / "P287_R.jpg", Eye.RIGHT), (FUNDUS_DR / "images" / "P287_L.jpg", Eye.LEFT),
    (FUNDUS_DR / "images" / "P034_R.jpg", Eye.RIGHT), (FUNDUS_DR / "images" / "P034_L.jpg", Eye.LEFT),
    (ODIR / "images" / "2593_right.jpg", Eye.RIGHT), (ODIR / "images" / "2350_left.jpg", Eye.LEFT),
]


def _held_out() -> set[str]:
    with open(models_dir() / "eyescreen-dr" / "split.csv", newline="", encoding="utf-8") as f:
        return {row["key"] for row in csv.DictReader(f) if row["part"] == "val"}


def test_the_test_photographs_are_held_out_patients():
    held_out = _held_out()
    assert all(f"{path.parent.parent.name}/{path.name}" in held_out for path, _eye in KNOWN_SIDE)


@pytest.mark.parametrize("path,eye", KNOWN_SIDE, ids=[p.name for p, _e in KNOWN_SIDE])
def test_side_of_a_real_photograph_of_known_side(path, eye):
    found = estimate_side(read_image(path, max_side=512))
    assert isinstance(found, SideEstimate)
    assert found.eye is eye
    assert found.confidence >= default_model().warn_confidence     # sure enough to warn on
    assert (found.disc[0] > 0.5) == (eye is Eye.RIGHT)              # the disc on the eye's own side


def test_a_mirrored_photograph_is_the_other_eye_with_the_same_confidence():
    rgb = read_image(FUNDUS_DR / "images" / "P287_R.jpg", max_side=512)
    right, mirrored = estimate_side(rgb), estimate_side(np.ascontiguousarray(rgb[:, ::-1]))
    assert right.eye is Eye.RIGHT and mirrored.eye is Eye.LEFT
    assert mirrored.confidence == pytest.approx(right.confidence, abs=0.05)


@pytest.mark.parametrize("name", ["P011_R.jpg", "P097_L.jpg"])
def test_the_full_resolution_camera_file_gives_the_same_side(name):
    """3872x2592 camera files, decoded small for the check as the window does."""
    found = estimate_side(read_image(SHARED / "fundus-dr-fullres" / name, max_side=512))
    assert found.eye is (Eye.RIGHT if name.endswith("_R.jpg") else Eye.LEFT)


def test_the_shipped_card_is_small_and_says_how_it_was_measured():
    path = default_card_path()
    assert path.stat().st_size < 8_000
    card = json.loads(path.read_text(encoding="utf-8"))
    assert card["features"] == list(FEATURES) and len(card["weights"]) == len(FEATURES)
    assert 0.5 < card["warn_confidence"] < 1.0
    held_out = {row["collection"]: row for row in card["measured"]["held_out"]}
    assert held_out["fundus-dr"]["accuracy"] >= 0.95 and held_out["odir-384"]["accuracy"] >= 0.95
    assert all(held_out[c]["false_warnings"] <= 0.02 for c in card["measured"]["fit_collections"])


def test_a_card_of_another_format_is_refused(tmp_path):
    bad = tmp_path / "laterality.json"
    bad.write_text(json.dumps({"format": "something-else/1", "features": list(FEATURES), "weights": [1] * 6,
                               "warn_confidence": 0.9}), encoding="utf-8")
    with pytest.raises(ValueError, match="not a laterality card"):
        LateralityModel.load(bad)
