"""The eye-check result slip: verdict, finding, probability, both eyes of a
selfie, the web-label warning; read back with pypdf. No verdict, no slip."""

from __future__ import annotations

import datetime as dt

import pytest
from pypdf import PdfReader

from eyescreen_desktop.core import external_eye as X
from eyescreen_desktop.core.imageio import read_image
from eyescreen_desktop.core.paths import project_root
from eyescreen_desktop.core.protocol import NEEDS_FUNDUS
from eyescreen_desktop.core.records import Patient
from eyescreen_desktop.core.reports.eye_check import write_eye_check_slip
from tests.conftest import SHARED

MODEL = project_root() / "models" / "eyescreen-external"


@pytest.fixture(scope="module")
def model() -> X.ExternalEyeModel:
    return X.ExternalEyeModel.load(MODEL)


def _text(path) -> str:
    return " ".join((page.extract_text() or "") for page in PdfReader(str(path)).pages)


def test_a_close_up_slip_says_check_up_finding_and_probability(model, tmp_path):
    check = X.check_photo(read_image(SHARED / "external-eye" / "images" / "cataract_cataract_0611.jpg"), model)
    path = write_eye_check_slip(check, tmp_path / "slip.pdf", Patient("P-77", "Ana Nuñez"), model.info,
                                dt.datetime(2026, 11, 28, 10, 5))
    text = " ".join(_text(path).split())
    for words in ("Eye check result", "Go for an eye check-up", "Possible cataract",
                  "Probability that a check-up is needed", "Ana Nuñez", "web labels", "eyescreen-external",
                  "28 Nov 2026"):
        assert words in text, words
    assert " ".join(NEEDS_FUNDUS.split()) in text


def test_a_selfie_slip_shows_both_eyes_right_first(model, tmp_path):
    from skimage import data

    check = X.check_photo(data.astronaut(), model)
    text = _text(write_eye_check_slip(check, tmp_path / "selfie.pdf", model=model.info))
    assert text.index("Right eye") < text.index("Left eye")
    assert ("Your eye looks healthy" in text) or ("Go for an eye check-up" in text)


def test_no_verdict_no_slip(model, tmp_path):
    from skimage import data

    check = X.check_photo(data.rocket(), model)
    with pytest.raises(ValueError, match="no result to print"):
        write_eye_check_slip(check, tmp_path / "none.pdf")
    assert not (tmp_path / "none.pdf").exists()
