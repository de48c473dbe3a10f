"""EfficientNet-Lite1 and -Lite2: the scaled architecture matches the PyPI weight files
tensor for tensor, and the converted networks still recognise ImageNet pictures."""

from __future__ import annotations

import numpy as np
import pytest

from eyescreen_desktop.training import bases
from eyescreen_desktop.training import efficientnet_lite as effl
from eyescreen_desktop.training.efficientnet_lite import WeightFileError
from tests.training.test_efficientnet_lite import imagenet_crop

TIGER_CAT, EGYPTIAN_CAT, TABBY, ESPRESSO = 282, 285, 281, 967
CATS = {TIGER_CAT, EGYPTIAN_CAT, TABBY}
# published parameter counts (with the 1000-class classifier): 5.4 M and 6.1 M
PARAMETERS = {"lite1": 5_470_344, "lite2": 6_150_168}


def test_scaling_rules_give_the_published_stage_shapes():
    lite1, lite2 = effl.lite_stages("lite1"), effl.lite_stages("lite2")
    assert [s.repeats for s in lite1] == [1, 3, 3, 4, 4, 5, 1] == [s.repeats for s in lite2]
    assert [s.filters_out for s in lite1] == [16, 24, 40, 80, 112, 192, 320]
    assert [s.filters_out for s in lite2] == [16, 24, 48, 88, 120, 208, 352]
    assert lite2[0].filters_in == effl.STEM_FILTERS == 32
    assert len(effl.lite_blocks("lite0")) == 16 and len(effl.lite_blocks("efficientnet-lite2")) == 21
    with pytest.raises(ValueError, match="lite0, lite1, lite2"):
        effl.lite_variant("lite4")


@pytest.mark.parametrize("name", ["lite1", "lite2"])
def test_bigger_lite_recognises_a_cat_and_an_espresso(name):
    """Top-1 on skimage's pictures at the variant's own ImageNet resolution: a
    mis-assigned block would give nonsense classes, not a cat and an espresso."""
    skdata = pytest.importorskip("skimage.data")
    v = effl.lite_variant(name)
    model = effl.build_efficientnet_lite(name, (v.resolution, v.resolution, 3), include_top=True)
    assert model.count_params() == PARAMETERS[name]
    cat = np.asarray(model(imagenet_crop(skdata.chelsea(), v.resolution)[None], training=False))[0]
    coffee = np.asarray(model(imagenet_crop(skdata.coffee(), v.resolution)[None], training=False))[0]
    assert set(np.argsort(cat)[::-1][:3]) == CATS and cat[list(CATS)].sum() > 0.75
    assert int(np.argmax(coffee)) == ESPRESSO and coffee[ESPRESSO] > 0.4


def test_lite1_weights_do_not_fit_a_lite2_graph(tmp_path):
    with pytest.raises(WeightFileError, match="shapes"):
        effl.convert_imagenet_weights(effl.default_source_path("lite1"), tmp_path, effl.LITE_VARIANTS["lite1"].sha256,
                                      "lite2")


def test_registry_builds_lite1_and_lite2_for_training_by_name():
    for name, size, width in (("efficientnet-lite1", 96, 320), ("efficientnet-lite2", 64, 352)):
        spec = bases.get_base(name, size, imagenet=False)
        assert spec.model.output_shape == (None, size // 32, size // 32, 1280)
        names = [layer.name for layer in spec.model.layers]
        assert "block6e_add" in names and spec.feature_layer in names
        assert spec.model.get_layer("block7a_project_conv").output.shape[-1] == width
        for prefix in spec.fine_tune_prefixes:
            assert any(n.startswith(prefix) for n in names), prefix
