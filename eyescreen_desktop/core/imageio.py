"""Finding and safely decoding eye photographs.

Clinics hand us whatever is on the camera's memory card or the network share:
photographs in half a dozen formats, DICOM exports, half-copied files, folders
named like images, thumbnails and symlink loops. Everything here turns that
into RGB ``uint8`` arrays (H, W, 3) or an :class:`ImageReadError` whose message
names the file and says what the nurse should do. Nothing here crashes on bad
input and nothing decodes an image before its header has been checked, so a
crafted "100000 x 100000" file cannot exhaust the memory.

Decisions worth knowing:

* The format is recognised from the file's first bytes, not its suffix, so a
  PNG saved as ``.jpg`` still reads and a text file named ``.jpg`` is reported
  as "not an image".
* Bytes are read with ``open()`` and decoded with ``cv2.imdecode``, never
  ``cv2.imread(path)``, so unicode and spaces in names work on every platform.
* EXIF orientation is honoured for every format: OpenCV is told to ignore it
  and we apply the tag ourselves, which keeps the reduced JPEG decode and the
  PNG/TIFF/WebP paths consistent.
* ``discover`` reports a *directory* named like an image (``x.jpg/``) as an entry
  of its own, so the results list shows an error row for it instead of silently
  skipping it; its contents are still searched, so no photograph inside is lost.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".dcm"}
)
MAX_PIXELS = 80_000_000          # ~ 3x a 24 MP camera; a header promising more is refused
MAX_FILE_BYTES = 512 * 1024 * 1024

_EXIF_ORIENTATION = 0x0112


class ImageReadError(Exception):
    """A file that could not be turned into a picture; the message names the file
    and says what to do, ready to be shown to clinic staff."""


# --------------------------------------------------------------------------- discovery


def looks_like_image(path: Path) -> bool:
    """True when the name's suffix is one we read (case-insensitive)."""
    return path.suffix.lower() in SUPPORTED_SUFFIXES


def discover(inputs: Sequence[Path]) -> list[Path]:
    """Every image-like path under ``inputs``, sorted and without duplicates.

    Folders are searched recursively (following symlinks, each real folder once,
    so loops end); hidden files and folders are skipped. Files given explicitly
    are always included, whatever their suffix, because the user asked for them.
    Broken files and dangling links are included on purpose so the caller can
    report them. A folder is never a photograph, whatever its name: ``folder.jpg/``
    is searched like any other folder, never screened as a file. A missing input raises
    FileNotFoundError: that is a usage error, not a bad photograph.
    """
    found: set[Path] = set()
    seen_dirs: set[str] = set()
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            found.update(_walk(path, seen_dirs))
        elif path.exists() or path.is_symlink():
            found.add(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return sorted(found)


def _walk(folder: Path, seen_dirs: set[str]) -> Iterator[Path]:
    """Image-like entries below ``folder``; ``seen_dirs`` holds resolved folders
    already visited so a symlink loop is entered only once."""
    real = os.path.realpath(folder)
    if real in seen_dirs:
        return
    seen_dirs.add(real)
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        log.warning("cannot list %s: %s", folder, exc)
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        try:
            is_dir = entry.is_dir()  # follows symlinks
        except OSError:
            is_dir = False
        if is_dir:
            yield from _walk(path, seen_dirs)
        elif looks_like_image(path):
            yield path


# --------------------------------------------------------------------------- reading


def read_image(path: Path, max_side: int | None = None) -> np.ndarray:
    """Decode ``path`` to RGB uint8 (H, W, 3), upright per EXIF.

    ``max_side`` is a speed hint: when given, the result's long side is at least
    ``min(original, max_side)`` and less than ``2 * max_side``. JPEGs are then
    decoded at 1/2, 1/4 or 1/8 scale by libjpeg itself (a 3872x2592 camera file
    decodes several times faster); other formats are decoded and downscaled.
    Raises ImageReadError for anything that is not a readable image.
    """
    return read_image_with_hash(path, max_side)[0]


def read_image_with_hash(path: Path, max_side: int | None = None) -> tuple[np.ndarray, str]:
    """Like :func:`read_image`, plus the SHA-256 of the file's bytes, reading the
    file once (the hash is how the clinic database recognises a photo seen before)."""
    path = Path(path)
    data = _read_bytes(path)
    digest = hashlib.sha256(data).hexdigest()
    return decode_image(data, path.name, max_side), digest


def image_sha256(path: Path) -> str:
    """SHA-256 of the file's bytes (hex), with the same errors as read_image."""
    return hashlib.sha256(_read_bytes(Path(path))).hexdigest()


def decode_image(data: bytes, name: str, max_side: int | None = None) -> np.ndarray:
    """Decode image bytes; ``name`` is only used in error messages."""
    kind = sniff_format(data)
    if kind is None:
        raise ImageReadError(_not_an_image_message(data, name))
    if kind == "dicom":
        rgb = _decode_dicom(data, name)
    else:
        orientation = _check_header(data, name)
        if kind == "jpeg":
            _check_jpeg_complete(data, name)
            rgb = _decode_jpeg(data, name, max_side)
        else:
            rgb = _decode_other(data, name)
        rgb = apply_exif_orientation(rgb, orientation)
    return _limit_side(rgb, max_side)


def sniff_format(data: bytes) -> str | None:
    """The image format named by the file's magic bytes, or None."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if data[:2] == b"BM":
        return "bmp"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[128:132] == b"DICM":
        return "dicom"
    return None


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, or an ImageReadError saying why they cannot be had."""
    name = path.name
    if path.is_dir():
        raise ImageReadError(
            f"{name} is a folder, not a photograph: open the folder and choose the photographs inside it")
    if not path.exists():
        what = "a link to a file that no longer exists" if path.is_symlink() else "missing"
        raise ImageReadError(f"{name} is {what}: check the file is still there and copy it again")
    try:
        size = path.stat().st_size
        if size == 0:
            raise ImageReadError(f"{name} is 0 bytes: the copy from the camera failed; copy it again")
        if size > MAX_FILE_BYTES:
            raise ImageReadError(
                f"{name} is {size // 2**20} MB, too large for a fundus photograph: export a smaller copy")
        with open(path, "rb") as f:
            return f.read()
    except PermissionError:
        raise ImageReadError(
            f"{name} cannot be opened (permission denied): ask for read access or copy it to a folder you own"
        ) from None
    except OSError as exc:
        raise ImageReadError(f"{name} could not be read ({exc.strerror or exc}): copy it again") from None


def _not_an_image_message(data: bytes, name: str) -> str:
    head = data[:512]
    printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in head)
    if head and printable / len(head) > 0.95:
        return f"{name} is a text file, not a photograph: export the photograph from the camera again"
    return f"{name} is not a photograph in a format EyeScreen reads (JPEG, PNG, TIFF, BMP, WebP, DICOM): export it again"


def _check_header(data: bytes, name: str) -> int:
    """Check the promised size before decoding; returns the EXIF orientation (1 when none)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
                orientation = _orientation_of(im)
    except Image.DecompressionBombError:
        raise ImageReadError(_too_large_message(name, None, None)) from None
    except Exception:
        raise ImageReadError(
            f"{name} is damaged (its header cannot be read): copy it from the camera again") from None
    if width * height > MAX_PIXELS:
        raise ImageReadError(_too_large_message(name, width, height))
    if width < 1 or height < 1:
        raise ImageReadError(f"{name} has no pixels: copy it from the camera again")
    return orientation


def _orientation_of(im) -> int:
    try:
        value = int(im.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # malformed EXIF should not cost the photograph
        return 1
    return value if 1 <= value <= 8 else 1


def _too_large_message(name: str, width: int | None, height: int | None) -> str:
    size = f" ({width}x{height} pixels)" if width else ""
    return (f"{name} claims to be far larger than any fundus camera{size}: it was refused before "
            "decoding; export the photograph again at its normal size")


def _check_jpeg_complete(data: bytes, name: str) -> None:
    """A JPEG cut short still half-decodes (grey bottom); refuse it instead.
    The end-of-image marker must follow the last start-of-scan marker."""
    last_scan = data.rfind(b"\xff\xda")
    if last_scan < 0 or data.find(b"\xff\xd9", last_scan) < 0:
        raise ImageReadError(
            f"{name} is incomplete (the file was cut short, probably during copying): copy it again")


def jpeg_reduction(long_side: int, max_side: int | None) -> int:
    """The largest libjpeg reduction (1, 2, 4 or 8) keeping the long side >= max_side."""
    if not max_side:
        return 1
    factor = 1
    for f in (2, 4, 8):
        if -(-long_side // f) >= max_side:
            factor = f
    return factor


_REDUCED = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2,
            4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


def _decode_jpeg(data: bytes, name: str, max_side: int | None) -> np.ndarray:
    width, height = _jpeg_size(data)
    flags = _REDUCED[jpeg_reduction(max(width, height), max_side)] | cv2.IMREAD_IGNORE_ORIENTATION
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if bgr is None:
        raise ImageReadError(f"{name} is damaged and cannot be decoded: copy it from the camera again")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _jpeg_size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return im.size


def _decode_other(data: bytes, name: str) -> np.ndarray:
    """PNG, TIFF, BMP, WebP: 8 or 16 bit, grey, RGB or with alpha."""
    flags = cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if img is None:
        raise ImageReadError(f"{name} is damaged and cannot be decoded: copy it from the camera again")
    return to_rgb8(img, bgr=True)


def to_rgb8(img: np.ndarray, bgr: bool) -> np.ndarray:
    """Any grey/colour/alpha array of any bit depth -> RGB uint8 (alpha composited on black,
    which is what the dark surround of a fundus photograph looks like anyway)."""
    img = _to_uint8(img)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        return np.ascontiguousarray(np.repeat(img[:, :, None], 3, axis=2))
    if img.shape[2] == 4:
        alpha = img[:, :, 3:4].astype(np.uint16)
        img = ((img[:, :, :3].astype(np.uint16) * alpha + 127) // 255).astype(np.uint8)
    elif img.shape[2] == 2:  # grey + alpha
        alpha = img[:, :, 1:2].astype(np.uint16)
        grey = ((img[:, :, :1].astype(np.uint16) * alpha + 127) // 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey, 3, axis=2))
    img = img[:, :, :3]
    return np.ascontiguousarray(img[:, :, ::-1] if bgr else img)


def _to_uint8(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        return (img >> 8).astype(np.uint8)
    if img.dtype.kind == "f":
        scale = 255.0 if float(np.nanmax(img, initial=0.0)) <= 1.0 else 255.0 / max(float(np.nanmax(img)), 1e-6)
        return np.clip(np.nan_to_num(img) * scale + 0.5, 0, 255).astype(np.uint8)
    peak = max(int(img.max(initial=0)), 1)
    return (img.astype(np.float64) * (255.0 / peak) + 0.5).clip(0, 255).astype(np.uint8)


def apply_exif_orientation(rgb: np.ndarray, orientation: int) -> np.ndarray:
    """Turn the pixels upright according to the EXIF orientation tag (1-8)."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1, :],
        5: lambda a: np.transpose(a, (1, 0, 2)),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: np.rot90(a, 1)[::-1, ::-1],
        8: lambda a: np.rot90(a, 1),
    }
    op = ops.get(orientation)
    return rgb if op is None else np.ascontiguousarray(op(rgb))


def _decode_dicom(data: bytes, name: str) -> np.ndarray:
    """Ophthalmic photography DICOM: RGB, YBR or MONOCHROME, first frame."""
    import pydicom

    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        rows, cols = int(ds.Rows), int(ds.Columns)
    except Exception:
        raise ImageReadError(f"{name} is a damaged DICOM file: export it from the camera again") from None
    if rows * cols > MAX_PIXELS:
        raise ImageReadError(_too_large_message(name, cols, rows))
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
        pixels = ds.pixel_array  # pydicom 3 converts YBR to RGB by default
    except Exception as exc:
        log.info("DICOM decode failed for %s: %s", name, exc)
        raise ImageReadError(
            f"{name} is a DICOM file whose pixels cannot be decoded (unsupported compression or damaged): "
            "export it as JPEG or uncompressed DICOM") from None
    return _dicom_to_rgb(ds, np.asarray(pixels), name)


def _dicom_to_rgb(ds, pixels: np.ndarray, name: str) -> np.ndarray:
    photometric = str(getattr(ds, "PhotometricInterpretation", "")).upper()
    samples = int(getattr(ds, "SamplesPerPixel", 1))
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if frames > 1:
        pixels = pixels[0]
    pixels = _dicom_to_uint8(pixels, int(getattr(ds, "BitsStored", 8) or 8))
    if samples == 1:
        if pixels.ndim != 2:
            raise ImageReadError(f"{name} holds no single photograph: export one image per file")
        if photometric == "MONOCHROME1":
            pixels = 255 - pixels
        return np.ascontiguousarray(np.repeat(pixels[:, :, None], 3, axis=2))
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ImageReadError(f"{name} has an unexpected DICOM pixel layout: export it as JPEG")
    return np.ascontiguousarray(pixels)


def _dicom_to_uint8(pixels: np.ndarray, bits_stored: int) -> np.ndarray:
    """Scale stored values (8-16 bit, possibly signed) to 0-255 by the declared bit depth."""
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype.kind == "f":
        return _to_uint8(pixels)
    values = pixels.astype(np.int64)
    if pixels.dtype.kind == "i" and values.min(initial=0) < 0:
        values = values - values.min()
    peak = (1 << min(max(bits_stored, 1), 32)) - 1
    return (values * (255.0 / peak) + 0.5).clip(0, 255).astype(np.uint8)


def _limit_side(rgb: np.ndarray, max_side: int | None) -> np.ndarray:
    """Downscale (INTER_AREA) so the long side is below 2 * max_side."""
    if not max_side:
        return rgb
    long_side = max(rgb.shape[:2])
    if long_side < 2 * max_side:
        return rgb
    scale = max_side / long_side
    size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def camera_model(path: Path) -> str | None:
    """The camera model the photograph's EXIF names (make and model), or None when it
    names none or cannot be read: the agreement report splits by camera with it."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            exif = im.getexif()
    except Exception:  # noqa: BLE001 - any unreadable or unusual file simply has no model
        return None
    make, model = str(exif.get(0x010F, "") or "").strip(" \x00"), str(exif.get(0x0110, "") or "").strip(" \x00")
    if not model:
        return None
    return model if not make or model.lower().startswith(make.lower()) else f"{make} {model}"
