"""The numpy LBP-cascade evaluator against scikit-image's Cascade (test-only) on
real pictures: the same face box on the astronaut, no face in a fundus photograph
or in scikit-image's non-face samples."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from eyescreen_desktop.core import external_eye
from eyescreen_desktop.core.face_cascade import Detection, LBPCascade, group_detections, mb_lbp
from eyescreen_desktop.core.paths import resource_file
from tests.conftest import FUNDUS_DR

skimage_data = pytest.importorskip("skimage.data")

PARAMS = dict(scale_factor=1.2, step_ratio=1)   # find_face's


@pytest.fixture(scope="module")
def cascade() -> LBPCascade:
    return LBPCascade(resource_file(*external_eye.FACE_CASCADE_FILE))


def _grey(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def test_the_shipped_cascade_parses(cascade):
    assert (cascade.window_height, cascade.window_width) == (24, 24)
    assert len(cascade.stages) == 20 and cascade.rects.shape[1] == 4
    assert all(s.subsets.shape == (s.feature.size, 8) for s in cascade.stages)
    assert max(int(s.feature.max()) for s in cascade.stages) < len(cascade.rects)


def test_mb_lbp_bits_follow_opencv_order():
    """A bright top-left block sets bit 7 only; a bright left-middle block bit 0 only."""
    img = np.zeros((9, 9), np.uint8)
    img[3:6, 3:6] = 10
    img[0:3, 0:3] = 20
    integral = cv2.integral(img, sdepth=cv2.CV_64F)
    assert mb_lbp(integral, np.array([0]), np.array([0]), 3, 3)[0] == 0b1000_0000
    img[0:3, 0:3], img[3:6, 0:3] = 0, 20
    integral = cv2.integral(img, sdepth=cv2.CV_64F)
    assert mb_lbp(integral, np.array([0]), np.array([0]), 3, 3)[0] == 0b0000_0001


def test_grouping_keeps_only_groups_with_enough_neighbours():
    near = [Detection(10 + i, 10, 40, 40) for i in range(5)]
    lone = [Detection(200, 200, 40, 40)]
    grouped = group_detections(near + lone, 0.5, 5)
    assert grouped == [Detection(12, 10, 40, 40)]
    assert len(group_detections(near + lone, 0.5, 1)) == 2


def test_the_astronauts_face_matches_scikit_images_cascade(cascade):
    from skimage.feature import Cascade

    grey = _grey(skimage_data.astronaut())
    side = min(grey.shape)
    sizes = dict(min_size=(max(24, side // 10),) * 2, max_size=(side, side))
    theirs = Cascade(skimage_data.lbp_frontal_face_cascade_filename()).detect_multi_scale(
        img=grey, min_neighbor_number=external_eye.FACE_NEIGHBOURS, **PARAMS, **sizes)
    ours = cascade.detect_multi_scale(grey, min_neighbour_number=external_eye.FACE_NEIGHBOURS, **PARAMS, **sizes)
    assert len(theirs) == 1 and len(ours) == 1
    t, o = theirs[0], ours[0]
    assert _iou((t["c"], t["r"], t["width"], t["height"]), (o.c, o.r, o.width, o.height)) >= 0.7
    face = external_eye.find_face(grey)
    assert face is not None and _iou(face, (o.c, o.r, o.width, o.height)) >= 0.7


@pytest.mark.parametrize("name", ["chelsea", "coffee", "camera", "rocket", "immunohistochemistry"])
def test_no_face_in_scikit_images_other_samples(name):
    assert external_eye.find_face(_grey(getattr(skimage_data, name)())) is None


def test_no_face_in_a_fundus_photograph():
    grey = cv2.imread(str(FUNDUS_DR / "images" / "P001_L.jpg"), cv2.IMREAD_GRAYSCALE)
    assert grey is not None and external_eye.find_face(grey) is None


def test_a_file_that_is_not_an_lbp_cascade_is_refused(tmp_path):
    bad = tmp_path / "haar.xml"
    bad.write_text("<opencv_storage><cascade><featureType>HAAR</featureType></cascade></opencv_storage>")
    with pytest.raises(ValueError, match="not an OpenCV LBP cascade"):
        LBPCascade(bad)
