"""The network ``eyescreen train`` builds: the ImageNet base it starts from, the
pooled-feature head with its four outputs (the same layer names on the full
model and on the head alone), the losses, batch-wise prediction, and TensorFlow
imported lazily with a bounded number of threads."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np


@dataclass
class Base:
    """What training needs from an ImageNet base (``bases.BaseSpec`` or a test's tiny one):
    a Keras model taking float32 RGB 0-255 and ending at the last convolutional
    activation, the layer-name prefixes to unfreeze, and the heat-map layer."""

    name: str
    model: Any
    fine_tune_prefixes: tuple[str, ...]
    feature_layer: str
    attribution: str = ""


BaseFactory = Callable[[int], Base]


def load_base(name: str, input_size: int) -> Base:
    """The named base from ``training.bases`` (weights converted or loaded offline)."""
    from . import bases

    spec = bases.get_base(name, input_size)
    return Base(name=spec.name, model=spec.model, fine_tune_prefixes=tuple(spec.fine_tune_prefixes),
                feature_layer=spec.feature_layer, attribution=spec.attribution)


def _tensorflow(threads: int) -> tuple[Any, Any]:
    """Import TensorFlow lazily, limited to ``threads`` CPU threads."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    import keras

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
    except RuntimeError:
        pass  # TensorFlow already initialised in this process (tests)
    return tf, keras


def build_model(base: Base, dropout: float) -> Any:
    """Base -> global average pooling -> dropout -> dense outputs, one flat Keras graph
    (so the heat-map layer is reachable by name from the saved model)."""
    import keras

    feats = base.model.output
    x = keras.layers.GlobalAveragePooling2D(name="pool")(feats)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    return keras.Model(base.model.inputs, head_layers(x), name="eyescreen")


def head_layers(x: Any) -> dict[str, Any]:
    """The outputs on pooled features: ICDR grade (softmax), referable, urgent and
    maculopathy (sigmoids). The same layer names in the full model and the head alone."""
    import keras

    return {
        "grade": keras.layers.Dense(5, activation="softmax", name="grade")(x),
        "referable": keras.layers.Dense(1, activation="sigmoid", name="referable")(x),
        "urgent": keras.layers.Dense(1, activation="sigmoid", name="urgent")(x),
        "maculopathy": keras.layers.Dense(1, activation="sigmoid", name="maculopathy")(x),
    }


def compile_model(model: Any, lr: Any, label_smoothing: float, weight_decay: float,
                  heads: Sequence[str] = ("grade", "referable", "urgent", "maculopathy")) -> None:
    """Adam(W) with the losses of ``heads`` (equal weights; all four by default, a
    shipped model's own outputs when fine-tuning it). Maculopathy's binary cross-entropy
    is masked by its sample weights: 0 for photographs of collections that do not grade it."""
    import keras

    losses = {"grade": keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
              "referable": keras.losses.BinaryCrossentropy(), "urgent": keras.losses.BinaryCrossentropy(),
              "maculopathy": keras.losses.BinaryCrossentropy()}
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=lr, weight_decay=weight_decay),
                  loss={k: losses[k] for k in heads})


def rebuild_at_size(folder: Path, input_size: int, base_factory: "BaseFactory | None" = None) -> tuple[Any, Base]:
    """A saved model folder's network rebuilt for ``input_size`` px with its weights.

    The base is fully convolutional and ends in global average pooling, so every
    weight carries over unchanged (the train-test resolution fix starts here). The
    network is built afresh (the card's base at the new size, untrained, then the
    same head and outputs) and each layer takes the saved layer's weights by name;
    a layer with weights that the saved model lacks is an error, not a random start."""
    import keras

    from .selection import export_view

    folder = Path(folder)
    saved = keras.models.load_model(folder / "model.keras", compile=False)
    card = json.loads((folder / "model_card.json").read_text(encoding="utf-8"))
    if base_factory is not None:
        base = base_factory(input_size)
    else:
        from . import bases

        spec = bases.get_base(card["base"]["name"], input_size, imagenet=False)
        base = Base(name=spec.name, model=spec.model, fine_tune_prefixes=tuple(spec.fine_tune_prefixes),
                    feature_layer=spec.feature_layer, attribution=spec.attribution)
    shipped = saved.output.keys() if isinstance(saved.output, dict) else saved.output_names
    outputs = {k: ("head" if k in shipped else "grade") for k in ("referable", "urgent", "maculopathy")}
    if "maculopathy" not in shipped:
        del outputs["maculopathy"]
    model = export_view(build_model(base, saved.get_layer("head_dropout").rate), outputs)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights(saved.get_layer(layer.name).get_weights())
    return model, base


def head_model(n_features: int, dropout: float) -> Any:
    """The head alone, on pooled features; its Dense layers share names with build_model's."""
    import keras

    inp = keras.Input((n_features,), name="features")
    x = keras.layers.Dropout(dropout, name="head_dropout")(inp)
    return keras.Model(inp, head_layers(x))


def predict_outputs(model: Any, images: np.ndarray, batch: int = 32) -> dict[str, np.ndarray]:
    """The model's outputs for uint8 images, batch by batch (no training-mode layers)."""
    parts: list[dict[str, np.ndarray]] = []
    for start in range(0, len(images), batch):
        parts.append(_as_dict(model.predict_on_batch(images[start:start + batch].astype(np.float32))))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _as_dict(out: Any) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in out.items()}
