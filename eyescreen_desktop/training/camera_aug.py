"""Camera copies: each training photograph as another camera would have delivered it.

The shipped model ranked well on cameras it never saw, but its probabilities
moved with colour, exposure and framing (docs/training.md), so thresholds did
not carry from one camera to the next. Training on copies that differ only in
what a camera changes teaches the network that those changes carry no
disease. One copy of a photograph is made by:

1. **framing** (the gate's own frame formats, ``training.frames``): full
   circle, clipped circle filling the width, a rectangle inside the retina,
   notched masks; sometimes burnt-in text or vignetting;
2. **resolution**: the frame's long side drawn from 480-1600 px (low-resolution
   phone adapters to mid-range cameras);
3. **colour, optics and exposure**: a per-channel gain of 0.7-1.3 (colour casts,
   white balance) and gamma 0.7-1.45 through one lookup table, sometimes a
   slight defocus (sigma 0.4-1.2 px at 1000 px: still gradable);
4. **file**: JPEG re-compression at quality 35-92;
5. **the engine's own front end** (``data.prepare_bytes``: decode, field of
   view, gate verdict, preprocessing), so the copy is exactly what screening
   would feed the model from such a file.

A copy the quality gate would refuse is not used (screening would not grade
it); training then uses the original in its place. Copies are deterministic
(seeded by the photograph's hash and the copy number) and cached beside the
image cache, keyed by the front end's version and this module's code, so a
rerun costs nothing. Runs in worker processes; no TensorFlow.
"""

from __future__ import annotations

import hashlib
import logging
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from . import data as D

log = logging.getLogger(__name__)

#: bump when the recipe below changes meaning (the code digest catches the rest)
CAMERA_COPY_ID = "camcopy-v1"
#: the frame geometries of ``training.frames`` and how often each is drawn (colour is done here)
GEOMETRIES = ("full_circle", "clipped_width", "rectangular", "notched")
GEOMETRY_P = (0.35, 0.35, 0.15, 0.15)


def camera_copy_bytes(raw_rgb: np.ndarray, rng: np.random.Generator) -> tuple[bytes, dict[str, object]]:
    """One camera copy of a decoded fundus photograph as JPEG bytes, plus what was done."""
    from ..core.fundus import find_field_of_view
    from . import frames as F

    fov = find_field_of_view(raw_rgb)
    fmt = str(rng.choice(GEOMETRIES, p=GEOMETRY_P))
    img = F.resize_long(F.FRAME_FORMATS[fmt](raw_rgb, fov, rng), int(rng.integers(480, 1601)))
    if rng.random() < 0.25:
        img = F.burnt_in_text(img, rng)
    if rng.random() < 0.2:
        img = F.vignetting(img, float(rng.uniform(0.3, 0.6)))
    # colour cast / white balance and gamma in one table per channel (fast on big frames)
    gamma = float(rng.uniform(0.7, 1.45))
    gains = rng.uniform(0.7, 1.3, size=3)
    ramp = (np.arange(256, dtype=np.float32) / 255.0) ** gamma
    lut = np.clip(ramp[:, None] * gains[None, :] * 255.0, 0, 255).astype(np.uint8)
    img = cv2.LUT(np.ascontiguousarray(img), lut.reshape(256, 1, 3))
    sigma = 0.0
    if rng.random() < 0.3:
        sigma = float(rng.uniform(0.4, 1.2) * max(img.shape[:2]) / 1000)
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    quality = int(rng.integers(35, 93))
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV always encodes a uint8 RGB image
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes(), {"format": fmt, "side": int(max(img.shape[:2])), "gamma": round(gamma, 3),
                           "gains": [round(float(g), 3) for g in gains], "blur_sigma": round(sigma, 2),
                           "jpeg_quality": quality}


def copy_seed(digest: str, index: int) -> int:
    """The copy's random seed: from the photograph's hash and the copy number only."""
    return int.from_bytes(hashlib.sha256(f"{digest}:{index}".encode()).digest()[:8], "little")


def version() -> str:
    """Cache version: the front end's version, this recipe's ID and a digest of the code
    that makes copies (this module and the frame formats)."""
    from . import frames

    h = hashlib.sha256()
    for module_file in (__file__, frames.__file__):
        h.update(D._code_digest(Path(module_file).read_text(encoding="utf-8")))
    return f"{D.front_end_version()}-{CAMERA_COPY_ID}-{h.hexdigest()[:10]}"


def _make_one(args: tuple[str, int, int, str]) -> tuple[np.ndarray, str, dict[str, object]]:
    """Worker: (path, copy index, input size, cache folder) -> (image, status, info)."""
    path, index, size, root = args
    digest = D.file_digest(Path(path))
    npy = Path(root) / f"{digest}-{index}.npy"
    found = D.read_cached(npy, size)
    if found is not None:
        return found[0], found[1]["status"], found[1]
    from ..core import imageio

    rng = np.random.default_rng(copy_seed(digest, index))
    rgb = imageio.decode_image(Path(path).read_bytes(), Path(path).name)
    data, info = camera_copy_bytes(rgb, rng)
    prepared = D.prepare_bytes(data, Path(path).name, size)
    info = {**info, "status": prepared.status, "reasons": list(prepared.reasons)}
    D.write_cached(npy, prepared.image, info)
    return prepared.image, prepared.status, info


class CameraCopies:
    """Cached camera copies of training photographs at one input size."""

    def __init__(self, size: int, root: Path | None = None):
        self.size = size
        self.version = f"{version()}-{size}"
        self.root = Path(root or D.cache_dir()) / "camera-copies" / self.version
        self.root.mkdir(parents=True, exist_ok=True)

    def load(self, samples: Sequence[D.Sample], originals: np.ndarray, index: int = 0, workers: int = 2,
             progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Copy ``index`` of every sample (N, size, size, 3), and which ones are real
        copies: where the gate refused a copy, the original stands in (used=False)."""
        out = np.empty_like(originals)
        used = np.zeros(len(samples), bool)
        jobs = [(str(s.path), index, self.size, str(self.root)) for s in samples]
        done = 0
        with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
            for i, (image, status, _) in enumerate(pool.map(_make_one, jobs, chunksize=16)):
                if status == "ok":
                    out[i], used[i] = image, True
                else:
                    out[i] = originals[i]
                done += 1
                if progress and done % 500 == 0:
                    progress(done, len(jobs))
        return out, used
