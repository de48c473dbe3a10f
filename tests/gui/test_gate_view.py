"""The window says what the gate saw: a photograph of the front of the eye is
named as such, never graded, and every card names the gate that judged it."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from eyescreen_desktop.core.classifier import Classifier
from eyescreen_desktop.core.records import Eye, Status
from eyescreen_desktop.core.screening import ScreenItem, Screener
from eyescreen_desktop.gui.result_view import EyeCard
from eyescreen_desktop.gui.worker import ScreenedEye, display_photo
from tests.conftest import SHARED

GRADER = Path(__file__).resolve().parents[2] / "models" / "eyescreen-dr"


@pytest.fixture(scope="module")
def screened() -> dict[str, ScreenedEye]:
    with open(SHARED / "external-eye" / "labels.csv", newline="") as f:
        ext = SHARED / "external-eye" / "images" / next(csv.DictReader(f))["file"]
    paths = {"fundus": SHARED / "fundus-dr" / "images" / "P001_L.jpg", "external_eye": ext}
    # the gate alone (external=None): the eye check of its own branch has its own tests
    screener = Screener(Classifier.load(GRADER, backend="onnx", threads=1), external=None)
    out = {}
    for name, path in paths.items():
        result = next(iter(screener.screen([ScreenItem(path, Eye.LEFT)])))
        out[name] = ScreenedEye(result, display_photo(result))
    return out


def test_a_front_of_eye_photograph_is_named_and_not_graded(qtbot, screened, tmp_path):
    card = EyeCard(Eye.LEFT)
    qtbot.addWidget(card)
    card.resize(360, 520)
    card.show_eye(screened["external_eye"], heatmap=False)
    assert screened["external_eye"].result.status is Status.NOT_FUNDUS
    assert card.verdict.text() == "Photograph of the front of the eye"
    assert "fundus photograph is needed" in card.advice.text()
    assert f"Seen as: photograph of the front of the eye ({screened['external_eye'].result.gate})" in card.file.text()
    assert "Grade" not in card.detail.text()
    card.show()
    card.grab().save(str(tmp_path / "external.png"))


def test_a_graded_fundus_photograph_names_the_gate_too(qtbot, screened):
    card = EyeCard(Eye.LEFT)
    qtbot.addWidget(card)
    card.show_eye(screened["fundus"], heatmap=False)
    assert screened["fundus"].result.status is Status.OK
    assert "Protocol code: " in card.detail.text() and "Image quality: gradable" in card.detail.text()
    assert screened["fundus"].result.gate.startswith("eyescreen-gate ")     # the shipped gate's version
    assert f"Seen as: fundus photograph ({screened['fundus'].result.gate})" in card.file.text()
