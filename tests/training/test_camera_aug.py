"""Camera copies: a training photograph as another camera would deliver it, through
the engine's own front end, reproducible and cached."""

from __future__ import annotations

import numpy as np
import pytest

from eyescreen_desktop.core.imageio import read_image
from eyescreen_desktop.training import camera_aug as C
from eyescreen_desktop.training import data as D
from tests.conftest import FUNDUS_DR

SIZE = 128


@pytest.fixture(scope="module")
def photo():
    return FUNDUS_DR / "images" / "P001_L.jpg"


def test_a_copy_changes_framing_colour_and_file_but_not_what_is_seen(photo):
    raw = read_image(photo)
    data, info = C.camera_copy_bytes(raw, np.random.default_rng(3))
    assert data[:2] == b"\xff\xd8"                                  # a JPEG file, as a camera writes
    assert info["format"] in C.GEOMETRIES and 35 <= info["jpeg_quality"] <= 92
    assert 480 <= info["side"] <= 1600
    copy = D.prepare_bytes(data, "copy.jpg", SIZE)
    original = D.prepare_bytes(photo.read_bytes(), photo.name, SIZE)
    assert copy.status == "ok"                                      # still a gradable fundus photograph
    assert copy.image.shape == original.image.shape == (SIZE, SIZE, 3)
    diff = np.abs(copy.image.astype(int) - original.image.astype(int)).mean()
    assert diff > 1            # not the same pixels (preprocessing's colour normalisation undoes much)
    # the retina is still where it was: brightness profiles agree
    a, b = copy.image.mean(axis=(1, 2)), original.image.mean(axis=(1, 2))
    assert np.corrcoef(a, b)[0, 1] > 0.5


def test_copies_are_reproducible_cached_and_refused_copies_fall_back(tmp_path, photo, monkeypatch):
    samples = [D.Sample(photo, "fundus-dr:P001", "L", 0, 0, "fundus-dr")] * 2
    originals = np.zeros((2, SIZE, SIZE, 3), np.uint8)
    copies = C.CameraCopies(SIZE, root=tmp_path)
    first, used = copies.load(samples, originals, workers=1)
    again, _ = copies.load(samples, originals, workers=1)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first[0], first[1])               # seeded by the file, not the order
    assert used.all() and len(list(copies.root.glob("*.npy"))) == 1
    other, _ = copies.load(samples[:1], originals[:1], index=1, workers=1)
    assert not np.array_equal(other[0], first[0])                   # copy 1 is another camera

    monkeypatch.setattr(D, "prepare_bytes", lambda data, name, size: D.Prepared(
        np.full((size, size, 3), 9, np.uint8), "ungradable", ("out of focus",)))
    refused = C.CameraCopies(SIZE, root=tmp_path / "refused")
    out, used = refused.load(samples[:1], originals[:1] + 7, workers=1)
    assert not used[0] and (out[0] == 7).all()                      # the original stands in


def test_the_cache_helpers_round_trip_and_recompute_what_they_cannot_trust(tmp_path):
    """The image cache and the camera copies share one store: an entry comes
    back as written; another size, a damaged verdict or a missing half reads as
    absent (so it is computed again), and no temporary file is left behind."""
    image = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3)
    npy = tmp_path / "abc-0.npy"
    D.write_cached(npy, image, {"status": "ok", "reasons": [], "kind": "gamma"})
    got, info = D.read_cached(npy, 4)
    assert np.array_equal(got, image) and info == {"status": "ok", "reasons": [], "kind": "gamma"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["abc-0.json", "abc-0.npy"]
    assert D.read_cached(npy, 8) is None
    npy.with_suffix(".json").write_text("{not json")
    assert D.read_cached(npy, 4) is None
    npy.with_suffix(".json").unlink()
    assert D.read_cached(npy, 4) is None


def test_a_photographs_hash_is_read_once_and_follows_the_file(tmp_path):
    """The caches key on the file's SHA-256; it is remembered while the file
    keeps its size and time, and a rewritten file gets its new hash."""
    import hashlib
    import os

    photo = tmp_path / "p.jpg"
    photo.write_bytes(b"first bytes")
    assert D.file_digest(photo) == hashlib.sha256(b"first bytes").hexdigest()
    hits = D._digest.cache_info().hits
    assert D.file_digest(photo) == hashlib.sha256(b"first bytes").hexdigest()
    assert D._digest.cache_info().hits == hits + 1
    photo.write_bytes(b"other bytes, longer")
    os.utime(photo, ns=(1, 1))
    assert D.file_digest(photo) == hashlib.sha256(b"other bytes, longer").hexdigest()
