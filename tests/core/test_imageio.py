"""imageio: every supported format decodes to upright RGB uint8; every bad file
gives an ImageReadError naming the file and saying what to do; discovery
survives loops and reports broken entries."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from eyescreen_desktop.core import imageio
from eyescreen_desktop.core.imageio import ImageReadError, discover, read_image, read_image_with_hash

from .conftest import FULLRES_PHOTO, FUNDUS_PHOTO, png_header_only, test_pattern


def _write_bgr(path: Path, rgb: np.ndarray, *params: int) -> Path:
    ok, buf = cv2.imencode(path.suffix, np.ascontiguousarray(rgb[:, :, ::-1]), list(params))
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def _dicom(path: Path, pixels: np.ndarray, photometric: str, bits: int = 8) -> Path:
    """An ophthalmic photography DICOM file written by pydicom."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.77.1.5.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "OP"
    ds.PatientID = "P1"
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.SamplesPerPixel = 3 if pixels.ndim == 3 else 1
    if pixels.ndim == 3:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 8 if bits == 8 else 16
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


# --------------------------------------------------------------------------- good files


def test_reads_real_camera_jpeg_as_rgb(fundus_rgb):
    rgb = read_image(FUNDUS_PHOTO)
    assert rgb.shape == (685, 1024, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb, fundus_rgb)
    # a fundus photograph is red-dominant: proves the channels are RGB, not BGR
    assert rgb[..., 0].mean() > 2 * rgb[..., 2].mean()


def test_reduced_jpeg_decode_keeps_long_side_at_least_max_side():
    full = read_image(FULLRES_PHOTO)
    assert full.shape == (2592, 3872, 3)
    for max_side, expected in [(1024, (1296, 1936)), (512, (648, 968)), (400, (324, 484)), (4000, (2592, 3872))]:
        assert read_image(FULLRES_PHOTO, max_side=max_side).shape[:2] == expected
    assert imageio.jpeg_reduction(3872, 1024) == 2
    assert imageio.jpeg_reduction(3872, 480) == 8
    assert imageio.jpeg_reduction(3872, None) == 1


def test_hash_is_of_the_file_bytes():
    rgb, digest = read_image_with_hash(FUNDUS_PHOTO, 512)
    assert digest == hashlib.sha256(FUNDUS_PHOTO.read_bytes()).hexdigest()
    assert imageio.image_sha256(FUNDUS_PHOTO) == digest
    assert max(rgb.shape[:2]) >= 512


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".webp"])
def test_lossless_formats_round_trip_exactly(tmp_path, suffix):
    pattern = test_pattern()
    params = [cv2.IMWRITE_WEBP_QUALITY, 101] if suffix == ".webp" else []
    path = _write_bgr(tmp_path / f"eye{suffix}", pattern, *params)
    np.testing.assert_array_equal(read_image(path), pattern)


def test_sixteen_bit_png_is_scaled_to_eight_bit(tmp_path):
    img16 = np.zeros((10, 12, 3), np.uint16)
    img16[..., 2] = 65535          # BGR order on disk: red full
    img16[..., 1] = 32896          # green half
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), img16)
    rgb = read_image(path)
    assert rgb.dtype == np.uint8
    assert tuple(rgb[0, 0]) == (255, 128, 0)


def test_grey_png_becomes_three_equal_channels(tmp_path):
    grey = np.tile(np.arange(0, 250, 10, dtype=np.uint8), (8, 1))
    path = tmp_path / "grey.png"
    cv2.imwrite(str(path), grey)
    rgb = read_image(path)
    assert rgb.shape == (8, 25, 3)
    for c in range(3):
        np.testing.assert_array_equal(rgb[..., c], grey)


def test_alpha_is_composited_on_black(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = (200, 100, 50)
    rgba[:2, :, 3] = 255   # opaque top half
    rgba[2:, :, 3] = 0     # transparent bottom half
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    rgb = read_image(path)
    assert tuple(rgb[0, 0]) == (200, 100, 50)
    assert tuple(rgb[3, 3]) == (0, 0, 0)


@pytest.mark.parametrize("max_side", [None, 8])
def test_exif_orientation_is_honoured_also_in_reduced_decode(tmp_path, max_side):
    pattern = test_pattern(48, 64)                 # landscape, red top-left
    exif = Image.new("RGB", (1, 1)).getexif()
    exif[0x0112] = 6                               # stored rotated: display turned 90 degrees clockwise
    path = tmp_path / "rotated.jpg"
    Image.fromarray(pattern).save(path, "JPEG", quality=95, exif=exif.tobytes())
    rgb = read_image(path, max_side=max_side)
    h, w = rgb.shape[:2]
    assert h > w, "portrait after honouring orientation 6"
    expected = np.rot90(pattern, -1)
    if max_side:
        assert max(h, w) < max(pattern.shape[:2])   # really decoded reduced
        expected = cv2.resize(expected, (w, h), interpolation=cv2.INTER_AREA)
    # red block ends up top-right after a clockwise turn
    top_right = rgb[: h // 4, -w // 4:].reshape(-1, 3).mean(axis=0)
    assert top_right[0] > 200 and top_right[1] < 60 and top_right[2] < 60
    assert np.abs(rgb.astype(int) - expected.astype(int)).mean() < 12


def test_unicode_and_spaces_in_names(tmp_path):
    folder = tmp_path / "Clínica Ñandú 眼科"
    folder.mkdir()
    path = folder / "Pátient 01 左 L.jpg"
    shutil.copyfile(FUNDUS_PHOTO, path)
    assert read_image(path, 512).shape[2] == 3
    assert discover([tmp_path]) == [path]


@pytest.mark.parametrize("photometric", ["RGB", "YBR_FULL"])
def test_dicom_colour_photograph(tmp_path, photometric):
    from pydicom.pixels import convert_color_space

    pattern = test_pattern()
    stored = convert_color_space(pattern, "RGB", "YBR_FULL") if photometric == "YBR_FULL" else pattern
    rgb = read_image(_dicom(tmp_path / "eye.dcm", stored, photometric))
    assert rgb.shape == pattern.shape
    assert np.abs(rgb.astype(int) - pattern.astype(int)).max() <= 3


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_dicom_monochrome_twelve_bit(tmp_path, photometric):
    grey = np.tile(np.linspace(0, 4095, 16).astype(np.uint16), (6, 1))
    rgb = read_image(_dicom(tmp_path / "red-free.dcm", grey, photometric, bits=12))
    assert rgb.shape == (6, 16, 3)
    row = rgb[0, :, 0].astype(int)
    if photometric == "MONOCHROME1":   # 0 means white
        row = 255 - row
    assert row[0] == 0 and row[-1] == 255 and np.all(np.diff(row) > 0)


def test_format_comes_from_content_not_suffix(tmp_path):
    path = _write_bgr(tmp_path / "really_png.png", test_pattern())
    renamed = path.rename(tmp_path / "named_jpg.jpg")
    np.testing.assert_array_equal(read_image(renamed), test_pattern())


# --------------------------------------------------------------------------- bad files


def _bad_files(tmp: Path) -> dict[str, tuple[Path, str]]:
    """name -> (path, words the message must contain)."""
    good = FUNDUS_PHOTO.read_bytes()
    png = cv2.imencode(".png", test_pattern())[1].tobytes()
    files = {
        "zero": ("P1_L.jpg", b"", "0 bytes"),
        "truncated_jpeg": ("P2_L.jpg", good[: len(good) // 2], "cut short"),
        "truncated_png": ("P3_L.png", png[: len(png) // 2], "damaged"),
        "text": ("notes.jpg", b"Patient list\nP1, left eye\n" * 20, "text file"),
        "random": ("noise.png", np.random.default_rng(0).bytes(4096), "not a photograph"),
        "huge_header": ("bomb.png", png_header_only(100_000, 100_000), "refused"),
        "over_limit": ("big.png", png_header_only(10_000, 9_000), "refused"),
    }
    out = {}
    for key, (name, data, words) in files.items():
        (tmp / name).write_bytes(data)
        out[key] = (tmp / name, words)
    (tmp / "x.jpg").mkdir()
    out["directory"] = (tmp / "x.jpg", "folder")
    (tmp / "gone.jpg").symlink_to(tmp / "nowhere.jpg")
    out["dangling_link"] = (tmp / "gone.jpg", "no longer exists")
    out["missing"] = (tmp / "never_there.jpg", "missing")
    return out


@pytest.mark.parametrize("kind", ["zero", "truncated_jpeg", "truncated_png", "text", "random",
                                  "huge_header", "over_limit", "directory", "dangling_link", "missing"])
def test_bad_file_gives_clear_error(tmp_path, kind):
    path, words = _bad_files(tmp_path)[kind]
    with pytest.raises(ImageReadError) as err:
        read_image(path, max_side=512)
    message = str(err.value)
    assert path.name in message
    assert words in message
    assert ":" in message and len(message.split(":", 1)[1].strip()) > 10   # says what to do


def test_zero_byte_message_matches_clinic_wording(tmp_path):
    path = tmp_path / "P1_L.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"^P1_L.jpg is 0 bytes: the copy from the camera failed; copy it again$"):
        read_image(path)


def test_huge_header_is_refused_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(10_000, 9_000))

    def no_decode(*args, **kwargs):
        raise AssertionError("decoder must not be reached")

    monkeypatch.setattr(imageio.cv2, "imdecode", no_decode)
    with pytest.raises(ImageReadError, match="10000x9000"):
        read_image(path)


def test_unreadable_permissions(tmp_path, monkeypatch):
    path = tmp_path / "locked.jpg"
    shutil.copyfile(FUNDUS_PHOTO, path)
    path.chmod(0)
    if os.access(path, os.R_OK):  # running as root: simulate what a normal user meets

        def denied(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(imageio, "open", denied, raising=False)
    try:
        with pytest.raises(ImageReadError, match="locked.jpg.*permission denied"):
            read_image(path)
    finally:
        path.chmod(0o644)


def test_dicom_without_pixels_is_an_error_not_a_crash(tmp_path):
    path = _dicom(tmp_path / "empty.dcm", test_pattern(), "RGB")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 2000])    # pixel data cut short
    with pytest.raises(ImageReadError, match="empty.dcm"):
        read_image(path)


# --------------------------------------------------------------------------- discovery


def test_discover_walks_folders_and_reports_broken_entries(tmp_path):
    bad = _bad_files(tmp_path)
    sub = tmp_path / "patient 7"
    sub.mkdir()
    shutil.copyfile(FUNDUS_PHOTO, sub / "P7_R.JPG")                  # upper-case suffix
    (sub / "readme.txt").write_text("not an image")
    (tmp_path / ".hidden.jpg").write_bytes(b"x")                      # hidden: skipped
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "thumb.jpg").write_bytes(b"x")            # inside hidden folder: skipped
    (tmp_path / "x.jpg" / "inner.png").write_bytes(b"")               # inside folder named like an image: a folder
    (sub / "loop").symlink_to(tmp_path, target_is_directory=True)     # symlink loop

    found = discover([tmp_path])

    expected = sorted([p for key, (p, _) in bad.items() if key not in ("missing", "directory")]
                      + [sub / "P7_R.JPG", tmp_path / "x.jpg" / "inner.png"])
    assert found == expected
    assert found == sorted(found) and len(set(found)) == len(found)


def test_discover_explicit_files_and_duplicates(tmp_path):
    odd = tmp_path / "scan.dat"
    odd.write_bytes(b"whatever")
    pic = tmp_path / "a.png"
    _write_bgr(pic, test_pattern())
    assert discover([pic, odd, tmp_path, pic]) == sorted([odd, pic])


def test_discover_missing_input_is_a_usage_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such_folder"):
        discover([tmp_path / "no_such_folder"])


def test_every_discovered_file_reads_or_raises_image_read_error(tmp_path):
    _bad_files(tmp_path)
    shutil.copyfile(FUNDUS_PHOTO, tmp_path / "P9_L.jpg")
    outcomes = {}
    for path in discover([tmp_path]):
        try:
            outcomes[path.name] = read_image(path, 256).shape
        except ImageReadError as exc:
            outcomes[path.name] = str(exc)
    assert isinstance(outcomes.pop("P9_L.jpg"), tuple)
    assert len(outcomes) == 8 and all(isinstance(v, str) for v in outcomes.values())   # the folder x.jpg is no file


def test_png_header_fixture_is_parsed_as_claimed():
    """Guards the huge-header tests: the crafted header must really claim that size."""
    from PIL import Image as PILImage

    with PILImage.open(io.BytesIO(png_header_only(1234, 567))) as im:
        assert im.size == (1234, 567)
