"""Does a photograph fit the eye and patient it is filed under (core.photo_fit)?
Real photographs of known side; the file-name rule is the batch's own; the
batch, which cannot ask, notes the warning in results.csv."""

from __future__ import annotations

import csv
import shutil

import pytest

from eyescreen_desktop.core.batch import run_batch
from eyescreen_desktop.core.classifier import Classifier
from eyescreen_desktop.core.imageio import read_image
from eyescreen_desktop.core.photo_fit import (
    OTHER_EYE,
    OTHER_PATIENT,
    check_photo,
    name_patient_id,
    noted_result,
)
from eyescreen_desktop.core.records import Eye, EyeResult, Status
from tests.conftest import FUNDUS_DR
from tests.core.screen_inputs import model_with_thresholds

RIGHT = FUNDUS_DR / "images" / "P287_R.jpg"     # held-out patients (models/eyescreen-dr/split.csv val)
LEFT = FUNDUS_DR / "images" / "P287_L.jpg"


@pytest.fixture(scope="module")
def right_rgb():
    return read_image(RIGHT, max_side=512)


def test_a_file_name_carrying_another_patients_id_is_warned_about():
    fit = check_photo(None, Eye.RIGHT, "P904", "P002_R.jpg")
    assert fit.warnings == (OTHER_PATIENT,)
    assert fit.name_patient == "P002"
    assert "P002" in fit.note() and "P904" in fit.note()


@pytest.mark.parametrize("name,patient", [("P002_R.jpg", "p002"), ("IMG_0001.jpg", "P904"), ("", "P904"),
                                          ("scan.jpg", "P904"), ("folder/P904_L.jpg", "P904")])
def test_no_warning_for_the_patients_own_name_or_a_name_without_an_id(name, patient):
    assert OTHER_PATIENT not in check_photo(None, Eye.RIGHT, patient, name).warnings


def test_the_name_rule_is_the_batchs():
    assert name_patient_id("P002_R.jpg") == "P002"
    assert name_patient_id("ab_cd_os.tif") == "ab_cd"
    assert name_patient_id("right.jpg") == ""


def test_a_right_eye_filed_as_the_left_is_warned_about_and_the_right_suggested(right_rgb):
    fit = check_photo(right_rgb, Eye.LEFT, "P287", "")
    assert fit.warnings == (OTHER_EYE,)
    assert fit.suggested_eye is Eye.RIGHT
    assert "right eye" in fit.note() and "left eye" in fit.note()


def test_a_right_eye_filed_as_the_right_is_not_warned_about(right_rgb):
    assert check_photo(right_rgb, Eye.RIGHT, "P287", "P287_R.jpg").warnings == ()
    assert check_photo(read_image(LEFT, max_side=512), Eye.LEFT, "P287", "P287_L.jpg").warnings == ()


def test_an_eye_of_unknown_side_is_not_side_checked(right_rgb):
    fit = check_photo(right_rgb, Eye.UNKNOWN, "P287", "")
    assert fit.side is None and fit.warnings == ()


def test_a_picture_that_is_not_a_fundus_photograph_is_not_side_checked(right_rgb):
    page = right_rgb.copy()
    page[:] = 235                       # a white page
    page[100:110, 50:400] = 20          # a line of "text"
    assert check_photo(page, Eye.LEFT, "P287", "").side is None


def test_the_batch_result_carries_the_warning_in_its_message():
    result = EyeResult(path=str(RIGHT), eye=Eye.LEFT, status=Status.OK, message="")
    noted = noted_result(result, RIGHT, "P287", "P287_L.jpg")
    assert noted.message.startswith("Check: The photograph looks like the right eye")
    assert noted_result(EyeResult(path=str(RIGHT), eye=Eye.RIGHT, status=Status.OK), RIGHT, "P287",
                        "P287_R.jpg").message == ""
    assert noted_result(noted, RIGHT, "P287", "P287_L.jpg").message == noted.message     # never noted twice
    refiled = noted_result(EyeResult(path=str(RIGHT), eye=Eye.RIGHT, status=Status.OK, message=noted.message),
                           RIGHT, "P287", "P287_R.jpg")
    assert refiled.message == ""                              # filed right after all: the old note goes


@pytest.fixture(scope="module")
def annual_classifier(tiny_model_dir, tmp_path_factory) -> Classifier:
    model = model_with_thresholds(tiny_model_dir, tmp_path_factory.mktemp("m") / "annual", 0.99, 0.99)
    return Classifier.load(model, backend="keras")


def test_a_batch_notes_a_photograph_named_for_the_other_eye_in_results_csv(tmp_path, annual_classifier):
    folder = tmp_path / "camera"
    folder.mkdir()
    shutil.copy(RIGHT, folder / "P287_L.jpg")          # a right-eye picture saved under the left eye's name
    shutil.copy(RIGHT, folder / "P500_R.jpg")          # named for its own side
    data = tmp_path / "data"
    report = run_batch([folder], tmp_path / "out", model=annual_classifier, data_dir=data, pdf=False)
    with open(report.results_csv, newline="", encoding="utf-8") as f:
        rows = {row["file"]: row for row in csv.DictReader(f)}
    assert "looks like the right eye" in rows["P287_L.jpg"]["message"]
    assert "Check:" not in rows["P500_R.jpg"]["message"]
    encounter = next(e for e in report.encounters if e.patient.patient_id == "P287")
    assert any("looks like the right eye" in r.message for r in encounter.eyes)   # the encounter keeps it too


def test_a_batch_without_the_laterality_card_screens_as_before(monkeypatch, tmp_path, caplog):
    from eyescreen_desktop.core import laterality

    monkeypatch.setattr(laterality, "_DEFAULT", None)
    monkeypatch.setattr(laterality, "default_card_path", lambda: tmp_path / "missing.json")
    result = EyeResult(path=str(RIGHT), eye=Eye.LEFT, status=Status.OK, message="")
    assert noted_result(result, RIGHT, "P287", "P287_L.jpg") is result
    assert "photograph check skipped" in caplog.text
