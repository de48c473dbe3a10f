"""The external-eye check on real pictures: selfies (scikit-image's astronaut),
close-ups from ../shared/datasets/external-eye (held-out part of the shipped
model's split), fundus photographs and bad input, through the shipped model."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from eyescreen_desktop.core import external_eye as X
from eyescreen_desktop.core.classifier import ModelError
from eyescreen_desktop.core.imageio import read_image
from eyescreen_desktop.core.paths import project_root
from tests.conftest import FUNDUS_DR, SHARED

MODEL = project_root() / "models" / "eyescreen-external"
IMAGES = SHARED / "external-eye" / "images"
ASTRONAUT_IRIS = {"R": (202, 102), "L": (245, 103)}   # marked by hand on skimage's astronaut


@pytest.fixture(scope="module")
def model() -> X.ExternalEyeModel:
    return X.ExternalEyeModel.load(MODEL)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def _eye(name: str) -> np.ndarray:
    return read_image(IMAGES / name)


# --------------------------------------------------------------------------- pure rules


@pytest.mark.parametrize("probs, checkup, words", [
    ((0.9, 0.04, 0.03, 0.03), False, "no visible finding"),
    ((0.2, 0.7, 0.05, 0.05), True, "possible cataract"),
    ((0.1, 0.1, 0.75, 0.05), True, "red eye: possible conjunctivitis"),
    ((0.3, 0.1, 0.1, 0.5), True, "another visible finding"),
])
def test_verdict_is_one_minus_p_normal_against_the_threshold(probs, checkup, words):
    got, p, finding = X.verdict_words(probs, threshold=0.5)
    assert got is checkup and p == pytest.approx(1 - probs[0]) and finding == words


def test_the_verdict_uses_the_course_words():
    box = X.EyeBox("R", 0, 0, 10, 10)
    assert X.EyeCheck(box, checkup=True).verdict == "Go for an eye check-up"
    assert X.EyeCheck(box, checkup=False).verdict == "Your eye looks healthy"
    assert X.EyeCheck(box, message="blurred").verdict == ""


# --------------------------------------------------------------------------- finding the eyes


def test_astronaut_selfie_two_eyes_right_on_the_image_left(astronaut):
    search = X.find_eyes(astronaut)
    assert search.kind == "face" and [b.side for b in search.eyes] == ["R", "L"]
    for b in search.eyes:
        x, y = ASTRONAUT_IRIS[b.side]
        assert b.x <= x <= b.x + b.w and b.y <= y <= b.y + b.h
        assert b.w < 0.5 * search.face[2]       # an eye, not half the face


def test_a_mirrored_selfie_swaps_the_sides(astronaut):
    mirrored = np.ascontiguousarray(astronaut[:, ::-1])
    search = X.find_eyes(mirrored)
    right = next(b for b in search.eyes if b.side == "R")
    x, y = ASTRONAUT_IRIS["L"]                 # the patient's right eye is now at the old left eye's mirror place
    x = mirrored.shape[1] - 1 - x
    assert right.x <= x <= right.x + right.w


def test_a_close_up_is_one_eye_of_unknown_side():
    search = X.find_eyes(_eye("conjunctivitis_conjunctivitis_0068.jpg"))
    assert search.kind == "close_up" and len(search.eyes) == 1 and search.eyes[0].side == "?"


def test_the_gates_modality_decides_close_up_and_fundus(astronaut):
    rgb = _eye("cataract_cataract_0394.jpg")          # no sclera beside the iris: the heuristic misses it
    assert X.find_eyes(rgb).kind == "none"
    assert X.find_eyes(rgb, modality="external_eye").kind == "close_up"
    assert X.find_eyes(astronaut, modality="other").kind == "face"
    assert X.find_eyes(astronaut, modality="fundus").kind == "fundus"


# --------------------------------------------------------------------------- verdicts through the shipped model


def test_close_ups_get_a_verdict_finding_probability_and_heat_map(model):
    cataract = X.check_photo(_eye("cataract_cataract_0611.jpg"), model)
    red = X.check_photo(_eye("conjunctivitis_conjunctivitis_0068.jpg"), model)
    healthy = X.check_photo(_eye("normal_cataract_0083.jpg"), model)
    assert (cataract.eyes[0].verdict, cataract.eyes[0].finding) == ("Go for an eye check-up", "possible cataract")
    assert red.eyes[0].finding == "red eye: possible conjunctivitis" and red.checkup
    assert healthy.eyes[0].verdict == "Your eye looks healthy" and healthy.checkup is False
    for check in (cataract, red, healthy):
        eye = check.eyes[0]
        assert eye.p_checkup == pytest.approx(1 - eye.probs["normal"])
        assert eye.heatmap.shape == (model.input_size,) * 2 and 0 <= eye.heatmap.min() <= eye.heatmap.max() <= 1
    assert cataract.eyes[0].p_checkup > model.threshold > healthy.eyes[0].p_checkup


def test_a_selfie_checks_each_eye_with_its_side(model, astronaut):
    check = X.check_photo(astronaut, model)
    assert check.kind == "face"
    assert [(e.box.side, e.checked) for e in check.eyes] == [("R", True), ("L", True)]
    assert all(e.crop.shape == (model.input_size, model.input_size, 3) for e in check.eyes)


@pytest.mark.parametrize("case", ["tiny", "no_eye", "fundus", "blurred", "dark"])
def test_bad_input_gets_a_message_and_never_a_verdict(model, astronaut, case):
    from skimage import data

    close_up = _eye("normal_cataract_0083.jpg")
    picture, modality, words = {
        "tiny": (cv2.resize(close_up, (40, 30)), None, "take a closer photograph"),
        "no_eye": (data.rocket(), None, "No eye found"),
        "fundus": (read_image(FUNDUS_DR / "images" / "P001_L.jpg", max_side=1024), "fundus", "fundus photograph"),
        "blurred": (cv2.GaussianBlur(close_up, (0, 0), 8), "external_eye", "blurred"),
        "dark": ((close_up * 0.08).astype(np.uint8), "external_eye", "too dark"),
    }[case]
    check = X.check_photo(picture, model, modality=modality)
    assert check.checkup is None
    assert all(e.verdict == "" for e in check.eyes)
    messages = " ".join([check.message, *(e.message for e in check.eyes)])
    assert words in messages


def test_a_fundus_model_is_refused_as_an_eye_check_model():
    with pytest.raises(ModelError, match="not an external-eye model"):
        X.ExternalEyeModel.load(project_root() / "models" / "eyescreen-dr")


# --------------------------------------------------------------------------- records


def test_a_selfie_is_one_record_naming_each_eye_never_an_icdr_grade(model, astronaut):
    from eyescreen_desktop.core.protocol import get_protocol
    from eyescreen_desktop.core.records import Eye, QualityReport, Status

    check = X.check_photo(astronaut, model, modality="other")
    gate_said = QualityReport(Status.NOT_FUNDUS, ("not_fundus",), modality="other", gate="eyescreen-gate 1.0.0")
    r = X.external_result("me.jpg", Eye.RIGHT, check, gate_said, get_protocol("icdr-ada"))
    assert r.modality == "external_eye" and r.eye is Eye.UNKNOWN and r.status is Status.OK
    assert r.grade is None and r.prediction is None
    assert r.p_checkup == pytest.approx(max(e.p_checkup for e in check.eyes))
    words = X.photo_words(check)[2]
    assert words.startswith("right eye: ") and "; left eye: " in words
    if r.decision.code == "eye check-up":
        assert r.decision.finding == words and r.queue.value == "routine"
    else:   # looks healthy: no diabetic-retinopathy screen without a fundus photograph
        assert r.decision.code == "fundus needed" and r.queue.value == "review"
    assert r.quality.status is Status.OK and r.gate == "eyescreen-gate 1.0.0"


def test_a_close_up_keeps_its_side_and_a_check_up_is_routine(model):
    from eyescreen_desktop.core.protocol import get_protocol
    from eyescreen_desktop.core.records import Eye, Queue

    check = X.check_photo(_eye("cataract_cataract_0611.jpg"), model, modality="external_eye")
    r = X.external_result("c.jpg", Eye.LEFT, check, None, get_protocol("icdr-ada"))
    assert r.eye is Eye.LEFT and r.queue is Queue.ROUTINE and r.decision.finding == "possible cataract"


def test_no_eye_in_a_picture_the_gate_called_other_is_not_an_external_record(model):
    from skimage import data

    from eyescreen_desktop.core.protocol import get_protocol
    from eyescreen_desktop.core.records import Eye, QualityReport, Status

    check = X.check_photo(data.rocket(), model, modality="other")
    q = QualityReport(Status.NOT_FUNDUS, modality="other")
    assert X.external_result("r.jpg", Eye.UNKNOWN, check, q, get_protocol("icdr-ada")) is None


def test_a_blurred_close_up_is_ungradable_in_review_with_the_message(model):
    from eyescreen_desktop.core.protocol import get_protocol
    from eyescreen_desktop.core.records import Eye, QualityReport, Queue, Status

    blurred = cv2.GaussianBlur(_eye("normal_cataract_0083.jpg"), (0, 0), 8)
    q = QualityReport(Status.NOT_FUNDUS, modality="external_eye")
    r = X.external_result("b.jpg", Eye.RIGHT, X.check_photo(blurred, model, "external_eye"), q,
                          get_protocol("eye-check"))
    assert r.status is Status.UNGRADABLE and r.queue is Queue.REVIEW and "blurred" in r.message
    assert r.p_checkup is None and r.modality == "external_eye"
