"""Pictures on the documents: photograph thumbnails (read small, cached by path
and modification time), the heat map drawn over the photograph as the model saw
it, the clinic logo, the encounter's QR code, and the black camera surround
trimmed off so the retina fills its box."""

from __future__ import annotations

import functools
import io
import logging
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from reportlab.graphics.barcode.qr import QrCode
from reportlab.platypus import Flowable, Image

from .. import imageio
from ..fundus import channel_max
from .style import SlipSettings, clean_text, default_logo_path

log = logging.getLogger(__name__)

PHOTO_PX = 360      # long side of the embedded photograph thumbnails
HEATMAP_PX = 256    # side of the embedded heat-map thumbnails


def _encode_jpeg(rgb: np.ndarray, quality: int = 85) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("could not encode a thumbnail")
    return buf.tobytes()


@functools.lru_cache(maxsize=32)
def _thumbnail_cached(path: str, mtime_ns: int, size: int) -> np.ndarray | None:
    """The photograph at PHOTO_PX long side (read-only array), or None if unreadable."""
    try:
        rgb = imageio.read_image(Path(path), max_side=PHOTO_PX)
    except (imageio.ImageReadError, OSError, ValueError) as exc:
        log.warning("slip: no thumbnail for %s: %s", path, exc)
        return None
    scale = PHOTO_PX / max(rgb.shape[:2])
    if scale < 1:
        rgb = cv2.resize(rgb, (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale))),
                         interpolation=cv2.INTER_AREA)
    rgb = np.ascontiguousarray(rgb)
    rgb.setflags(write=False)
    return rgb


def photo_thumbnail(path: str | os.PathLike[str]) -> np.ndarray | None:
    """A small RGB copy of the photograph for a slip, cached by path and mtime;
    None when the file is gone or unreadable (the slip then says so)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return _thumbnail_cached(str(path), st.st_mtime_ns, st.st_size)


def heatmap_overlay(photo: np.ndarray, heatmap: Any, px: int = HEATMAP_PX) -> np.ndarray | None:
    """The heat map in colour over the photograph as the model saw it (cropped to
    the field of view and colour-normalised), ``px`` square; None if it fails."""
    from ..preprocess import MASK_RADIUS, disc_mask, model_frame, preprocess

    try:
        heat = np.nan_to_num(np.asarray(heatmap, np.float32)).clip(0.0, 1.0)
        if heat.ndim != 2 or min(heat.shape) < 1:
            raise ValueError(f"heat map must be a 2-D array, got shape {heat.shape}")
        photo = np.asarray(photo)
        base = preprocess(photo, px, model_frame(photo)).astype(np.float32)   # framed as the model saw it
    except Exception as exc:  # noqa: BLE001 - a slip without heat map beats no slip
        log.warning("slip: heat map not drawn: %s", exc)
        return None
    heat = cv2.resize(heat, (px, px), interpolation=cv2.INTER_LINEAR)
    colour = cv2.cvtColor(cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    alpha = (0.10 + 0.55 * heat)[..., None]
    out = base * (1 - alpha) + colour.astype(np.float32) * alpha
    out[~disc_mask(px, MASK_RADIUS)] = 0
    return out.clip(0, 255).astype(np.uint8)


def _image_flowable(rgb: np.ndarray, box_w: float, box_h: float) -> Image:
    """An embedded JPEG scaled to fit ``box_w`` x ``box_h`` points, aspect kept."""
    h, w = rgb.shape[:2]
    scale = min(box_w / w, box_h / h)
    return Image(io.BytesIO(_encode_jpeg(rgb)), width=w * scale, height=h * scale)


LOGO_MAX_PX = 400


@functools.lru_cache(maxsize=8)
def _logo_png(path: str, mtime_ns: int) -> tuple[bytes, int, int] | None:
    """The logo as a small PNG (transparency kept), so a 20-megapixel logo file
    does not make every slip 20 MB; None when unreadable."""
    try:
        img = cv2.imdecode(np.frombuffer(Path(path).read_bytes(), np.uint8), cv2.IMREAD_UNCHANGED)
    except OSError:
        img = None
    if img is None or img.ndim not in (2, 3) or min(img.shape[:2]) < 1:
        log.warning("slip: the logo %s could not be read; printing without it", path)
        return None
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    scale = LOGO_MAX_PX / max(img.shape[:2])
    if scale < 1:
        img = cv2.resize(img, (max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale))),
                         interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".png", img)
    return (buf.tobytes(), img.shape[1], img.shape[0]) if ok else None


def _logo(settings: SlipSettings, box_w: float, box_h: float) -> Flowable | None:
    """The clinic logo, loaded once per file version; None when switched off or
    unreadable (a slip without logo beats no slip)."""
    if not settings.show_logo:
        return None
    path = settings.logo_path or default_logo_path()
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError:
        log.warning("slip: the logo %s does not exist; printing without it", path)
        return None
    loaded = _logo_png(str(path), mtime)
    if loaded is None:
        return None
    data, w, h = loaded
    scale = min(box_w / w, box_h / h)
    return Image(io.BytesIO(data), width=w * scale, height=h * scale, mask="auto")


def qr_code(value: str, size: float) -> Flowable:
    """A QR code of ``value`` (the encounter ID), ``size`` points square, quiet
    zone included; error-correction level M survives a crease in the paper."""
    return QrCode(clean_text(value) or "-", width=size, height=size, qrLevel="M", qrBorder=4)


def trim_black(rgb: np.ndarray, level: int = 20) -> np.ndarray:
    """The photograph without the camera's black surround (plus a small margin),
    so the retina fills the thumbnail."""
    bright = channel_max(rgb) > level
    rows, cols = np.flatnonzero(bright.mean(axis=1) > 0.02), np.flatnonzero(bright.mean(axis=0) > 0.02)
    if len(rows) < 8 or len(cols) < 8:
        return rgb
    m = max(2, round(0.01 * max(rgb.shape[:2])))
    return rgb[max(0, rows[0] - m):rows[-1] + m + 1, max(0, cols[0] - m):cols[-1] + m + 1]
