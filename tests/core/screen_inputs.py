"""Folders of real and bad inputs for the screening, batch and CLI tests, built
in the test's tmp_path (photographs are copied from ../shared, never into the repo)."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np

from tests.conftest import FUNDUS_DR
from tests.core.conftest import document_rgb

IMAGES = FUNDUS_DR / "images"

# Expected status of every bad input (file name -> status value).
NOT_A_FILE = "folder.jpg"
"""The folder among the bad inputs: ``discover`` searches it, so a batch never lists it as a file."""

BAD_EXPECTED = {
    "zero.jpg": "error",
    "truncated.jpg": "error",
    "notes.jpg": "error",
    "random.png": "error",
    "folder.jpg": "error",      # a folder: an error when screened by name; a batch searches it instead
    "black.png": "not_fundus",
    "white.jpg": "not_fundus",
    "letter.jpg": "not_fundus",
    "blurred.jpg": "ungradable",
    "tiny.jpg": "ungradable",
}


def real_photos(n: int, start: int = 0) -> list[Path]:
    """``n`` real fundus photographs (both eyes of n/2 patients, in name order)."""
    photos = sorted(IMAGES.glob("*.jpg"))[start:start + n]
    assert len(photos) == n, f"{IMAGES} holds too few photographs"
    return photos


def copy_photos(photos: list[Path], folder: Path) -> list[Path]:
    """Copy photographs into ``folder``, keeping their ``<patient>_<eye>.jpg`` names."""
    folder.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy(p, folder / p.name)) for p in photos]


def _write(path: Path, rgb: np.ndarray) -> Path:
    ok, data = cv2.imencode(path.suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    path.write_bytes(data.tobytes())
    return path


def make_bad_inputs(folder: Path) -> dict[str, str]:
    """Write every kind of bad input into ``folder``; returns BAD_EXPECTED."""
    folder.mkdir(parents=True, exist_ok=True)
    source = IMAGES / "P001_L.jpg"
    data = source.read_bytes()
    fundus = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (folder / "notes.jpg").write_text("Patient notes: left eye photographed twice.\n" * 20)
    (folder / "random.png").write_bytes(np.random.default_rng(3).integers(0, 256, 5000, np.uint8).tobytes())
    (folder / "folder.jpg").mkdir()
    _write(folder / "black.png", np.zeros((600, 800, 3), np.uint8))
    _write(folder / "white.jpg", np.full((600, 800, 3), 255, np.uint8))
    _write(folder / "letter.jpg", document_rgb())
    _write(folder / "blurred.jpg", cv2.GaussianBlur(fundus, (0, 0), 12))
    _write(folder / "tiny.jpg", cv2.resize(fundus, (90, 60), interpolation=cv2.INTER_AREA))
    return dict(BAD_EXPECTED)


def model_with_thresholds(source: Path, dest: Path, referable: float, urgent: float) -> Path:
    """A copy of a model folder whose card's default operating point is changed
    (the card's hash covers the weights, not the card). With thresholds above
    what the untrained tiny model outputs, every graded eye lands in annual, so
    a test can tell an annual patient from a review one."""
    import json

    shutil.copytree(source, dest)
    card_path = dest / "model_card.json"
    card = json.loads(card_path.read_text())
    card["operating_points"]["default"].update(referable=referable, urgent=urgent)
    card_path.write_text(json.dumps(card, indent=2))
    return dest
