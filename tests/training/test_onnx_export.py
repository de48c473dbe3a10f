"""The ONNX runtime must give the clinic the same answers as the Keras reference:
exports are compared with Keras on real preprocessed photographs (tiny model,
an MBConv model with every layer kind EfficientNet-Lite uses, and the real
EfficientNet-Lite0 port when it is present), and the classifier's two
backends must agree on grades and heat maps."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from eyescreen_desktop.core import imageio
from eyescreen_desktop.core.classifier import Classifier, ModelError, read_card, sha256_file
from eyescreen_desktop.core.preprocess import PREPROCESSING_ID, preprocess
from eyescreen_desktop.training import onnx_export
from eyescreen_desktop.training.export import save_model
from tests.conftest import FUNDUS_DR, TINY_SIZE

ATOL = onnx_export.TOLERANCE
PHOTOS = ["P001_L.jpg", "P011_R.jpg", "P017_R.jpg", "P031_L.jpg", "P097_L.jpg", "P284_R.jpg"]
MBCONV_SIZE = 75  # odd on purpose: stride-2 'same' padding is asymmetric there


def photographs(size: int) -> np.ndarray:
    """Real fundus photographs, preprocessed exactly as at the clinic."""
    return np.stack([preprocess(imageio.read_image(FUNDUS_DR / "images" / n), size) for n in PHOTOS])


def _card(name: str, size: int, outputs: list[str], feature_layer: str) -> dict:
    return {"name": name, "version": "0.0.1", "input_size": size, "preprocessing": PREPROCESSING_ID,
            "outputs": outputs, "operating_points": {"default": {"referable": 0.5, "urgent": 0.3}},
            "heatmap": {"feature_layer": feature_layer, "dense_layer": "grade"}}


def mbconv_model(size: int):
    """A small network built from exactly the layer kinds of EfficientNet-Lite0
    and our head: Rescaling, Conv2D / DepthwiseConv2D ('same', strides 1 and 2),
    BatchNormalization with non-trivial statistics, ReLU(6) and Activation('relu6'),
    residual Add, global pooling, Dropout, a softmax grade and two sigmoid heads."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(3)
    inp = keras.Input((size, size, 3), name="image")
    x = layers.Rescaling(1 / 127.5, offset=-1.0)(inp)
    x = layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    x = layers.BatchNormalization(epsilon=1e-3, name="stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_activation")(x)
    for i, (k, stride) in enumerate([(3, 1), (5, 2), (3, 1)]):
        y = layers.Conv2D(64, 1, padding="same", use_bias=False, name=f"block{i}a_expand_conv")(x)
        y = layers.BatchNormalization(epsilon=1e-3, name=f"block{i}a_expand_bn")(y)
        y = layers.ReLU(6.0)(y)
        y = layers.DepthwiseConv2D(k, strides=stride, padding="same", use_bias=False, name=f"block{i}a_dwconv")(y)
        y = layers.BatchNormalization(epsilon=1e-3, name=f"block{i}a_bn")(y)
        y = layers.Activation("relu6")(y)
        y = layers.Conv2D(16, 1, padding="same", use_bias=False, name=f"block{i}a_project_conv")(y)
        y = layers.BatchNormalization(epsilon=1e-3, name=f"block{i}a_project_bn")(y)
        x = layers.Add()([x, y]) if stride == 1 else y
    x = layers.Conv2D(32, 1, padding="same", use_bias=False, name="top_conv")(x)
    x = layers.BatchNormalization(epsilon=1e-3, name="top_bn")(x)
    x = layers.ReLU(6.0, name="top_activation")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.3)(x)
    outputs = {"grade": layers.Dense(5, activation="softmax", name="grade")(x),
               "referable": layers.Dense(1, activation="sigmoid", name="referable")(x),
               "urgent": layers.Dense(1, activation="sigmoid", name="urgent")(x)}
    model = keras.Model(inp, outputs)
    randomise_batchnorm(model)
    return model


def randomise_batchnorm(model) -> None:
    """Trained-looking BN statistics, so folding them is really exercised."""
    import keras

    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            shapes = [w.shape for w in layer.get_weights()]
            layer.set_weights([rng.uniform(0.5, 1.5, shapes[0]), rng.normal(0, 0.2, shapes[1]),
                               rng.normal(0, 0.2, shapes[2]), rng.uniform(0.3, 2.0, shapes[3])])


@pytest.fixture(scope="module")
def tiny_onnx_dir(tiny_model_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny_onnx") / "model"
    shutil.copytree(tiny_model_dir, folder)
    onnx_export.add_onnx_runtime(folder)
    return folder


@pytest.fixture(scope="module")
def mbconv_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("mbconv") / "model"
    save_model(mbconv_model(MBCONV_SIZE), folder,
               _card("mbconv-test", MBCONV_SIZE, ["grade", "referable", "urgent"], "top_activation"))
    onnx_export.add_onnx_runtime(folder, probe=photographs(MBCONV_SIZE)[:2])
    return folder


def _assert_export_matches(folder: Path, size: int) -> None:
    card = read_card(folder)
    diffs = onnx_export.compare_with_keras(folder / card.weights_file, card, folder / card.runtime_file,
                                           photographs(size))
    assert set(diffs) == set(card.outputs) | {"features"}
    assert max(diffs.values()) <= ATOL, diffs


def test_tiny_export_matches_keras_on_photographs(tiny_onnx_dir):
    _assert_export_matches(tiny_onnx_dir, TINY_SIZE)


def test_mbconv_export_matches_keras_on_photographs(mbconv_dir):
    _assert_export_matches(mbconv_dir, MBCONV_SIZE)


def test_card_records_runtime_and_head_weights(tiny_onnx_dir):
    card = read_card(tiny_onnx_dir)
    assert card.runtime_file == "model.onnx"
    assert card.runtime_sha256 == sha256_file(tiny_onnx_dir / "model.onnx")
    dense = np.load(tiny_onnx_dir / card.heatmap["dense_weights_file"])
    assert dense.shape == (16, 5)
    assert card.raw["runtime_check"]["max_abs_diff_vs_keras"] <= ATOL
    assert "model.onnx" in (tiny_onnx_dir / "model_card.md").read_text()


def test_onnx_graph_takes_the_keras_input_and_names_outputs(mbconv_dir):
    import onnx

    proto = onnx.load(str(mbconv_dir / "model.onnx"))
    (inp,) = proto.graph.input
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert inp.name == "image" and dims == ["batch", MBCONV_SIZE, MBCONV_SIZE, 3]
    assert sorted(o.name for o in proto.graph.output) == ["features", "grade", "referable", "urgent"]
    assert {p.key: p.value for p in proto.metadata_props}["eyescreen_model"] == "mbconv-test"


@pytest.mark.parametrize("fixture, size", [("tiny_onnx_dir", TINY_SIZE), ("mbconv_dir", MBCONV_SIZE)])
def test_classifier_backends_agree(request, fixture, size):
    folder = request.getfixturevalue(fixture)
    batch = photographs(size)
    keras_clf = Classifier.load(folder, backend="keras")
    onnx_clf = Classifier.load(folder)  # auto picks the runtime the card ships
    assert onnx_clf.backend_name == "onnx"
    pk, cam_k = keras_clf.predict_with_heatmaps(batch)
    po, cam_o = onnx_clf.predict_with_heatmaps(batch)
    np.testing.assert_allclose([p.grade_probs for p in po], [p.grade_probs for p in pk], atol=ATOL)
    np.testing.assert_allclose([p.p_referable for p in po], [p.p_referable for p in pk], atol=ATOL)
    np.testing.assert_allclose([p.p_urgent for p in po], [p.p_urgent for p in pk], atol=ATOL)
    assert cam_o.shape == cam_k.shape == (len(batch), size, size)
    assert float(cam_k.max()) > 0.5  # a real map, not the all-zero fallback
    np.testing.assert_allclose(cam_o, cam_k, atol=1e-3)


def test_changed_runtime_file_is_refused(tiny_onnx_dir, tmp_path):
    copy = tmp_path / "m"
    shutil.copytree(tiny_onnx_dir, copy)
    with open(copy / "model.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelError, match="do not match their model card"):
        Classifier.load(copy, backend="onnx")


def test_export_that_disagrees_with_keras_is_refused(tiny_model_dir, tmp_path, monkeypatch):
    copy = tmp_path / "m"
    shutil.copytree(tiny_model_dir, copy)
    real = onnx_export.run_onnx
    monkeypatch.setattr(onnx_export, "run_onnx",
                        lambda path, batch: {k: v + 1e-3 for k, v in real(path, batch).items()})
    with pytest.raises(ModelError, match="differs from Keras"):
        onnx_export.add_onnx_runtime(copy)
    assert not (copy / "model.onnx").exists()
    assert json.loads((copy / "model_card.json").read_text()).get("runtime_file") is None


def test_card_naming_a_missing_heatmap_layer_is_refused(tiny_model_dir, tmp_path):
    card = json.loads((tiny_model_dir / "model_card.json").read_text())
    card["heatmap"] = {"feature_layer": "no_such_layer", "dense_layer": "grade"}
    with pytest.raises(ModelError, match="no_such_layer"):
        onnx_export.export_onnx(tiny_model_dir / "model.keras", card, tmp_path / "m.onnx")


def test_efficientnet_lite0_export_matches_keras(tmp_path):
    """The real backbone at 224 px with a random head (ImageNet weights are not
    needed to check the conversion)."""
    effl = pytest.importorskip("eyescreen_desktop.training.efficientnet_lite")
    import keras

    base = effl.build_efficientnet_lite0((224, 224, 3), include_top=False, weights=None)
    x = keras.layers.GlobalAveragePooling2D()(base.output)
    x = keras.layers.Dropout(0.2)(x)
    outputs = {"grade": keras.layers.Dense(5, activation="softmax", name="grade")(x),
               "referable": keras.layers.Dense(1, activation="sigmoid", name="referable")(x)}
    model = keras.Model(base.input, outputs)
    randomise_batchnorm(model)
    folder = tmp_path / "lite0"
    save_model(model, folder, _card("lite0-test", 224, ["grade", "referable"], "top_activation"))
    onnx_export.add_onnx_runtime(folder, probe=photographs(224)[:2])
    _assert_export_matches(folder, 224)


def test_command_line_adds_the_runtime_to_a_model_folder(tiny_model_dir, tmp_path, capsys):
    folder = tmp_path / "m"
    shutil.copytree(tiny_model_dir, folder)
    assert onnx_export.main([str(folder)]) == 0
    assert json.loads(capsys.readouterr().out)["runtime_file"] == "model.onnx"
    assert Classifier.load(folder).backend_name == "onnx"


def test_a_model_saved_mid_training_ships_without_its_optimizer(tmp_path):
    """The resolution fix saves the model it is fine-tuning, compiled and stepped:
    Keras 3 would put AdamW's moments in the file (grader 3.0's first save was
    35 MB instead of 14). The folder holds the weights only, with the same answers."""
    import zipfile

    import h5py
    import keras

    model = mbconv_model(MBCONV_SIZE)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss={"grade": "categorical_crossentropy"})
    x = photographs(MBCONV_SIZE)[:2]
    model.train_on_batch(x, {"grade": np.eye(5)[[0, 3]]})
    folder = tmp_path / "model"
    save_model(model, folder, _card("mbconv-test", MBCONV_SIZE, ["grade", "referable", "urgent"], "top_activation"))
    with zipfile.ZipFile(folder / "model.keras") as archive, archive.open("model.weights.h5") as raw:
        with h5py.File(raw, "r") as h5:
            assert "optimizer" not in h5 and "layers" in h5
    card = read_card(folder)
    assert card.weights_sha256 == sha256_file(folder / "model.keras")
    again = keras.models.load_model(folder / "model.keras", compile=False)
    np.testing.assert_allclose(again.predict(x, verbose=0)["grade"], model.predict(x, verbose=0)["grade"], atol=1e-6)
