"""Measure how often the external-eye check finds the eyes (docs/training.md).

Three numbers, printed as JSON:

* **selfies**: scikit-image's astronaut (the only frontal face photograph it
  ships) under 48 camera-like variations: scale, mirror image, brightness,
  small rotation, position on a larger background. A hit = exactly two eyes,
  each box holding the true iris centre (marked by hand on the original:
  right eye (202, 102), left eye (245, 103)), with the right side named
  (mirroring swaps them).
* **close-ups**: the held-out (test) part of models/eyescreen-external/split.csv:
  how many are accepted as a close-up of one eye.
* **not eyes**: fundus photographs (fundus-dr, eyepacs-256) and scikit-image's
  other sample pictures: how many are wrongly taken for an eye.

With ``--gate`` every picture first goes through the learned gate
(``core.gate``, models/eyescreen-gate) and its modality is passed on, as
screening does; without it the hand-made heuristic decides alone. (The gate
was fitted on part of the external-eye pictures, so its close-up figure is
optimistic.)

Usage: ``.venv/bin/python scripts/eye_finding_rate.py [--data ../shared/datasets] [--gate]``
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
from pathlib import Path

import cv2
import numpy as np

from eyescreen_desktop.core import external_eye as X
from eyescreen_desktop.core.imageio import read_image

ASTRONAUT_IRIS = {"R": (202.0, 102.0), "L": (245.0, 103.0)}


def astronaut_variants() -> list[tuple[str, np.ndarray, dict[str, tuple[float, float]]]]:
    """(name, picture, true iris centres by side) for 48 variations of the astronaut."""
    from skimage import data

    base = data.astronaut()
    out = []
    for scale in (0.6, 0.8, 1.0, 1.4):
        for mirror in (False, True):
            for gain in (0.7, 1.2):
                for angle in (-6.0, 0.0, 6.0) if gain == 1.2 else (0.0,):
                    img, pts = _transform(base, scale, mirror, gain, angle)
                    out.append((f"s{scale}-m{int(mirror)}-g{gain}-r{angle}", img, pts))
    pad = base.copy()
    for dx in (0, 200):
        for dy in (0, 150):
            canvas = np.full((800, 900, 3), 180, np.uint8)
            canvas[dy:dy + 512, dx:dx + 512] = pad
            pts = {k: (x + dx, y + dy) for k, (x, y) in ASTRONAUT_IRIS.items()}
            out.append((f"placed-{dx}-{dy}", canvas, pts))
    return out


def _transform(img: np.ndarray, scale: float, mirror: bool, gain: float, angle: float
               ) -> tuple[np.ndarray, dict[str, tuple[float, float]]]:
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    m[:, 2] += (np.array([w, h]) * (scale - 1)) / 2
    size = (int(w * scale), int(h * scale))
    out = cv2.warpAffine(img, m, size, borderMode=cv2.BORDER_REFLECT)
    out = np.clip(out.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    pts = {k: tuple(m @ np.array([x, y, 1.0])) for k, (x, y) in ASTRONAUT_IRIS.items()}
    if mirror:
        out = out[:, ::-1].copy()
        # the patient's right eye is now on the image's right: it is named left
        pts = {"L": (size[0] - 1 - pts["R"][0], pts["R"][1]), "R": (size[0] - 1 - pts["L"][0], pts["L"][1])}
    return out, pts


def selfie_hit(img: np.ndarray, pts: dict[str, tuple[float, float]], look=X.find_eyes) -> bool:
    search = look(img)
    if search.kind != "face" or len(search.eyes) != 2:
        return False
    return all(b.x <= pts[b.side][0] <= b.x + b.w and b.y <= pts[b.side][1] <= b.y + b.h for b in search.eyes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--split", type=Path, default=Path("models/eyescreen-external/split.csv"))
    parser.add_argument("--gate", action="store_true", help="pass the learned gate's modality on")
    args = parser.parse_args()
    look = X.find_eyes
    if args.gate:
        from eyescreen_desktop.core.gate import Gate

        gate = Gate.load()
        look = lambda rgb: X.find_eyes(rgb, gate.modality(rgb).label)  # noqa: E731 - a one-line helper used only here
    variants = astronaut_variants()
    hits = [name for name, img, pts in variants if selfie_hit(img, pts, look)]
    with open(args.split, newline="", encoding="utf-8") as f:
        test = [r["file"] for r in csv.DictReader(f) if r["part"] == "test"]
    images = args.data / "external-eye" / "images"
    close = [look(read_image(images / name)).kind for name in test]
    fundus = sorted(glob.glob(str(args.data / "fundus-dr" / "images" / "*")))[:50] + \
        sorted(glob.glob(str(args.data / "eyepacs-256" / "images" / "*")))[:50]
    fundus_wrong = [p for p in fundus if look(read_image(Path(p), max_side=1024)).kind not in ("none", "fundus")]
    others = _skimage_others()
    others_wrong = [n for n, img in others if look(img).kind not in ("none", "fundus")]
    print(json.dumps({
        "selfies": {"found_both_eyes_right_side": len(hits), "of": len(variants),
                    "missed": sorted(set(n for n, _, _ in variants) - set(hits))},
        "close_ups_held_out": {"accepted": close.count("close_up"), "face": close.count("face"),
                               "none": close.count("none"), "of": len(close)},
        "fundus_taken_for_eye": {"n": len(fundus_wrong), "of": len(fundus)},
        "other_pictures_taken_for_eye": {"n": len(others_wrong), "of": len(others), "which": others_wrong},
    }, indent=1))
    return 0


def _skimage_others() -> list[tuple[str, np.ndarray]]:
    from skimage import data

    out = []
    for name in ("chelsea", "coffee", "rocket", "camera", "coins", "moon", "hubble_deep_field",
                 "immunohistochemistry", "retina", "cat", "page", "text", "clock", "horse", "logo",
                 "motorcycle_left", "grass", "gravel", "brick", "colorwheel"):
        try:
            img = getattr(data, name)()
        except Exception:  # noqa: BLE001 - a sample that needs a download is skipped
            continue
        img = np.asarray(img)
        if img.dtype == bool:
            img = img.astype(np.uint8) * 255
        if img.ndim == 2:
            img = np.stack([img] * 3, -1)
        out.append((name, np.ascontiguousarray(img[..., :3]).astype(np.uint8)))
    return out


if __name__ == "__main__":
    raise SystemExit(main())
