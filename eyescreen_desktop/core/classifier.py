"""The grading model: its model card, hash check, and batched inference.

A model on disk is a folder holding ``model_card.json`` and the weights file
it names (a ``.keras`` file, optionally an exported ``.onnx`` twin for fast
inference). The card records the SHA-256 of every weights file; a model whose
bytes do not match its card is refused, so a slip always names the exact
weights that graded it.

TensorFlow is imported lazily, inside :meth:`Classifier.load`, so the CLI's
``--help`` and the desktop window start without paying for it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..domain.grades import risks_from_grades
from .records import ModelInfo, OperatingPoint, Prediction

log = logging.getLogger(__name__)

CARD_FORMAT = "eyescreen-model-card/1"
CARD_FILE = "model_card.json"
N_GRADES = 5


class ModelError(Exception):
    """A model that cannot be used; the message says which file and what to do."""


@dataclass(frozen=True)
class ModelCard:
    """The model's passport (see ``models/README.md`` for every field)."""

    name: str
    version: str
    weights_file: str
    weights_sha256: str
    input_size: int
    preprocessing: str
    operating_points: dict[str, OperatingPoint]
    default_operating_point: str = "default"
    outputs: tuple[str, ...] = ("grade",)
    runtime_file: str = ""
    runtime_sha256: str = ""
    heatmap: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def operating_point(self) -> OperatingPoint:
        return self.operating_points[self.default_operating_point]

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(self.name, self.version, self.weights_sha256)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelCard":
        """Parse a card; a missing field raises ModelError naming it."""
        try:
            ops = {
                name: OperatingPoint(name=name, referable=float(v["referable"]), urgent=float(v["urgent"]),
                                     maculopathy=float(v.get("maculopathy", 0.5)))
                for name, v in d["operating_points"].items()
            }
            return cls(
                name=str(d["name"]), version=str(d["version"]),
                weights_file=str(d["weights_file"]), weights_sha256=str(d["weights_sha256"]),
                input_size=int(d["input_size"]), preprocessing=str(d["preprocessing"]),
                operating_points=ops,
                default_operating_point=str(d.get("default_operating_point", "default")),
                outputs=tuple(d.get("outputs", ["grade"])),
                runtime_file=str(d.get("runtime_file", "")),
                runtime_sha256=str(d.get("runtime_sha256", "")),
                heatmap=dict(d.get("heatmap", {})),
                raw=d,
            )
        except KeyError as exc:
            raise ModelError(f"model card is missing the field {exc.args[0]!r}") from None


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def resolve_card_path(path: Path) -> Path:
    """Accept either the model folder or its card file."""
    path = Path(path)
    return path / CARD_FILE if path.is_dir() else path


def read_card(path: Path) -> ModelCard:
    """Read and parse a model card with clear errors."""
    card_path = resolve_card_path(path)
    if not card_path.is_file():
        raise ModelError(f"no model card at {card_path}: point --model at a model folder (e.g. models/eyescreen-dr)")
    try:
        data = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"model card {card_path} is unreadable: {exc}") from None
    if data.get("format") != CARD_FORMAT:
        raise ModelError(f"model card {card_path} has format {data.get('format')!r}, expected {CARD_FORMAT!r}")
    return ModelCard.from_dict(data)


def verify_file(path: Path, expected: str) -> None:
    """Refuse weights whose bytes differ from what the card promises."""
    if not path.is_file():
        raise ModelError(f"model weights {path} are missing: reinstall the model folder")
    actual = sha256_file(path)
    if actual != expected:
        raise ModelError(
            f"model weights {path.name} do not match their model card (SHA-256 {actual[:12]}... "
            f"instead of {expected[:12]}...): the file was changed or damaged; reinstall the model"
        )


def served_weights(card: ModelCard, backend: str = "auto") -> tuple[str, str]:
    """The weights file a backend loads and the SHA-256 its card promises. The
    hash check covers exactly what grades: the ONNX twin when it serves (the
    desktop bundle carries no model.keras, which needs TensorFlow), else the
    Keras model."""
    if backend == "onnx" or (backend == "auto" and card.runtime_file):
        if not card.runtime_file:
            raise ModelError(f"model {card.name} ships no ONNX runtime file; use --backend keras")
        return card.runtime_file, card.runtime_sha256
    return card.weights_file, card.weights_sha256


def predictions_from_outputs(outputs: dict[str, np.ndarray]) -> list[Prediction]:
    """Post-processing, a pure function: raw model outputs -> per-eye predictions.

    ``grade`` (N, 5) softmax is required; ``referable``, ``urgent`` and
    ``maculopathy`` (N, 1) sigmoids are used when present, otherwise
    referable and urgent are summed from the grade probabilities.
    """
    grade = np.asarray(outputs["grade"], dtype=np.float64)
    if grade.ndim != 2 or grade.shape[1] != N_GRADES:
        raise ModelError(f"model 'grade' output has shape {grade.shape}, expected (N, {N_GRADES})")
    grade = grade / np.clip(grade.sum(axis=1, keepdims=True), 1e-12, None)
    derived_ref, derived_urg = risks_from_grades(grade)
    ref = _column(outputs, "referable", derived_ref)
    urg = _column(outputs, "urgent", derived_urg)
    mac = outputs.get("maculopathy")
    mac = None if mac is None else np.asarray(mac, dtype=np.float64).reshape(-1)
    return [
        Prediction(
            grade_probs=tuple(float(x) for x in grade[i]),
            p_referable=float(ref[i]), p_urgent=float(urg[i]),
            p_maculopathy=None if mac is None else float(mac[i]),
        )
        for i in range(grade.shape[0])
    ]


def _column(outputs: dict[str, np.ndarray], key: str, fallback: np.ndarray) -> np.ndarray:
    value = outputs.get(key)
    return fallback if value is None else np.asarray(value, dtype=np.float64).reshape(-1)


class Classifier:
    """A loaded, verified grading model. Call :meth:`predict` with a batch of
    preprocessed images (N, S, S, 3) in RGB 0-255 (uint8 or float32).

    Not thread-safe: one worker owns it (see ``gui/worker.py``).
    """

    def __init__(self, card: ModelCard, folder: Path, backend: Any):
        self.card = card
        self.folder = folder
        self._backend = backend

    @property
    def info(self) -> ModelInfo:
        return self.card.info

    @property
    def input_size(self) -> int:
        return self.card.input_size

    @property
    def backend_name(self) -> str:
        return self._backend.name

    @property
    def preferred_batch(self) -> int:
        """Photographs per call that grade fastest on a CPU with this backend."""
        return self._backend.preferred_batch

    @classmethod
    def load(cls, path: Path, backend: str = "auto", threads: int | None = None) -> "Classifier":
        """Read the card, verify the hash and load the weights.

        ``backend``: ``keras`` (reference), ``onnx`` (exported runtime, faster
        start and inference) or ``auto`` (ONNX when the card ships one).
        """
        card = read_card(path)
        folder = resolve_card_path(path).parent
        served, sha256 = served_weights(card, backend)
        verify_file(folder / served, sha256)
        if served == card.runtime_file:
            impl: Any = _OnnxBackend(folder / served, card, threads)
        else:
            impl = _KerasBackend(folder / served, card, threads)
        log.info("loaded model %s %s (%s backend)", card.name, card.version, impl.name)
        return cls(card, folder, impl)

    def predict(self, batch: np.ndarray) -> list[Prediction]:
        """Grade a batch; returns one Prediction per image."""
        return predictions_from_outputs(self._backend.run(self._check(batch)))

    def predict_with_heatmaps(self, batch: np.ndarray) -> tuple[list[Prediction], np.ndarray]:
        """Grade a batch and return class-activation heat maps (N, S, S) in [0, 1]
        showing where the network saw signs of referable disease."""
        outputs, cams = self._backend.run_with_cam(self._check(batch))
        return predictions_from_outputs(outputs), cams

    def raw_outputs(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Every named output, plus ``features`` (the card's heat-map layer) where the
        backend has it: for models whose head is not the ICDR grade (the external-eye check)."""
        return self._backend.run_raw(self._check(batch))

    def dense_weights(self) -> np.ndarray | None:
        """The heat-map head's kernel (C, classes), when the model has one."""
        return getattr(self._backend, "_dense_w", None)

    def predict_with_embeddings(self, batch: np.ndarray, heatmaps: bool = False
                                ) -> tuple[list[Prediction], np.ndarray | None, np.ndarray | None]:
        """Grade a batch and also return the pooled last feature map (N, C) that
        the learned gate's quality and familiarity heads read (``core.gate``),
        and heat maps when asked; one model run for all three. Embeddings are
        None when the model does not expose its feature map."""
        outputs, cams, embeddings = self._backend.run_embedded(self._check(batch), heatmaps)
        return predictions_from_outputs(outputs), cams, embeddings

    def _check(self, batch: np.ndarray) -> np.ndarray:
        batch = np.asarray(batch)
        s = self.card.input_size
        if batch.ndim != 4 or batch.shape[1:] != (s, s, 3):
            raise ValueError(f"expected a batch of shape (N, {s}, {s}, 3), got {batch.shape}")
        return batch.astype(np.float32, copy=False)


def _cam(features: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """Class activation map for "referable" evidence from a global-pooling +
    dense head: features (N, h, w, C) and dense weights (C, 5)."""
    import cv2

    direction = weights[:, 2:].mean(axis=1) - weights[:, :2].mean(axis=1)
    maps = np.maximum(np.tensordot(features, direction, axes=([3], [0])), 0.0)
    out = np.zeros((maps.shape[0], size, size), np.float32)
    for i, m in enumerate(maps):
        peak = float(m.max())
        if peak > 0:
            out[i] = cv2.resize((m / peak).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(out, 0.0, 1.0)


class _KerasBackend:
    """Reference backend: the Keras model behind one compiled tf.function."""

    name = "keras"
    preferred_batch = 16  # a tf.function call costs ~10 ms before any work

    def __init__(self, weights: Path, card: ModelCard, threads: int | None):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf  # lazy: costs ~2 s and ~500 MB
        import keras

        if threads:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(1)
            except RuntimeError:
                pass  # already initialised in this process
        try:
            self.model = keras.saving.load_model(weights, compile=False, safe_mode=True)
        except Exception as exc:  # noqa: BLE001 - any load failure is a model problem
            raise ModelError(f"could not load model weights {weights.name}: {exc}") from None
        self.output_names = _output_names(self.model, card)
        s = card.input_size
        spec = tf.TensorSpec((None, s, s, 3), tf.float32)
        self._fn = tf.function(lambda x: self.model(x, training=False), input_signature=[spec])
        self._cam_fn = None
        feature_layer = card.heatmap.get("feature_layer")
        dense_layer = card.heatmap.get("dense_layer")
        if feature_layer and dense_layer:
            feats = self.model.get_layer(feature_layer).output
            cam_model = keras.Model(self.model.inputs, [feats, self.model.outputs])
            self._cam_fn = tf.function(lambda x: cam_model(x, training=False), input_signature=[spec])
            self._dense_w = self.model.get_layer(dense_layer).get_weights()[0]
        self._size = s

    def _named(self, out: Any) -> dict[str, np.ndarray]:
        if isinstance(out, dict):
            return {k: np.asarray(v) for k, v in out.items()}
        if isinstance(out, (list, tuple)):
            return {n: np.asarray(v) for n, v in zip(self.output_names, out)}
        return {"grade": np.asarray(out)}

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return self._named(self._fn(batch))

    def run_raw(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        if self._cam_fn is None:
            return self.run(batch)
        feats, out = self._cam_fn(batch)
        out = out[0] if isinstance(out, (list, tuple)) and len(out) == 1 else out
        named = self._named(out) if isinstance(out, (dict, list, tuple)) else {self.output_names[0]: np.asarray(out)}
        return {**named, "features": np.asarray(feats)}

    def run_with_cam(self, batch: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        if self._cam_fn is None:
            return self.run(batch), np.zeros((len(batch), self._size, self._size), np.float32)
        feats, out = self._cam_fn(batch)
        out = out[0] if isinstance(out, (list, tuple)) and len(out) == 1 else out
        return self._named(out), _cam(np.asarray(feats), self._dense_w, self._size)

    def run_embedded(self, batch: np.ndarray, heatmaps: bool
                     ) -> tuple[dict[str, np.ndarray], np.ndarray | None, np.ndarray | None]:
        if self._cam_fn is None:
            return self.run(batch), (self.run_with_cam(batch)[1] if heatmaps else None), None
        feats, out = self._cam_fn(batch)
        out = out[0] if isinstance(out, (list, tuple)) and len(out) == 1 else out
        feats = np.asarray(feats)
        cams = _cam(feats, self._dense_w, self._size) if heatmaps else None
        return self._named(out), cams, feats.mean(axis=(1, 2))


def _output_names(model: Any, card: ModelCard) -> Sequence[str]:
    names = getattr(model, "output_names", None)
    return list(names) if names else list(card.outputs)


class _OnnxBackend:
    """Exported runtime: same outputs as Keras (checked by a test within 1e-4),
    starts in a fraction of a second and runs faster on a CPU."""

    name = "onnx"
    # ONNX Runtime gains nothing from batching at 384 px on a CPU (activations
    # outgrow the caches); one photograph per call ran fastest (docs/performance.md).
    preferred_batch = 1

    def __init__(self, path: Path, card: ModelCard, threads: int | None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or 0
        opts.inter_op_num_threads = 1
        # Idle ORT threads must sleep, not spin: the screening pipeline decodes the
        # next photographs on the same cores while the model runs (measured: spinning
        # halves end-to-end throughput on 2 cores, docs/performance.md).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - any failure to load is said as a ModelError naming the file
            raise ModelError(f"could not load ONNX model {path.name}: {exc}") from None
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._size = card.input_size
        self._dense_w = None
        w = card.raw.get("heatmap", {}).get("dense_weights_file")
        if w and (path.parent / w).is_file():
            self._dense_w = np.load(path.parent / w)

    def _raw(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, self.session.run(None, {self.input_name: batch})))

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return {k: v for k, v in self._raw(batch).items() if k != "features"}

    def run_raw(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return self._raw(batch)

    def run_with_cam(self, batch: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        raw = self._raw(batch)
        feats = raw.pop("features", None)
        if feats is None or self._dense_w is None:
            return raw, np.zeros((len(batch), self._size, self._size), np.float32)
        return raw, _cam(feats, self._dense_w, self._size)

    def run_embedded(self, batch: np.ndarray, heatmaps: bool
                     ) -> tuple[dict[str, np.ndarray], np.ndarray | None, np.ndarray | None]:
        raw = self._raw(batch)
        feats = raw.pop("features", None)
        if feats is None:
            return raw, (np.zeros((len(batch), self._size, self._size), np.float32) if heatmaps else None), None
        cams = None
        if heatmaps:
            cams = (_cam(feats, self._dense_w, self._size) if self._dense_w is not None
                    else np.zeros((len(batch), self._size, self._size), np.float32))
        return raw, cams, feats.mean(axis=(1, 2))
