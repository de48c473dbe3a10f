"""Heat maps only on the retina, and only where something is referable.

A class activation map is computed over the whole model input, black surround
included, and normalised to its own peak. On a healthy eye the peak is often
on the black border or the bright rim of the field of view, which a slip then
labels "where the model saw signs of disease": wrong and alarming. So:

* :func:`retina_mask` is the preprocessed crop's field of view: the centred disc
  ``core.preprocess`` keeps, minus pixels it left black (a camera's clipped caps),
  pulled in by a margin so the rim itself does not count;
* :func:`mask_to_retina` zeroes the map outside it and renormalises inside;
* :func:`heatmap_to_show` drops the map of an eye nothing referable was found in
  (the slip and the window then say :data:`NO_AREA_TEXT`).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from ..domain.vocabulary import REFERRAL_QUEUES
from .fundus import channel_max
from .preprocess import BLACK_LEVEL, MASK_RADIUS, disc_mask
from .records import Queue

#: what staff read where no map is shown for a graded eye
NO_AREA_TEXT = "Heat map: no area stood out"
#: fraction of the radius trimmed off the field of view's edge (the rim glows in CAMs)
RIM_MARGIN = 0.06
#: queues whose eyes get a heat map: something referable was found
REFERRED = REFERRAL_QUEUES


def retina_mask(tensor: np.ndarray, margin: float = RIM_MARGIN) -> np.ndarray:
    """Boolean (S, S) field of view of a preprocessed model input, ``margin`` of the
    radius inside its edge (also inside a clipped cap's straight edge)."""
    size = tensor.shape[0]
    lit = disc_mask(size, MASK_RADIUS) & (channel_max(tensor) > BLACK_LEVEL)
    k = max(1, int(round(margin * size / 2)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))
    return cv2.erode(lit.astype(np.uint8), kernel, borderValue=(0,)).astype(bool)


def mask_to_retina(heatmap: np.ndarray, tensor: np.ndarray) -> np.ndarray:
    """The map with no weight outside the retina, rescaled so its peak inside is 1
    (all zero when nothing inside stood out)."""
    heat = np.asarray(heatmap, np.float32)
    mask = retina_mask(tensor)
    if mask.shape != heat.shape:
        mask = cv2.resize(mask.astype(np.uint8), heat.shape[::-1], interpolation=cv2.INTER_NEAREST).astype(bool)
    out = np.where(mask, heat, 0.0).astype(np.float32)
    peak = float(out.max())
    return out / peak if peak > 0 else out


def heatmap_to_show(heatmap: Any, tensor: np.ndarray | None, queue: Queue) -> np.ndarray | None:
    """What a result keeps: the retina-only map for a referred eye, else None."""
    if heatmap is None or tensor is None or queue not in REFERRED:
        return None
    return mask_to_retina(heatmap, tensor)
