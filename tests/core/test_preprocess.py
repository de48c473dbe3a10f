"""preprocess: crop to the field of view, square, resize, mask, and make the two
cameras' photographs look alike; fast enough for a batch of camera files."""

from __future__ import annotations


import cv2
import numpy as np
import pytest

from eyescreen_desktop.core import imageio
from eyescreen_desktop.core.fundus import find_field_of_view
from eyescreen_desktop.core.preprocess import (PREPROCESSING_ID, TARGET_MEAN, crop_square, disc_mask,
                                                preprocess)

from .conftest import FULLRES_PHOTO


def _inside_stats(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mask = disc_mask(img.shape[0], 0.9) & (img.max(axis=2) > 10)
    pix = img[mask].astype(np.float64)
    return pix.mean(axis=0), pix.std(axis=0)


def test_the_shipped_model_was_trained_with_this_preprocessing():
    """A model card names the preprocessing its weights expect: a change to the
    crop or normalisation must come with a new ID (and a retrained model)."""
    import json

    from tests.conftest import ROOT

    card = json.loads((ROOT / "models" / "eyescreen-dr" / "model_card.json").read_text(encoding="utf-8"))
    assert card["preprocessing"] == PREPROCESSING_ID


@pytest.mark.parametrize("size", [64, 224, 384])
def test_shape_dtype_and_black_outside_the_circle(fundus_rgb, size):
    out = preprocess(fundus_rgb, size)
    assert out.shape == (size, size, 3) and out.dtype == np.uint8
    outside = ~disc_mask(size, 1.0)
    assert out[outside].max() == 0
    assert out[size // 2, size // 2].max() > 0


def test_circle_is_centred_and_fills_the_square(fundus_rgb):
    out = preprocess(fundus_rgb, 384)
    lit_cols = np.flatnonzero(out[192].max(axis=1) > 0)
    assert lit_cols[0] < 12 and lit_cols[-1] > 371           # the retina spans the width
    centre = (lit_cols[0] + lit_cols[-1]) / 2
    assert abs(centre - 191.5) < 3


def test_cut_off_caps_are_padded_black(fundus_rgb):
    """The 1024x685 export cuts the circle at top and bottom: those caps stay black
    instead of the retina being stretched to fill them."""
    out = preprocess(fundus_rgb, 384)
    col = out[:, 192].max(axis=1)
    lit_rows = np.flatnonzero(col > 0)
    assert lit_rows[0] > 10 and lit_rows[-1] < 373
    # cap height matches the geometry: (diameter - frame height) / 2, scaled to 384
    fov = find_field_of_view(fundus_rgb)
    expected_cap = (fov.diameter - 685) / 2 * 384 / fov.diameter
    assert abs(lit_rows[0] - expected_cap) < 6


def test_cameras_look_alike_after_normalisation(fundus_rgb, eyepacs_rgb):
    raw = [_inside_stats(crop_square(img, img.shape[1] / 2, img.shape[0] / 2, max(img.shape[:2]) / 2, 256))
           for img in (fundus_rgb, eyepacs_rgb)]
    done = [_inside_stats(preprocess(img, 256)) for img in (fundus_rgb, eyepacs_rgb)]
    raw_gap = np.abs(raw[0][0] - raw[1][0]).max()
    done_gap = np.abs(done[0][0] - done[1][0]).max()
    assert raw_gap > 60                      # before: orange raw vs grey enhanced
    assert done_gap < 15                     # after: the same colour statistics
    for mean, _std in done:
        assert np.all(np.abs(mean - TARGET_MEAN) < 20)
    # the contrast-enhanced photo's spread is brought down towards a raw photo's
    assert done[1][1].max() < raw[1][1].max() / 1.5


def test_normalisation_keeps_natural_appearance(fundus_rgb):
    """A raw camera photo is changed gently: order of channels and structure stay."""
    fov = find_field_of_view(fundus_rgb)
    out = preprocess(fundus_rgb, 256, fov)
    plain = crop_square(fundus_rgb, fov.cx, fov.cy, fov.radius, 256)
    mask = disc_mask(256, 0.9) & (plain.max(axis=2) > 10)
    corr = np.corrcoef(out[..., 1][mask].astype(float), plain[..., 1][mask].astype(float))[0, 1]
    assert corr > 0.99
    mean = out[mask].mean(axis=0)
    assert mean[0] > mean[1] > mean[2]


def test_uses_given_fov_even_from_a_reduced_decode(fundus_rgb):
    small = cv2.resize(fundus_rgb, (512, 343), interpolation=cv2.INTER_AREA)
    fov_small = find_field_of_view(small)
    a = preprocess(fundus_rgb, 128, fov_small)
    b = preprocess(fundus_rgb, 128)
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 3


def test_picture_without_fov_still_gives_a_square():
    page = np.full((300, 200, 3), 240, np.uint8)
    out = preprocess(page, 64)
    assert out.shape == (64, 64, 3)
    assert out[0, 0].max() == 0 and out[32, 32].max() > 0


def test_same_input_same_output_and_the_input_is_left_alone(eyepacs_rgb):
    before = eyepacs_rgb.copy()
    first = preprocess(eyepacs_rgb, 128)
    np.testing.assert_array_equal(eyepacs_rgb, before)          # the caller's photo is not drawn on
    np.testing.assert_array_equal(preprocess(before, 128), first)


def test_rejects_wrong_input_type(fundus_rgb):
    with pytest.raises(ValueError, match="RGB uint8"):
        preprocess(fundus_rgb.astype(np.float32), 64)
    with pytest.raises(ValueError, match="RGB uint8"):
        preprocess(fundus_rgb[..., 0], 64)


def test_full_resolution_file_via_reduced_decode_matches_export(fundus_rgb):
    """A 3872x2592 camera original, decoded at reduced size, preprocesses to nearly
    the same picture as the 1024x685 export of the same photograph."""
    original = imageio.read_image(FULLRES_PHOTO, max_side=1024)
    a = preprocess(original, 128).astype(int)
    b = preprocess(fundus_rgb, 128).astype(int)
    assert np.abs(a - b).mean() < 6
