"""Fixtures for the desktop window: a model whose verdict is fixed by
construction, real and spoiled photographs, and an isolated data folder."""

from __future__ import annotations

import gc
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import FUNDUS_DR, TINY_SIZE

GOOD_PHOTO = FUNDUS_DR / "images" / "P001_L.jpg"   # a real, gradable 1024x685 fundus photograph


def build_fixed_model(out: Path, urgent: bool) -> Path:
    """A tiny real Keras model whose grade is fixed by construction.

    The last convolution is ReLU, so the pooled features are >= 0. The grade
    layer's kernel is 0.5 for grades 2-4 and 0 for grades 0-1, and its bias is 8
    for grade 4 (``urgent``) or grade 0: the favoured grade's logit exceeds every
    other by >= 8 whatever the photograph (p >= 0.998), so a gradable photo must
    land in urgent (or annual). The positive kernel makes the heat map non-zero."""
    import keras

    from eyescreen_desktop.training.export import save_model

    keras.utils.set_random_seed(2)
    inputs = keras.Input((TINY_SIZE, TINY_SIZE, 3), name="image")
    x = keras.layers.Rescaling(1 / 128.0, offset=-1.0)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="top_conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    dense = keras.layers.Dense(5, activation="softmax", name="grade")
    model = keras.Model(inputs, {"grade": dense(x)})
    kernel = np.zeros((8, 5), np.float32)
    if urgent:
        kernel[:, 2:] = 0.5
    bias = np.zeros(5, np.float32)
    bias[4 if urgent else 0] = 8.0
    dense.set_weights([kernel, bias])
    save_model(model, out, {
        "name": "fixed-urgent" if urgent else "fixed-annual", "version": "1.0.0", "input_size": TINY_SIZE,
        "preprocessing": "fov-crop-v1", "outputs": ["grade"],
        "operating_points": {"default": {"referable": 0.5, "urgent": 0.3}},
        "heatmap": {"feature_layer": "top_conv", "dense_layer": "grade"},
        "intended_use": "tests only",
    })
    return out


@pytest.fixture(scope="session")
def urgent_model_dir(tmp_path_factory) -> Path:
    """Grades every gradable photograph ICDR 4 (urgent)."""
    return build_fixed_model(tmp_path_factory.mktemp("urgent_model"), urgent=True)


@pytest.fixture(scope="session")
def urgent_onnx_model_dir(urgent_model_dir, tmp_path_factory) -> Path:
    """The fixed-urgent model with its ONNX runtime, as a clinic install has it: a
    fresh ``eyescreen gui`` process loads it without TensorFlow (seconds sooner).
    The Keras path in a fresh process keeps its own test (test_batch_panel)."""
    from eyescreen_desktop.training.onnx_export import add_onnx_runtime

    folder = tmp_path_factory.mktemp("urgent_onnx") / "model"
    shutil.copytree(urgent_model_dir, folder)
    add_onnx_runtime(folder)
    return folder


@pytest.fixture(scope="session")
def annual_model_dir(tmp_path_factory) -> Path:
    """Grades every gradable photograph ICDR 0 (annual)."""
    return build_fixed_model(tmp_path_factory.mktemp("annual_model"), urgent=False)


@pytest.fixture(scope="session")
def good_photo(tmp_path_factory) -> Path:
    """GOOD_PHOTO named for its side only ("left.jpg"): its own name, P001_L.jpg, carries
    patient P001's ID, which the window rightly questions for any other patient."""
    if not GOOD_PHOTO.is_file():
        pytest.fail(f"{GOOD_PHOTO} is missing: tests need ../shared/datasets beside the checkout")
    path = tmp_path_factory.mktemp("good") / "left.jpg"
    shutil.copy(GOOD_PHOTO, path)
    return path


@pytest.fixture(scope="session")
def good_rgb(good_photo) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(good_photo)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="session")
def blurred_photo(tmp_path_factory) -> Path:
    """The good photograph's right eye (P001_R.jpg) blurred out of focus: ungradable. A right
    eye, so that a right-eye file shows one (the window questions a left eye filed as right)."""
    path = tmp_path_factory.mktemp("blurred") / "right.jpg"   # the right eye; the name gives no patient ID
    cv2.imwrite(str(path), cv2.GaussianBlur(cv2.imread(str(GOOD_PHOTO.with_name("P001_R.jpg"))), (0, 0), 8))
    return path


@pytest.fixture
def data_dir(tmp_path) -> Path:
    """A fresh --data-dir for one test."""
    return tmp_path / "data"


@pytest.fixture(scope="session", autouse=True)
def long_lived_objects_frozen():
    """Keras, TensorFlow, Qt and ONNX Runtime leave some 360,000 long-lived objects
    (modules, classes, functions) after their import; the full collection after
    every window test (below) scanned them all, 1.7 s each time on a busy 2-core
    machine. Frozen once after the imports (gc.freeze, as servers do before they
    fork), collections look only at what the tests make."""
    import keras  # noqa: F401 - imported for its long-lived objects
    import onnxruntime  # noqa: F401 - imported for its long-lived objects
    from PySide6 import QtWidgets  # noqa: F401 - imported for its long-lived objects

    import eyescreen_desktop.gui.main_window  # noqa: F401 - imported for its long-lived objects

    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.fixture(autouse=True)
def gui_thread_garbage_collection(qapp):
    """As in the app (gui.app.make_application): no automatic cyclic collection, which
    could run on a worker thread and destroy Qt objects there; the GUI thread's timer
    collects instead. Stopped after each test (one last collection here, on the GUI
    thread), so tests without an event loop keep Python's own collector."""
    from eyescreen_desktop.gui.gc_collector import install_garbage_collector

    collector = install_garbage_collector(qapp)
    yield collector
    collector.stop()


@pytest.fixture
def window(qtbot, data_dir):
    """The main window over a fresh data folder, shown, no dialogs (modules that
    need another model or folder define their own)."""
    from eyescreen_desktop.gui.app import build_window

    win, store = build_window(data_dir, dialogs=False)
    qtbot.addWidget(win)
    win.show()
    yield win
    win.close()
    store.close()


@pytest.fixture
def annual_window(qtbot, data_dir, annual_model_dir):
    """The main window over a fresh data folder, no dialogs, with the fixed annual model
    loaded (tests that screen photographs through the desk)."""
    from eyescreen_desktop.gui.app import build_window

    win, store = build_window(data_dir, dialogs=False)
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(win.engine.modelReady, timeout=60_000):
        win.start(annual_model_dir)
    yield win
    win.close()
    store.close()
