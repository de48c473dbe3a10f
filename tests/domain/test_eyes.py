"""One reading of a file name for the window, the batch, calibration and training."""

from __future__ import annotations

from pathlib import Path

import pytest

from eyescreen_desktop.domain.eyes import eye_from_name, parse_eye, patient_and_eye
from eyescreen_desktop.domain.vocabulary import Eye


@pytest.mark.parametrize("stem, expected", [
    ("P001-R", ("P001", Eye.RIGHT)), ("P001_R", ("P001", Eye.RIGHT)), ("P001 right", ("P001", Eye.RIGHT)),
    ("p2_od", ("p2", Eye.RIGHT)), ("P3_Left", ("P3", Eye.LEFT)), ("ab_cd_os", ("ab_cd", Eye.LEFT)),
    ("x-OS", ("x", Eye.LEFT)), ("A-17-L", ("A-17", Eye.LEFT)),
    ("left", (None, Eye.LEFT)), ("R", (None, Eye.RIGHT)),
    ("P001R", (None, Eye.UNKNOWN)), ("scan", (None, Eye.UNKNOWN)), ("IMG_0001", (None, Eye.UNKNOWN)),
    ("florida", (None, Eye.UNKNOWN)), ("", (None, Eye.UNKNOWN)),
])
def test_patient_and_eye_read_the_name_the_way_the_window_does(stem, expected):
    assert patient_and_eye(stem) == expected


def test_eye_from_name_and_parse_eye():
    assert eye_from_name(Path("P001_R.jpg")) is Eye.RIGHT and eye_from_name("x-OS.png") is Eye.LEFT
    assert eye_from_name(Path("left.jpg")) is Eye.LEFT and eye_from_name(Path("fundus.jpg")) is Eye.UNKNOWN
    assert eye_from_name("P001-R.jpg") is Eye.RIGHT
    assert parse_eye(" OD ") is Eye.RIGHT and parse_eye("Left") is Eye.LEFT and parse_eye("") is Eye.UNKNOWN
    assert parse_eye("both") is Eye.UNKNOWN
