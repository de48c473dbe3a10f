"""The external-eye model's input: one eye photograph made square and resized.

Shared by training (``training/external.py``) and the clinic's check
(``core/external_eye.py``) so both feed the network exactly the same pixels;
the model card names the version (:data:`EYE_PREPROCESSING_ID`). Kept apart
from ``core/preprocess.py``, which crops fundus photographs to their field of
view: an eye close-up has no black surround to find.
"""

from __future__ import annotations

import cv2
import numpy as np

EYE_PREPROCESSING_ID = "eye-square-v1"


def square_eye(rgb: np.ndarray, size: int) -> np.ndarray:
    """Pad a photograph of an eye to a square (edge pixels repeated, so no black
    border the network could read as a finding) and resize to ``size``.

    Padding rather than cropping keeps both eye corners, where conjunctivitis
    often shows; web close-ups run up to about 2:1 wide."""
    rgb = np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)
    h, w = rgb.shape[:2]
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    sq = cv2.copyMakeBorder(rgb, top, side - h - top, left, side - w - left, cv2.BORDER_REPLICATE)
    interp = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return cv2.resize(sq, (size, size), interpolation=interp)
