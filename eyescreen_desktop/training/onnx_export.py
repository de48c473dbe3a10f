"""Export a trained Keras model to ONNX so the clinic runs it with ONNX Runtime.

Why: ONNX Runtime starts in ~0.2 s with ~120 MB instead of ~2 s and ~500 MB
for TensorFlow, and runs EfficientNet-Lite0 several times faster on a laptop
CPU. Keras stays the training framework and the reference: every export is
checked against the Keras model and refused if any output differs by more
than :data:`TOLERANCE`.

How: Keras' own ``model.export(format="onnx")`` (which drives tf2onnx) on a
wrapper model whose outputs are the model's named outputs (``grade`` and the
optional sigmoid heads) plus ``features``, the heat-map feature layer named in
the model card, so one ONNX call gives both the grades and the class-activation
map. The ONNX graph takes the same input as the Keras model: float32 RGB 0-255,
NHWC, any batch size. Export needs ``onnx`` and ``tf2onnx`` (the ``train``
extra); the clinic only needs ``onnxruntime``.

``add_onnx_runtime(model_dir)`` turns a saved model folder into one that ships
the runtime: it writes ``model.onnx`` and ``heatmap_dense.npy``, checks them and
records ``runtime_file``, ``runtime_sha256`` and ``heatmap.dense_weights_file``
in the model card. Run it by hand with
``python -m eyescreen_desktop.training.onnx_export models/eyescreen-dr``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..core.classifier import ModelCard, ModelError, read_card, sha256_file, verify_file

log = logging.getLogger(__name__)

RUNTIME_FILE = "model.onnx"
DENSE_WEIGHTS_FILE = "heatmap_dense.npy"
FEATURES_OUTPUT = "features"
INPUT_NAME = "image"
OPSET = 17
TOLERANCE = 1e-4  # largest allowed |ONNX - Keras| on any output: probabilities absolute, the
#                   feature maps (activations up to 6) relative to their largest value


def export_onnx(model: Any, card: ModelCard | Mapping[str, Any], out_path: Path) -> Path:
    """Write the ONNX twin of ``model`` (a Keras model, or the path of a ``.keras``
    file) to ``out_path``; outputs are named like the Keras outputs, plus
    ``features`` when the card names a heat-map feature layer."""
    card = _as_card(card)
    model = _load_keras(model)
    wrapper = _export_wrapper(model, card)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    _keras_to_onnx(wrapper, card.input_size, out_path)
    _finish_graph(out_path, card)
    return out_path


def add_onnx_runtime(model_dir: Path, probe: np.ndarray | None = None) -> ModelCard:
    """Give a model folder its ONNX runtime: export, check against Keras on
    ``probe`` (default: a fixed synthetic batch), save the heat-map head weights
    and record both files and the runtime's hash in the card. Returns the new card.

    Raises ModelError when the exported model disagrees with Keras."""
    folder = Path(model_dir)
    card = read_card(folder)
    verify_file(folder / card.weights_file, card.weights_sha256)
    model = _load_keras(folder / card.weights_file)
    runtime = export_onnx(model, card, folder / RUNTIME_FILE)
    batch = synthetic_probe(card.input_size) if probe is None else probe
    diffs = compare_with_keras(model, card, runtime, batch)
    worst = max(diffs.values())
    if worst > TOLERANCE:
        runtime.unlink()
        raise ModelError(f"the ONNX export of {card.name} differs from Keras by {worst:.2e} "
                         f"(allowed {TOLERANCE:.0e}) on outputs {diffs}; keep using --backend keras")
    raw = dict(card.raw)
    raw["runtime_file"] = RUNTIME_FILE
    raw["runtime_sha256"] = sha256_file(runtime)
    raw["runtime_check"] = {"max_abs_diff_vs_keras": float(worst), "probe_images": int(len(batch)),
                            "exporter": _exporter_versions()}
    dense = _save_dense_weights(model, card, folder)
    if dense:
        raw["heatmap"] = {**card.heatmap, "dense_weights_file": dense.name,
                          "dense_weights_sha256": sha256_file(dense)}
    from .export import write_card

    write_card(folder, raw)
    log.info("model %s now ships %s (max |ONNX-Keras| %.1e)", card.name, RUNTIME_FILE, worst)
    return read_card(folder)


def compare_with_keras(model: Any, card: ModelCard | Mapping[str, Any], onnx_path: Path,
                       batch: np.ndarray) -> dict[str, float]:
    """Largest absolute difference per output between the Keras model and its
    ONNX export on ``batch`` (N, S, S, 3) RGB 0-255."""
    card = _as_card(card)
    keras_out = keras_reference_outputs(_load_keras(model), card, batch)
    onnx_out = run_onnx(onnx_path, batch)
    missing = set(keras_out) - set(onnx_out)
    if missing:
        raise ModelError(f"the ONNX export lacks the outputs {sorted(missing)}")
    return {k: float(np.max(np.abs(keras_out[k] - onnx_out[k])) / _scale(k, keras_out[k])) for k in keras_out}


def _scale(name: str, reference: np.ndarray) -> float:
    """1 for probabilities; the largest activation (at least 1) for the feature maps, so
    float32 rounding in a sum of thousands of terms is judged by its relative size."""
    return max(1.0, float(np.max(np.abs(reference)))) if name == FEATURES_OUTPUT else 1.0


def keras_reference_outputs(model: Any, card: ModelCard | Mapping[str, Any],
                            batch: np.ndarray) -> dict[str, np.ndarray]:
    """The Keras model's named outputs (plus ``features``) on ``batch``: the reference."""
    wrapper = _export_wrapper(_load_keras(model), _as_card(card))
    out = wrapper(np.asarray(batch, np.float32), training=False)
    return {k: np.asarray(v) for k, v in out.items()}


def run_onnx(onnx_path: Path, batch: np.ndarray, threads: int | None = None) -> dict[str, np.ndarray]:
    """Run an exported model once with ONNX Runtime; outputs by name."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or 0
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    values = session.run(None, {session.get_inputs()[0].name: np.asarray(batch, np.float32)})
    return dict(zip(names, values))


def synthetic_probe(size: int, n: int = 4, seed: int = 0) -> np.ndarray:
    """A fixed batch that exercises the whole input range: uniform noise, a
    smooth gradient, black and white. Real photographs are used by the tests."""
    rng = np.random.default_rng(seed)
    batch = rng.uniform(0, 255, (n, size, size, 3)).astype(np.float32)
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    batch[min(1, n - 1)] = np.stack([ramp[None, :].repeat(size, 0), ramp[:, None].repeat(size, 1),
                                     np.full((size, size), 60, np.float32)], axis=-1)
    if n >= 4:
        batch[2], batch[3] = 0.0, 255.0
    return batch


# --------------------------------------------------------------------------- internals


def _as_card(card: ModelCard | Mapping[str, Any]) -> ModelCard:
    return card if isinstance(card, ModelCard) else ModelCard.from_dict(dict(card))


def _load_keras(model: Any) -> Any:
    """A Keras model, loaded from a ``.keras`` path when given one."""
    if not isinstance(model, (str, os.PathLike)):
        return model
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    return keras.saving.load_model(Path(model), compile=False, safe_mode=True)


def named_outputs(model: Any, card: ModelCard) -> dict[str, Any]:
    """The model's symbolic outputs by name: a dict model keeps its keys, a list
    model takes the card's ``outputs`` names, a single output is ``grade``."""
    out = model.output
    if isinstance(out, dict):
        return dict(out)
    if isinstance(out, (list, tuple)):
        names = list(card.outputs) if len(card.outputs) == len(out) else list(model.output_names)
        return dict(zip(names, out))
    return {"grade": out}


def _export_wrapper(model: Any, card: ModelCard) -> Any:
    """A Keras model with the same input and the named outputs + ``features``."""
    import keras

    outputs = named_outputs(model, card)
    primary = card.outputs[0] if card.outputs else "grade"  # "finding" for the external-eye model
    if primary not in outputs:
        raise ModelError(f"model {card.name} has no {primary!r} output (it has {sorted(outputs)})")
    feature_layer = card.heatmap.get("feature_layer")
    if feature_layer:
        try:
            outputs[FEATURES_OUTPUT] = model.get_layer(feature_layer).output
        except ValueError:
            raise ModelError(f"model card names heat-map layer {feature_layer!r}, "
                             f"which model {card.name} does not have") from None
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, outputs, name=f"{model.name}_export")


def _keras_to_onnx(wrapper: Any, size: int, out_path: Path) -> None:
    import keras

    spec = keras.InputSpec(shape=(None, size, size, 3), dtype="float32", name=INPUT_NAME)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # tf2onnx and numpy 2
        wrapper.export(str(out_path), format="onnx", input_signature=[spec],
                       opset_version=OPSET, verbose=False)


def _finish_graph(path: Path, card: ModelCard) -> None:
    """Name the batch axis, stamp the model's identity, check and save."""
    import onnx

    proto = onnx.load(str(path))
    for value in list(proto.graph.input) + list(proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = "batch"
    stamp = {"eyescreen_model": card.name, "eyescreen_version": card.version,
             "keras_weights_sha256": card.weights_sha256, "input": "RGB 0-255 float32 NHWC"}
    del proto.metadata_props[:]
    for key, value in stamp.items():
        proto.metadata_props.add(key=key, value=value)
    proto.doc_string = f"{card.name} {card.version} exported from Keras for ONNX Runtime"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def _save_dense_weights(model: Any, card: ModelCard, folder: Path) -> Path | None:
    """The heat-map head's kernel (C, 5) as .npy, for the runtime's class-activation map."""
    layer = card.heatmap.get("dense_layer")
    if not layer:
        return None
    kernel = np.asarray(model.get_layer(layer).get_weights()[0], np.float32)
    path = folder / DENSE_WEIGHTS_FILE
    np.save(path, kernel)
    return path


def _exporter_versions() -> str:
    import keras
    import onnx

    try:
        import tf2onnx

        t2o = tf2onnx.__version__
    except Exception:  # noqa: BLE001 - informative only
        t2o = "?"
    return f"keras {keras.__version__} export, tf2onnx {t2o}, onnx {onnx.__version__}, opset {OPSET}"


def main(argv: list[str] | None = None) -> int:
    """``python -m eyescreen_desktop.training.onnx_export MODEL_DIR``."""
    parser = argparse.ArgumentParser(description="add an ONNX runtime to an EyeScreen model folder")
    parser.add_argument("model_dir", type=Path)
    args = parser.parse_args(argv)
    card = add_onnx_runtime(args.model_dir)
    print(json.dumps({"runtime_file": card.runtime_file, **card.raw.get("runtime_check", {})}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
