"""Turn a fundus photograph into the model's input, the same way in training and at the clinic.

``fov-crop-v1``, step by step:

1. Find the field of view (on a 256 px copy, so it costs ~2 ms) unless the
   caller already has it from the quality gate.
2. Crop the circle's bounding square from the original pixels; where the
   camera's circle runs off the frame (1024x685 exports cut it at the top and
   bottom) the square is padded with black, so the retina keeps its true scale
   and position. Resize with INTER_AREA to ``size`` x ``size``.
3. Black out everything outside 97% of the radius (drops the ragged rim and the
   blue halo of contrast-enhanced exports), and keep black what was black
   (padding, cut-off caps) so the colour shift below cannot tint it.
4. Normalise colour so cameras look alike: inside the mask each RGB channel is
   shifted and scaled to the mean and spread of a typical raw fundus
   photograph (a Reinhard-style colour transfer, gain clamped). This is linear
   per channel, so the picture stays natural-looking for an ImageNet base (the
   team found Ben Graham's local-contrast filter hurt a frozen base), yet the
   orange, dark raw photographs of fundus-dr and the grey, strongly
   contrast-enhanced eyepacs-256 photographs end up with the same colour and
   contrast statistics, so a model cannot tell the collections apart by them.

Training and inference both call :func:`preprocess`; the model card names
``PREPROCESSING_ID`` and a change of behaviour must change the ID.
"""

from __future__ import annotations

import cv2
import numpy as np

from .fundus import FieldOfView, channel_max, field_of_view_or_frame, find_field_of_view

PREPROCESSING_ID = "fov-crop-v1"

MASK_RADIUS = 0.97
# Typical inside-the-field statistics of a raw camera photograph (median over
# fundus-dr: mean R 141 G 66 B 15, std 26 18 10), lifted a little in blue so
# the blue channel does not clip at zero.
TARGET_MEAN = np.array([140.0, 70.0, 28.0], np.float32)
TARGET_STD = np.array([28.0, 19.0, 11.0], np.float32)
MIN_GAIN, MAX_GAIN = 0.25, 4.0
BLACK_LEVEL = 3   # pixels this dark (padding, cut-off caps, unlit surround) stay black


def preprocess(rgb: np.ndarray, size: int, fov: FieldOfView | None = None) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> model input uint8 (size, size, 3); see the module text."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"preprocess expects RGB uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}")
    if fov is None:
        fov = find_field_of_view(rgb)
    cx, cy, r = _circle(rgb, fov)
    square = crop_square(rgb, cx, cy, r, size)
    mask = disc_mask(size, MASK_RADIUS)
    brightest = channel_max(square)
    out = normalise_colour(square, mask, brightest)
    keep = (mask & (brightest > BLACK_LEVEL)).view(np.uint8)     # 1 where the picture stays
    return cv2.multiply(out, cv2.merge((keep, keep, keep)))      # the rest black (a boolean index: 3x slower)


def model_frame(rgb: np.ndarray, work: tuple[np.ndarray, float] | None = None) -> FieldOfView:
    """The frame the model sees in a fundus photograph: its round field, or for a
    rectangular crop from inside the retina the whole frame (``fundus.field_of_view_or_frame``).

    Screening crops the model input to it, and the window's photograph, the slip's
    heat-map picture and training crop to it too, so a heat map always sits where the
    model looked (a second cropper once framed a rectangular photograph differently)."""
    return field_of_view_or_frame(rgb, work)


def model_square(rgb: np.ndarray, size: int) -> np.ndarray:
    """The photograph cropped to its :func:`model_frame`, ``size`` square, colours as
    they are: what the window and the slip show under a heat map."""
    cx, cy, r = _circle(rgb, model_frame(rgb))
    return crop_square(rgb, cx, cy, r, size)


def _circle(rgb: np.ndarray, fov: FieldOfView | None) -> tuple[float, float, float]:
    """The FOV circle, or for a photograph without one the circle inscribed in its
    long-side square (centred), so preprocessing never fails."""
    h, w = rgb.shape[:2]
    if fov is None or fov.radius <= 0:
        return w / 2.0, h / 2.0, max(h, w) / 2.0
    sx, sy = w / fov.width, h / fov.height  # fov may come from a different decode size
    return fov.cx * sx, fov.cy * sy, fov.radius * (sx + sy) / 2.0


def crop_square(rgb: np.ndarray, cx: float, cy: float, r: float, size: int) -> np.ndarray:
    """The square around the circle, resized to ``size``, black where it leaves the frame.

    Only the in-frame part is resized (INTER_AREA) and pasted into a black
    canvas, which is both exact and fast."""
    h, w = rgb.shape[:2]
    x0, y0 = cx - r, cy - r
    scale = size / (2.0 * r)
    ix0, iy0 = max(0, int(np.ceil(x0))), max(0, int(np.ceil(y0)))
    ix1, iy1 = min(w, int(np.floor(cx + r))), min(h, int(np.floor(cy + r)))
    canvas = np.zeros((size, size, 3), np.uint8)
    if ix1 <= ix0 or iy1 <= iy0:
        return canvas
    ox0 = min(size - 1, max(0, int(round((ix0 - x0) * scale))))
    oy0 = min(size - 1, max(0, int(round((iy0 - y0) * scale))))
    ox1 = min(size, max(ox0 + 1, int(round((ix1 - x0) * scale))))
    oy1 = min(size, max(oy0 + 1, int(round((iy1 - y0) * scale))))
    part = rgb[iy0:iy1, ix0:ix1]
    interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    canvas[oy0:oy1, ox0:ox1] = cv2.resize(part, (ox1 - ox0, oy1 - oy0), interpolation=interp)
    return canvas


_MASKS: dict[tuple[int, float], np.ndarray] = {}


def disc_mask(size: int, radius_fraction: float = MASK_RADIUS) -> np.ndarray:
    """Boolean centred disc (cached: every image of a run has the same size)."""
    key = (size, radius_fraction)
    if key not in _MASKS:
        c = size / 2.0
        yy, xx = np.ogrid[:size, :size]
        _MASKS[key] = (xx + 0.5 - c) ** 2 + (yy + 0.5 - c) ** 2 <= (radius_fraction * c) ** 2
        _MASKS[key].setflags(write=False)
    return _MASKS[key]


def normalise_colour(square: np.ndarray, mask: np.ndarray, brightest: np.ndarray | None = None) -> np.ndarray:
    """Per-channel mean/std transfer inside ``mask`` to the typical raw fundus look.

    Pixels that are black in the crop (outside the camera's circle, padding)
    are left out of the statistics so a cut-off circle does not darken the rest."""
    lit = mask & ((channel_max(square) if brightest is None else brightest) > 10)
    if np.count_nonzero(lit) < 16:
        return square.copy()
    mean, std = cv2.meanStdDev(square, mask=lit.view(np.uint8))
    mean, std = mean.ravel().astype(np.float32), std.ravel().astype(np.float32)
    gain = np.clip(TARGET_STD / np.maximum(std, 1e-3), MIN_GAIN, MAX_GAIN)
    offset = TARGET_MEAN - mean * gain
    lut = np.clip(np.arange(256, dtype=np.float32)[:, None] * gain + offset, 0, 255)
    lut = (lut + 0.5).astype(np.uint8)
    return cv2.LUT(square, lut.reshape(256, 1, 3))      # one table per channel, in one pass
