"""One model frame (issue 20, defect 3): for a rectangular crop from inside the retina
(no round edge, all retina), the model input, the window's photograph under the heat
map and the slip's heat-map picture are the same square, so the heat map sits where
the model looked. A real photograph from ../shared/datasets, cropped to 4:3."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from eyescreen_desktop.core import imageio
from eyescreen_desktop.core.preprocess import model_frame
from eyescreen_desktop.core.records import Eye, EyeResult, Status
from eyescreen_desktop.core.reports import heatmap_overlay, photo_thumbnail
from eyescreen_desktop.core.screening import ScreenItem, default_gate, prepare
from eyescreen_desktop.gui.worker import display_photo
from tests.conftest import FUNDUS_DR


@pytest.fixture(scope="module")
def rectangular(tmp_path_factory) -> Path:
    """The middle of a fundus photograph, 4:3, every pixel retina."""
    rgb = imageio.read_image(FUNDUS_DR / "images" / "P001_L.jpg")
    h, w = rgb.shape[:2]
    cw, ch = w // 2, (w // 2) * 3 // 4
    crop = rgb[(h - ch) // 2:(h + ch) // 2, (w - cw) // 2:(w + cw) // 2]
    path = tmp_path_factory.mktemp("rect") / "P001_L.jpg"
    cv2.imwrite(str(path), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    return path


def _retina_rows(img: np.ndarray) -> float:
    """Share of the square's rows, down its middle column, that show the photograph."""
    column = img[:, img.shape[1] // 2]
    return float((column.max(axis=1) > 25).mean())


def test_overlay_slip_and_model_input_are_the_same_square(rectangular):
    prepared = prepare(ScreenItem(rectangular, Eye.LEFT), 224, gate=default_gate())
    assert prepared.quality.status is Status.OK and prepared.tensor is not None
    window = display_photo(EyeResult(str(rectangular), Eye.LEFT, Status.OK))
    slip = heatmap_overlay(photo_thumbnail(rectangular), np.zeros((7, 7), np.float32))
    for picture in (prepared.tensor, window, slip):
        assert picture.shape[0] == picture.shape[1]                       # square, never stretched
    # the frame is the circle through the crop's corners: the 4:3 picture fills 3/5 of the square
    model = _retina_rows(prepared.tensor)
    assert model == pytest.approx(0.6, abs=0.02)
    assert _retina_rows(window) == pytest.approx(model, abs=0.02)
    assert _retina_rows(slip) == pytest.approx(model, abs=0.02)
    h, w = imageio.read_image(rectangular).shape[:2]
    assert model_frame(imageio.read_image(rectangular)).radius == pytest.approx(np.hypot(w, h) / 2, rel=0.01)
