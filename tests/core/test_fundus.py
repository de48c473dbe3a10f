"""fundus: the field of view is found on real photographs of both collections
(cut circles, grey surrounds), non-fundus pictures are NOT_FUNDUS, and damaged
fundus photographs are UNGRADABLE with the right reason and advice."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

from eyescreen_desktop.core import fundus
from eyescreen_desktop.core.fundus import FieldOfView, assess_quality, find_field_of_view
from eyescreen_desktop.core.records import Status
from tests.conftest import EYEPACS, FUNDUS_DR

from .conftest import (EYEPACS_GREY_SURROUND, dark_disc_rgb, document_rgb, face_rgb, natural_rgb,
                       screenshot_rgb)


def _rgb(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def _verdict(rgb: np.ndarray):
    return assess_quality(rgb, find_field_of_view(rgb))


# --------------------------------------------------------------------------- field of view


def test_fov_of_camera_photo_with_circle_cut_top_and_bottom(fundus_rgb):
    fov = find_field_of_view(fundus_rgb)
    assert isinstance(fov, FieldOfView)
    # the camera's circle is ~800 px across and taller than the 685 px frame;
    # its horizontal extent on the middle row gives the centre independently
    lit = np.flatnonzero(fundus_rgb[342].max(axis=1) > 30)
    assert 760 < fov.diameter < 850
    assert abs(fov.diameter - (lit[-1] - lit[0])) < 12
    assert abs(fov.cx - (lit[0] + lit[-1]) / 2) < 6 and abs(fov.cy - 342) < 15
    assert fov.diameter > fundus_rgb.shape[0]
    assert 0.85 < fov.coverage < 0.99          # the cut-off caps are missing
    assert fov.circularity > 0.97
    x0, y0, x1, y1 = fov.bbox
    assert y0 < 0 and y1 > 685 and 0 < x0 < x1 < 1024


def test_fov_of_synthetic_cut_circle_is_exact():
    img = np.zeros((300, 500, 3), np.uint8)
    cv2.circle(img, (260, 150), 190, (180, 90, 30), -1)   # cut at top and bottom
    fov = find_field_of_view(img)
    assert fov is not None
    assert abs(fov.cx - 260) < 3 and abs(fov.cy - 150) < 3 and abs(fov.radius - 190) < 3


def test_fov_where_export_padded_a_cut_circle_with_black():
    """eyepacs-style: circle cut by a straight edge inside the frame, black padding beyond."""
    img = np.zeros((256, 256, 3), np.uint8)
    cv2.circle(img, (128, 128), 127, (170, 120, 90), -1)
    img[:30] = 0
    img[226:] = 0
    fov = find_field_of_view(img)
    assert abs(fov.radius - 127) < 3 and abs(fov.cy - 128) < 3
    assert fov.circularity > 0.95


def test_fov_with_grey_noisy_surround_uses_stricter_threshold():
    rgb = _rgb(EYEPACS_GREY_SURROUND)
    fov = find_field_of_view(rgb)
    assert fov is not None and fov.fallback
    assert abs(fov.cx - 128) < 6 and abs(fov.cy - 128) < 6 and 120 < fov.radius < 140
    assert _verdict(rgb).status is Status.OK


def test_fov_none_for_blank_and_full_frame_pictures():
    assert find_field_of_view(np.zeros((300, 300, 3), np.uint8)) is None
    assert find_field_of_view(np.full((300, 300, 3), 255, np.uint8)) is None
    assert find_field_of_view(document_rgb()) is None


def test_fov_masks_match_the_image(fundus_rgb):
    fov = find_field_of_view(fundus_rgb)
    full = fov.full_mask()
    assert full.shape == fundus_rgb.shape[:2]
    assert abs(full.mean() - fov.circle_mask().mean()) < 0.02
    assert fundus_rgb[~full].max(axis=1).mean() < 15     # outside is the dark surround


# --------------------------------------------------------------------------- real photographs pass


def test_real_fundus_dr_photos_pass():
    rows = list(csv.DictReader(open(FUNDUS_DR / "labels.csv", encoding="utf-8")))[::40]
    verdicts = [_verdict(_rgb(FUNDUS_DR / "images" / r["file"])) for r in rows]
    assert len(verdicts) >= 10
    assert [v.status for v in verdicts].count(Status.OK) >= len(verdicts) - 1


def test_real_eyepacs_good_photos_are_fundus():
    rows = [r for r in csv.DictReader(open(EYEPACS / "labels.csv", encoding="utf-8"))
            if r["quality"] == "good"][:20]
    verdicts = [_verdict(_rgb(EYEPACS / "images" / r["file"])) for r in rows]
    assert all(v.status is not Status.NOT_FUNDUS for v in verdicts)
    assert [v.status for v in verdicts].count(Status.OK) >= 17


def test_ok_report_has_metrics_and_no_advice(fundus_rgb):
    report = _verdict(fundus_rgb)
    assert report.status is Status.OK and report.gradable
    assert report.reasons == () and report.advice == ""
    for key in ("fov_diameter", "coverage", "circularity", "fov_brightness", "vessel_contrast", "fine_detail", "saturated", "dark_fraction"):
        assert key in report.metrics


# --------------------------------------------------------------------------- not a fundus photograph


@pytest.mark.parametrize("make", [document_rgb, natural_rgb, face_rgb, screenshot_rgb, dark_disc_rgb,
                                  lambda: np.zeros((400, 400, 3), np.uint8),
                                  lambda: np.full((400, 400, 3), 255, np.uint8),
                                  lambda: np.full((400, 400, 3), (200, 120, 60), np.uint8)],
                         ids=["document", "natural", "face", "screenshot", "blue_disc", "black", "white",
                              "uniform_orange"])
def test_non_fundus_pictures_are_not_fundus(make):
    report = _verdict(make())
    assert report.status is Status.NOT_FUNDUS
    assert report.reasons == ("not_fundus",)
    assert "not a fundus photograph" in report.advice


def test_face_on_black_background_is_not_fundus():
    img = face_rgb()
    grey = img.astype(int)
    background = (np.abs(grey - grey[5, 5]).sum(axis=2) < 30)
    img[background] = 0
    assert _verdict(img).status is Status.NOT_FUNDUS


# --------------------------------------------------------------------------- ungradable


def test_blurred_photo_is_ungradable_with_focus_advice(fundus_rgb):
    blurred = cv2.GaussianBlur(fundus_rgb, (0, 0), 6)
    report = _verdict(blurred)
    assert report.status is Status.UNGRADABLE
    assert "blurred" in report.reasons
    assert report.advice.startswith("Out of focus: clean the lens and retake")
    assert report.metrics["fine_detail"] < _verdict(fundus_rgb).metrics["fine_detail"] / 2


def test_dark_photo_is_ungradable(fundus_rgb):
    dark = (fundus_rgb.astype(np.float32) * 0.25).astype(np.uint8)
    report = _verdict(dark)
    assert report.status is Status.UNGRADABLE and "dark" in report.reasons
    assert report.advice.startswith("Too dark: dilate the pupil and retake")


def test_overexposed_photo_is_ungradable(fundus_rgb):
    bright = np.clip(fundus_rgb.astype(np.float32) * 4.0, 0, 255).astype(np.uint8)
    report = _verdict(bright)
    assert report.status is Status.UNGRADABLE and "overexposed" in report.reasons


def test_tiny_photo_is_low_resolution(fundus_rgb):
    tiny = cv2.resize(fundus_rgb, (180, 120), interpolation=cv2.INTER_AREA)
    report = _verdict(tiny)
    assert report.status is Status.UNGRADABLE and "low_resolution" in report.reasons
    assert "too small" in report.advice


def test_eyepacs_256_is_not_low_resolution(eyepacs_rgb):
    assert "low_resolution" not in _verdict(eyepacs_rgb).reasons


def test_half_field_is_small_field(fundus_rgb):
    half = fundus_rgb.copy()
    half[350:] = 0          # lower half of the circle unlit (small pupil / misaligned)
    report = _verdict(half)
    assert report.status is Status.UNGRADABLE and "small_field" in report.reasons
    assert report.metrics["coverage"] < 0.6


def test_shadowed_photo_is_uneven_illumination(fundus_rgb):
    h, w = fundus_rgb.shape[:2]
    shade = np.ones((h, w), np.float32)
    shade[:, : w // 2] = 0.15          # a crescent-like shadow over the left part of the field
    shade = cv2.GaussianBlur(shade, (0, 0), 20)
    shaded = (fundus_rgb.astype(np.float32) * shade[..., None]).astype(np.uint8)
    report = _verdict(shaded)
    assert report.status is Status.UNGRADABLE and "uneven_illumination" in report.reasons


def test_no_field_of_view_on_close_up_retina(fundus_rgb):
    """A fundus picture zoomed so far that no round edge is left: it is a retina
    (warm colours) but cannot be checked, so it is ungradable, not 'not fundus'."""
    crop = fundus_rgb[200:480, 350:700]
    report = _verdict(crop)
    assert report.status is Status.UNGRADABLE and report.reasons == ("no_field_of_view",)


def test_advice_follows_most_fundamental_reason():
    report = fundus.report(Status.UNGRADABLE, ["blurred", "low_resolution"], {})
    assert report.reasons == ("low_resolution", "blurred")
    assert report.advice == fundus.ADVICE["low_resolution"]


def test_black_shadow_inside_the_field_is_ungradable_not_foreign(fundus_rgb):
    """A dark wedge (eyelid, small pupil) eating into the field: the camera's circle
    is still found and the photo is a retake, not 'not a fundus photograph'."""
    clean = find_field_of_view(fundus_rgb)
    shade = np.ones(fundus_rgb.shape[:2], np.float32)
    cv2.ellipse(shade, (int(clean.cx - 0.4 * clean.radius), int(clean.cy)),
                (int(0.45 * clean.radius), int(0.6 * clean.radius)), 0, 0, 360, 0.05, -1)
    shade = cv2.GaussianBlur(shade, (0, 0), 8)
    shadowed = (fundus_rgb * shade[..., None]).astype(np.uint8)
    fov = find_field_of_view(shadowed)
    assert abs(fov.radius - clean.radius) < 0.03 * clean.radius
    assert abs(fov.cx - clean.cx) < 0.03 * clean.radius
    report = assess_quality(shadowed, fov)
    assert report.status is Status.UNGRADABLE
    assert {"uneven_illumination", "small_field"} & set(report.reasons)


def test_gate_agrees_with_human_quality_labels_on_a_sample():
    """A small regression guard for the figures in docs/quality-gate.md: most
    photographs graded 'good' pass and a fair share of 'reject' ones are caught."""
    rows = list(csv.DictReader(open(EYEPACS / "labels.csv", encoding="utf-8")))
    good = [r for r in rows if r["quality"] == "good"][::40]
    reject = [r for r in rows if r["quality"] == "reject"][::10]
    passed = [_verdict(_rgb(EYEPACS / "images" / r["file"])).status is Status.OK for r in good]
    caught = [_verdict(_rgb(EYEPACS / "images" / r["file"])).status is not Status.OK for r in reject]
    assert len(good) >= 40 and len(reject) >= 40
    assert np.mean(passed) >= 0.95
    assert np.mean(caught) >= 0.30


def test_quality_numbers_do_not_depend_on_decode_size():
    """The camera original decoded at 1/2 and 1/4 scale gives the same verdict and
    nearly the same focus numbers: the gate measures at a fixed field scale."""
    from eyescreen_desktop.core import imageio

    from .conftest import FULLRES_PHOTO

    a = imageio.read_image(FULLRES_PHOTO, max_side=1024)
    b = imageio.read_image(FULLRES_PHOTO, max_side=512)
    assert a.shape[0] == 2 * b.shape[0]
    ra, rb = _verdict(a), _verdict(b)
    assert ra.status is rb.status is Status.OK
    for key in ("vessel_contrast", "fine_detail", "fov_brightness"):
        assert abs(ra.metrics[key] - rb.metrics[key]) <= 0.05 * ra.metrics[key]
    assert abs(ra.metrics["fov_diameter"] - 2 * rb.metrics["fov_diameter"]) < 0.02 * ra.metrics["fov_diameter"]
