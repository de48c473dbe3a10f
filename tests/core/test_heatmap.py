"""Heat maps only on the retina: masked to the preprocessed crop's field of view,
and dropped for an eye nothing referable was found in; checked on real photographs
with the shipped model's own class activation maps."""

from __future__ import annotations

import numpy as np
import pytest

from eyescreen_desktop.core.classifier import Classifier
from eyescreen_desktop.core.heatmap import heatmap_to_show, mask_to_retina, retina_mask
from eyescreen_desktop.core.paths import default_model_dir
from eyescreen_desktop.core.records import Eye, Queue, Status
from eyescreen_desktop.core.screening import Screener, ScreenItem, prepare
from tests.conftest import FUNDUS_DR

MODEL = default_model_dir()
pytestmark = pytest.mark.skipif(not (MODEL / "model_card.json").is_file(), reason="no shipped model")
HEALTHY = FUNDUS_DR / "images" / "P001_L.jpg"        # ICDR 0 (labels.csv)
IDRID = FUNDUS_DR.parent / "idrid" / "images" / "IDRiD_001.jpg"   # ICDR 3, a clipped circle


@pytest.fixture(scope="module")
def classifier():
    return Classifier.load(MODEL, backend="onnx")


def test_retina_mask_excludes_the_surround_the_rim_and_clipped_caps(classifier):
    tensor = prepare(ScreenItem(IDRID), classifier.input_size).tensor
    mask = retina_mask(tensor)
    lit = tensor.max(axis=2) > 3
    assert not (mask & ~lit).any()                         # never outside what the camera saw
    assert mask.sum() < 0.95 * lit.sum()                   # the rim and the caps' edges are trimmed
    assert not mask[0].any() and not mask[-1].any()        # idrid's circle is cut at top and bottom


def test_a_healthy_eyes_map_has_no_weight_outside_the_field_of_view(classifier):
    tensor = prepare(ScreenItem(HEALTHY), classifier.input_size).tensor
    _, cams = classifier.predict_with_heatmaps(tensor[None])
    raw = cams[0]
    mask = retina_mask(tensor)
    masked = mask_to_retina(raw, tensor)
    assert raw[~mask].max() > 0                           # the raw CAM does spill onto the border
    assert masked[~mask].max() == 0 and masked.max() == pytest.approx(1.0)


def test_screening_keeps_a_map_only_for_a_referred_eye(classifier):
    results = list(Screener(classifier, heatmaps=True).screen([ScreenItem(HEALTHY, Eye.LEFT), ScreenItem(IDRID)]))
    healthy, sick = results
    assert healthy.status is Status.OK and healthy.queue is Queue.ANNUAL and healthy.heatmap is None
    assert sick.queue in (Queue.URGENT, Queue.ROUTINE) and sick.heatmap is not None
    tensor = prepare(ScreenItem(IDRID), classifier.input_size).tensor
    assert sick.heatmap[~retina_mask(tensor)].max() == 0 and sick.heatmap.max() > 0


def test_nothing_is_shown_without_a_referral_or_a_map():
    tensor = np.full((64, 64, 3), 120, np.uint8)
    heat = np.ones((64, 64), np.float32)
    assert heatmap_to_show(heat, tensor, Queue.ANNUAL) is None
    assert heatmap_to_show(None, tensor, Queue.URGENT) is None
    assert heatmap_to_show(heat, tensor, Queue.ROUTINE) is not None
