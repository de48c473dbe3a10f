"""Fixtures for the image front end: real photographs from ../shared and
pictures built in the test (awkward formats, bad files, non-fundus scenes)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import EYEPACS, FULLRES, FUNDUS_DR

FUNDUS_PHOTO = FUNDUS_DR / "images" / "P001_L.jpg"        # 1024x685, circle cut top and bottom
FULLRES_PHOTO = FULLRES / "P001_L.jpg"                     # 3872x2592 camera original
EYEPACS_PHOTO = EYEPACS / "images" / "10009_left.jpeg"     # 256x256, contrast-enhanced
EYEPACS_GREY_SURROUND = EYEPACS / "images" / "10337_left.jpeg"  # noisy grey background


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"{path} is missing: tests need ../shared/datasets beside the checkout")
    return path


@pytest.fixture(scope="session")
def fundus_rgb() -> np.ndarray:
    """A real 1024x685 fundus photograph, RGB."""
    return cv2.cvtColor(cv2.imread(str(_need(FUNDUS_PHOTO))), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="session")
def eyepacs_rgb() -> np.ndarray:
    """A real 256x256 contrast-enhanced eyepacs photograph, RGB."""
    return cv2.cvtColor(cv2.imread(str(_need(EYEPACS_PHOTO))), cv2.COLOR_BGR2RGB)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG signature and IHDR chunk promising ``width`` x ``height``, then one
    tiny IDAT and IEND: enough for a header parser, nothing worth decoding."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) \
        + chunk(b"IEND", b"")


def test_pattern(h: int = 48, w: int = 64) -> np.ndarray:
    """A small RGB picture whose orientation and channel order are unambiguous:
    red top-left block, green top-right, blue bottom-left, grey elsewhere."""
    rgb = np.full((h, w, 3), 90, np.uint8)
    rgb[: h // 2, : w // 2] = (255, 0, 0)
    rgb[: h // 2, w // 2:] = (0, 255, 0)
    rgb[h // 2:, : w // 2] = (0, 0, 255)
    return rgb


test_pattern.__test__ = False  # a helper, not a test


def document_rgb() -> np.ndarray:
    """A white page of black text, like a scanned letter saved as .jpg."""
    page = np.full((700, 500, 3), 245, np.uint8)
    for i, y in enumerate(range(60, 660, 28)):
        cv2.putText(page, f"Referral letter line {i}: patient details and history", (30, y),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, (20, 20, 20), 1, cv2.LINE_AA)
    return page


def natural_rgb(seed: int = 0) -> np.ndarray:
    """An outdoor-like scene: sky gradient, green hills, a sun and a few shapes."""
    rng = np.random.default_rng(seed)
    h, w = 480, 640
    img = np.zeros((h, w, 3), np.float32)
    t = np.linspace(0, 1, h)[:, None]
    img[:] = np.dstack([90 + 60 * t, 150 + 60 * t, 235 - 40 * t]) * np.ones((1, w, 1))
    hill = (h * 0.6 + 40 * np.sin(np.linspace(0, 6, w))).astype(int)
    for x in range(w):
        img[hill[x]:, x] = (60, 140, 50)
    cv2.circle(img, (520, 90), 45, (255, 230, 120), -1)
    for _ in range(6):
        x, y = int(rng.integers(0, w)), int(rng.integers(h // 2, h))
        cv2.rectangle(img, (x, y), (x + 50, y + 70), tuple(float(v) for v in rng.integers(40, 200, 3)), -1)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def face_rgb() -> np.ndarray:
    """A portrait-like picture: skin-coloured oval face, hair, eyes and mouth on a
    mid-grey studio background (warm colours, but no dark round field)."""
    img = np.zeros((600, 450, 3), np.uint8)
    img[:] = np.linspace(110, 160, 450, dtype=np.uint8)[None, :, None]
    cv2.ellipse(img, (225, 250), (150, 190), 0, 180, 360, (60, 40, 30), -1)   # hair
    cv2.ellipse(img, (225, 300), (125, 170), 0, 0, 360, (224, 172, 140), -1)  # face
    for x in (175, 275):
        cv2.ellipse(img, (x, 270), (22, 11), 0, 0, 360, (250, 250, 250), -1)
        cv2.circle(img, (x, 270), 8, (70, 50, 30), -1)
    cv2.ellipse(img, (225, 390), (45, 15), 0, 0, 180, (170, 60, 70), -1)
    cv2.rectangle(img, (150, 470), (300, 600), (224, 172, 140), -1)          # neck
    return cv2.GaussianBlur(img, (5, 5), 0)


def screenshot_rgb() -> np.ndarray:
    """A desktop screenshot: title bar, panels, buttons and text."""
    img = np.full((600, 800, 3), 236, np.uint8)
    cv2.rectangle(img, (0, 0), (800, 30), (50, 70, 120), -1)
    cv2.rectangle(img, (0, 30), (200, 600), (210, 214, 220), -1)
    for i in range(8):
        cv2.rectangle(img, (220, 60 + 60 * i), (760, 100 + 60 * i), (255, 255, 255), -1)
        cv2.putText(img, f"Item {i}", (230, 88 + 60 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1)
    return img


def dark_disc_rgb() -> np.ndarray:
    """A bright blue disc on black: round and dark-surrounded like a fundus photo,
    but not warm-coloured (e.g. a photograph of a screen or a logo)."""
    img = np.zeros((600, 600, 3), np.uint8)
    cv2.circle(img, (300, 300), 250, (40, 90, 230), -1)
    return img
