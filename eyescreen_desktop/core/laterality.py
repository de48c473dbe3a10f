"""Which eye is this fundus photograph of? The optic disc's side says.

In a standard (macula-centred, not inverted) fundus photograph the optic disc,
the brightest compact blob of the retina, lies on the image's right for a right
eye and on its left for a left eye; the dark macula lies opposite it and the
big vessels converge on the disc. A nurse who files a right-eye picture as the
left eye (F6 pressed instead of F5, a mislabelled file) makes a result that
reads true and is wrong, so the window and the batch compare this side with the
one the photograph is filed under (:mod:`core.photo_fit`).

Hand-made, Qt-free and fast (~5 ms; no network):

1. The photograph is cropped to its field of view and colour-normalised exactly
   as the grader sees it (:func:`core.preprocess.preprocess` at ``SIZE`` px).
2. :func:`disc_features` measures a few cues, each of which changes sign when
   the picture is mirrored: the horizontal offset of the brightest compact blob
   (a difference of Gaussians at the disc's scale, on normalised convolution so
   the rim does not count), that offset weighted by how much the blob stands
   out, the centroid of the brightest pixels, the left/right brightness
   balance, the left/right balance of dark thin structures (vessels), the
   offset of the darkest central blob (the macula) and the offset of the place
   that is both bright and dense with vessels (a bright exudate patch has few
   vessels, the disc many).
3. A logistic regression with no intercept (so a mirrored picture gets exactly
   the other side with the same confidence) turns them into p(right eye).
   Its weights, a few numbers, are in ``models/eyescreen-laterality/laterality.json``
   with the card saying how they were fitted and measured
   (``python -m eyescreen_desktop.training.laterality``, docs/laterality.md).

The answer is a :class:`SideEstimate` (side + confidence). Confidence is
``max(p, 1 - p)``; the card's ``warn_confidence`` is the level above which a
disagreement with the filed eye is worth a warning (chosen on validation
patients so that correctly filed photographs are rarely warned about).
Inverted photographs (as through an indirect ophthalmoscope: some EyePACS
cameras) show the disc on the other side; this module cannot know that.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .fundus import FieldOfView, channel_max, field_of_view_or_frame
from .preprocess import disc_mask, preprocess
from .records import Eye

SIZE = 128                  # side of the analysed square (field of view diameter)
INNER = 0.88                # blobs are looked for inside this fraction of the radius (the rim is ragged)
DISC_SIGMA = 0.035          # disc-scale blur, fraction of SIZE (the disc is ~1/7 of the field's diameter)
BACKGROUND_SIGMA = 0.14     # surround blur for the difference of Gaussians
MACULA_RADIUS = 0.55        # the macula is looked for this close to the centre
TOP_FRACTION = 0.02         # brightest pixels whose centroid is a cue
VESSEL_KERNEL = 7           # black-hat kernel (px at SIZE) for dark thin structures
VESSEL_SIGMA = 0.06        # vessel-density blur, fraction of SIZE (the big vessels converge on the disc)
FEATURES = ("disc_dx", "disc_dx_strength", "bright_centroid_dx", "half_balance", "vessel_balance",
            "macula_dx", "vessel_disc_dx")
CARD_FILE = "laterality.json"
CARD_FORMAT = "eyescreen-laterality/1"


@dataclass(frozen=True)
class SideEstimate:
    """Which eye the photograph shows by its optic disc: ``eye`` (RIGHT or LEFT),
    ``p_right`` and ``confidence`` = max(p, 1 - p) in [0.5, 1]; ``disc`` is the
    disc's position as fractions of the frame (x, y), for showing where it was seen."""

    eye: Eye
    p_right: float
    confidence: float
    disc: tuple[float, float]


@dataclass(frozen=True)
class LateralityModel:
    """The fitted weights (one per feature, no intercept) and the warning level."""

    weights: tuple[float, ...]
    warn_confidence: float
    version: str = ""

    @classmethod
    def load(cls, path: Path | None = None) -> LateralityModel:
        """Read the card (default: the shipped ``models/eyescreen-laterality``)."""
        card = json.loads(Path(path or default_card_path()).read_text(encoding="utf-8"))
        if card.get("format") != CARD_FORMAT or tuple(card.get("features", ())) != FEATURES:
            raise ValueError(f"{path}: not a laterality card of format {CARD_FORMAT} with features {FEATURES}")
        return cls(tuple(float(w) for w in card["weights"]), float(card["warn_confidence"]),
                   str(card.get("version", "")))

    def p_right(self, features: Sequence[float] | np.ndarray) -> float:
        """p(right eye) from :func:`disc_features`' vector."""
        z = float(np.dot(np.asarray(self.weights, np.float64), np.asarray(features, np.float64)))
        return float(1.0 / (1.0 + np.exp(-np.clip(z, -40.0, 40.0))))


def default_card_path() -> Path:
    """The shipped card, found like every shipped model (core.paths.models_dir)."""
    from .paths import models_dir

    return Path(models_dir()) / "eyescreen-laterality" / CARD_FILE


_DEFAULT: LateralityModel | None = None


def default_model() -> LateralityModel:
    """The shipped weights, read once."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = LateralityModel.load()
    return _DEFAULT


def estimate_side(rgb: np.ndarray, model: LateralityModel | None = None,
                  fov: FieldOfView | None = None) -> SideEstimate:
    """Right or left eye, and how sure, for an RGB uint8 fundus photograph."""
    model = model or default_model()
    features, disc = _measure(rgb, fov)
    p = model.p_right(features)
    return SideEstimate(Eye.RIGHT if p >= 0.5 else Eye.LEFT, round(p, 4), round(max(p, 1.0 - p), 4), disc)


def disc_features(rgb: np.ndarray, fov: FieldOfView | None = None) -> np.ndarray:
    """The mirror-odd cues of the module text, float64 of len(FEATURES)."""
    return _measure(rgb, fov)[0]


def _measure(rgb: np.ndarray, fov: FieldOfView | None) -> tuple[np.ndarray, tuple[float, float]]:
    fov = fov or field_of_view_or_frame(rgb)
    square = preprocess(rgb, SIZE, fov)
    lit = disc_mask(SIZE, INNER) & (channel_max(square) > 8)
    if lit.sum() < SIZE:          # nothing lit to look at: no cue either way
        return np.zeros(len(FEATURES)), (0.5, 0.5)
    grey = square[..., 0].astype(np.float32) * 0.5 + square[..., 1].astype(np.float32) * 0.5
    weight = lit.astype(np.float32)
    small = _masked_blur(grey, weight, DISC_SIGMA * SIZE)
    dog = small - _masked_blur(grey, weight, BACKGROUND_SIGMA * SIZE)
    inside = dog[lit]
    spread = float(inside.std()) or 1.0
    peak = np.unravel_index(np.argmax(np.where(lit, dog, -np.inf)), dog.shape)
    c = SIZE / 2.0
    disc_dx = (peak[1] + 0.5 - c) / c
    strength = float(np.clip((dog[peak] - inside.mean()) / spread, 0.0, 10.0))
    xs = np.nonzero(lit)[1]
    top = small[lit] >= np.quantile(small[lit], 1.0 - TOP_FRACTION)
    centroid_dx = (float(xs[top].mean()) + 0.5 - c) / c
    right = xs + 0.5 > c
    values = grey[lit]
    half = (float(values[right].mean()) - float(values[~right].mean())) / (float(values.std()) or 1.0)
    vessel_map = _vessels(square[..., 1])
    vessels = vessel_map[lit]
    vessel_balance = (float(vessels[right].mean()) - float(vessels[~right].mean())) / (float(vessels.mean()) or 1.0)
    density = _masked_blur(vessel_map, weight, VESSEL_SIGMA * SIZE)
    both = (dog - inside.mean()) / spread + (density - density[lit].mean()) / (float(density[lit].std()) or 1.0)
    hub = np.unravel_index(np.argmax(np.where(lit, both, -np.inf)), both.shape)
    macula = disc_mask(SIZE, MACULA_RADIUS) & lit
    low = np.unravel_index(np.argmin(np.where(macula, dog, np.inf)), dog.shape) if macula.any() else (c, c)
    macula_dx = (low[1] + 0.5 - c) / c
    features = np.array([disc_dx, disc_dx * strength, centroid_dx, half, vessel_balance, macula_dx,
                         (hub[1] + 0.5 - c) / c], np.float64)
    return features, _frame_position(fov, hub)


def _masked_blur(grey: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of ``grey`` over the lit pixels only (normalised convolution)."""
    num = cv2.GaussianBlur(grey * weight, (0, 0), sigma)
    den = cv2.GaussianBlur(weight, (0, 0), sigma)
    return num / np.maximum(den, 1e-3)


def _vessels(green: np.ndarray) -> np.ndarray:
    """Dark thin structures: the green channel's black-hat."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (VESSEL_KERNEL, VESSEL_KERNEL))
    return cv2.morphologyEx(green, cv2.MORPH_BLACKHAT, kernel).astype(np.float32)


def _frame_position(fov: FieldOfView, peak: tuple[Any, ...]) -> tuple[float, float]:
    """The analysed square's pixel ``peak`` (row, col) as fractions of the original frame."""
    scale = 2.0 * fov.radius / SIZE
    x = fov.cx - fov.radius + (peak[1] + 0.5) * scale
    y = fov.cy - fov.radius + (peak[0] + 0.5) * scale
    return (round(float(np.clip(x / fov.width, 0, 1)), 3), round(float(np.clip(y / fov.height, 0, 1)), 3))


def card_dict(weights: Sequence[float], warn_confidence: float, version: str,
              measured: Mapping[str, object]) -> dict[str, object]:
    """The card written by the fitting script (training.laterality)."""
    return {"format": CARD_FORMAT, "version": version, "features": list(FEATURES),
            "weights": [round(float(w), 6) for w in weights], "warn_confidence": round(float(warn_confidence), 4),
            "measured": dict(measured)}
