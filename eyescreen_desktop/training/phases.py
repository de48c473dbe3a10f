"""The two training phases of ``eyescreen train``. Recipe (1): the frozen base's
pooled features, computed once per photograph and mirror variant and cached on
disk, then the head trained on them in seconds. Recipe (2): the last blocks of
the base unfrozen (BatchNormalization kept frozen) and trained on augmented
photographs at a low learning rate, keeping the epoch with the best validation
AUCs. The Keras callbacks that log each epoch are defined on first use, so
importing this module does not import TensorFlow."""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..domain.grades import risks_from_grades
from . import data as D
from . import metrics as M
from .augment import make_dataset
from .checkpoints import Checkpoints, MonitorState
from .model import Base, _as_dict, compile_model, head_model, predict_outputs
from .recipes import HEADS, Progress, Recipe
from .selection import maculopathy_auc
from .train_data import TrainingData


def fit_head_on_features(model: Any, base: Base, data: TrainingData, recipe: Recipe, progress: Progress,
                         seed: int) -> dict[str, np.ndarray]:
    """Recipe (1): frozen-base features (cached, with mirrored variants), then the head;
    copies the head's weights into ``model`` and returns its validation outputs."""
    import keras

    t0 = time.time()
    extractor = keras.Model(model.inputs, model.get_layer("pool").output)
    fcache = FeatureCache(base.name, data.version)
    train_f = fcache.features(extractor, data.train_samples, data.train_images, recipe.flip_variants, progress)
    val_f = fcache.features(extractor, data.val_samples, data.val_images, 1, progress)[:, 0]
    v = train_f.shape[1]
    x = train_f.reshape(-1, train_f.shape[-1])
    rep = lambda a: np.repeat(a, v, axis=0)  # noqa: E731 - variants are consecutive rows
    y = {k: rep(t) for k, t in data.train_targets.items() if k in HEADS}
    w = {k: rep(t) for k, t in data.train_weights.items()}
    if data.train_copies is not None and data.copy_used is not None and data.copy_used.any():
        used = np.flatnonzero(data.copy_used)
        tag = "-cam0-" + hashlib.sha256(data.copies_version.encode()).hexdigest()[:10]
        copy_f = fcache.features(extractor, [data.train_samples[i] for i in used], data.train_copies[used], 1,
                                 progress, tag=tag)[:, 0]
        x = np.concatenate([x, copy_f])
        y = {k: np.concatenate([t, data.train_targets[k][used]]) for k, t in y.items()}
        w = {k: np.concatenate([t, data.train_weights[k][used]]) for k, t in w.items()}
    progress.say(f"features ready in {time.time() - t0:.0f} s ({fcache.misses} computed, {fcache.hits} cached)")
    keras.utils.set_random_seed(seed)
    head = head_model(x.shape[1], recipe.dropout)
    compile_model(head, recipe.head_lr, recipe.label_smoothing, recipe.weight_decay)
    val_y = {k: t for k, t in data.val_targets.items() if k in HEADS}
    _, ValidationMonitor = _callbacks()
    monitor = ValidationMonitor(lambda: _as_dict(head.predict(val_f, verbose=0, batch_size=256)),
                                data.val_samples, progress, "head")
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=8, restore_best_weights=True)
    head.fit(x, y, sample_weight=w, validation_data=(val_f, val_y, data.val_weights), epochs=recipe.head_epochs,
             batch_size=recipe.head_batch, shuffle=True, verbose=0, callbacks=[stop, monitor])
    for name in HEADS:
        model.get_layer(name).set_weights(head.get_layer(name).get_weights())
    progress.say(f"head trained in {time.time() - t0:.0f} s (stopped after {len(monitor.history)} epochs)")
    return _as_dict(head.predict(val_f, verbose=0, batch_size=256))


class FeatureCache:
    """Pooled frozen-base features per photograph and mirror variant, on disk.

    Keyed by base, the image cache's version (preprocessing code and input size:
    the arrays the features were computed from) and the photograph's file hash,
    so the ``finetune`` and ``final`` recipes and every rerun reuse them."""

    def __init__(self, base_name: str, image_version: str):
        self.root = D.cache_dir() / "features" / f"{base_name}-{image_version}"
        self.root.mkdir(parents=True, exist_ok=True)
        self.hits = self.misses = 0

    def features(self, extractor: Any, samples: Sequence[D.Sample], images: np.ndarray, variants: int,
                 progress: Progress, tag: str = "") -> np.ndarray:
        """(N, variants, D) features; missing ones are computed in batches. ``tag`` names
        images that are not the file's own preprocessing (a camera copy)."""
        keys = [D.file_digest(s.path) + tag for s in samples]
        found: dict[int, np.ndarray] = {}
        for i, k in enumerate(keys):
            f = self.root / f"{k}-v{variants}.npy"
            if f.exists():
                found[i] = np.load(f)
        todo = [i for i in range(len(samples)) if i not in found]
        self.hits += len(found)
        self.misses += len(todo)
        for start in range(0, len(todo), 32):
            idx = todo[start:start + 32]
            batch = images[idx]
            views = [_flip_variant(batch, v) for v in range(variants)]
            feats = np.stack([extractor.predict_on_batch(b.astype(np.float32)) for b in views], axis=1)
            for j, i in enumerate(idx):
                found[i] = feats[j].astype(np.float32)
                np.save(self.root / f"{keys[i]}-v{variants}.npy", found[i])
            if (start // 32) % 10 == 9:
                progress.say(f"  features {start + len(idx)}/{len(todo)}")
        return np.stack([found[i] for i in range(len(samples))])


def _flip_variant(batch: np.ndarray, v: int) -> np.ndarray:
    """0 = as is, 1 = mirrored left-right, 2 = upside down, 3 = both (a 180 degree turn)."""
    return [batch, batch[:, :, ::-1], batch[:, ::-1], batch[:, ::-1, ::-1]][v]


def set_fine_tunable(model: Any, prefixes: Sequence[str]) -> int:
    """Unfreeze layers whose name starts with a prefix, except BatchNormalization
    (kept frozen: with trainable=False Keras runs it in inference mode). Returns
    the number of trainable weights."""
    import keras

    for layer in model.layers:
        if layer.name in HEADS:
            layer.trainable = True
        elif isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
        else:
            layer.trainable = any(layer.name.startswith(p) for p in prefixes)
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def fine_tune(model: Any, base: Base, data: TrainingData, recipe: Recipe, progress: Progress,
              seed: int, checkpoints: Path | None = None) -> dict[str, np.ndarray]:
    """Recipe (2): unfreeze the last blocks and train on augmented photographs at a
    low learning rate; keeps the epoch with the best validation AUCs. Trains only
    the heads ``model`` has (a shipped model may lack some). With ``checkpoints``,
    every epoch is saved there and a rerun resumes after the last saved epoch."""
    import keras

    heads = [h for h in HEADS if h in _output_names(model)]
    n = set_fine_tunable(model, base.fine_tune_prefixes)
    drawn = min(len(data.train_samples), recipe.epoch_photographs or len(data.train_samples))
    progress.say(f"fine-tuning {n:,} weights ({', '.join(base.fine_tune_prefixes)}; BatchNorm frozen), "
                 f"{recipe.fine_tune_epochs} epochs of {drawn} photographs at lr {recipe.fine_tune_lr:g}")
    steps = int(np.ceil(drawn / recipe.fine_tune_batch))
    schedule = keras.optimizers.schedules.CosineDecay(recipe.fine_tune_lr, steps * recipe.fine_tune_epochs,
                                                      alpha=0.1)
    compile_model(model, schedule, recipe.label_smoothing, recipe.weight_decay, heads)
    EpochTimer, ValidationMonitor = _callbacks()
    monitor = ValidationMonitor(lambda: predict_outputs(model, data.val_images), data.val_samples, progress,
                                "fine-tune", keep_best=model,
                                only_after=None if recipe.validate_each_epoch else recipe.fine_tune_epochs)
    saver = Checkpoints(checkpoints, {"recipe": asdict(recipe), "seed": seed}) if checkpoints is not None else None
    start = 0
    if saver is not None and saver.latest() > 0:
        start, state = saver.restore(model)
        monitor.load_state(state)
        progress.say(f"resumed from {checkpoints} after epoch {start}")
    elif recipe.validate_each_epoch and not recipe.start_from:
        # a trained model's starting score is training.paired's scoring at the new size, not paid for again here
        monitor.initial = monitor.score_now()
    for epoch in range(start, recipe.fine_tune_epochs):
        ds = make_dataset(data.train_images, {k: v for k, v in data.train_targets.items() if k in heads},
                          {k: v for k, v in data.train_weights.items() if k in heads}, recipe.fine_tune_batch,
                          seed, recipe.augment, alternates=data.train_copies, alternate_used=data.copy_used,
                          epoch=epoch, limit=recipe.epoch_photographs)
        model.fit(ds, initial_epoch=epoch, epochs=epoch + 1, verbose=0, shuffle=False,
                  callbacks=[EpochTimer(progress), monitor])
        if saver is not None:
            saver.save(epoch + 1, model, monitor.state())
    monitor.restore_best(monitor.initial)
    if monitor.best_outputs is not None:     # the kept epoch's validation outputs, already computed
        return monitor.best_outputs
    return predict_outputs(model, data.val_images)


def _output_names(model: Any) -> list[str]:
    return list(model.output.keys()) if isinstance(model.output, dict) else list(model.output_names)


def _callbacks() -> tuple[type, type]:
    """The two Keras callbacks, defined on first use so importing this module
    (``eyescreen train --help``) does not import TensorFlow."""
    global _CALLBACKS
    if _CALLBACKS is not None:
        return _CALLBACKS
    import keras

    Callback = keras.callbacks.Callback

    class EpochTimer(Callback):
        """Prints each epoch's training loss and time (the per-epoch progress display)."""

        def __init__(self, progress: Progress):
            super().__init__()
            self.progress = progress
            self.t = time.time()

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.t = time.time()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs or {}
            self.progress.record("fine-tune", epoch + 1, {"seconds": time.time() - self.t,
                                                          **{k: float(v) for k, v in logs.items()}})

    class ValidationMonitor(Callback):
        """After every epoch: validation AUCs for referable and urgent (from the heads and
        derived from the grade softmax), printed and logged; optionally keeps the best
        epoch's weights (score = referable AUC + urgent AUC)."""

        def __init__(self, predict: Callable[[], dict[str, np.ndarray]], samples: Sequence[D.Sample],
                     progress: Progress, phase: str, keep_best: Any = None, only_after: int | None = None):
            super().__init__()
            self.predict_fn, self.progress, self.phase, self.keep = predict, progress, phase, keep_best
            self.only_after = only_after        # validate after this epoch only (a fixed schedule)
            self.y_ref = np.array([s.referable for s in samples])
            self.y_urg = np.array([s.urgent for s in samples])
            self.y_mac = np.array([s.maculopathy for s in samples])
            self.history: list[dict[str, float]] = []
            self.best, self.best_weights, self.best_epoch, self.initial = -np.inf, None, 0, -np.inf
            self.best_outputs: dict[str, np.ndarray] | None = None

        def state(self) -> MonitorState:
            """What a checkpoint keeps of this monitor."""
            return MonitorState(self.initial, float(self.best), self.best_epoch, self.best_weights, self.history,
                                self.best_outputs)

        def load_state(self, state: MonitorState) -> None:
            """Continue from a checkpoint's state."""
            self.initial, self.best, self.best_epoch = state.initial, state.best, state.best_epoch
            self.best_weights, self.history = state.best_weights, list(state.history)
            self.best_outputs = state.best_outputs

        def scores(self, out: dict[str, np.ndarray]) -> dict[str, float]:
            from_grade = risks_from_grades(out["grade"])
            mac = maculopathy_auc(self.y_mac, np.ravel(out["maculopathy"])) if "maculopathy" in out else None
            return {"val_referable_auc": M.roc_auc(self.y_ref, out.get("referable", from_grade[0])),
                    "val_urgent_auc": M.roc_auc(self.y_urg, out.get("urgent", from_grade[1])),
                    "val_referable_auc_from_grade": M.roc_auc(self.y_ref, from_grade[0]),
                    "val_urgent_auc_from_grade": M.roc_auc(self.y_urg, from_grade[1]),
                    "val_maculopathy_auc": float("nan") if mac is None else mac}

        def score_now(self) -> float:
            out = self.predict_fn()
            return self._consider(self.scores(out), epoch=0, out=out)

        def _consider(self, s: dict[str, float], epoch: int, out: dict[str, np.ndarray] | None = None) -> float:
            score = max(s["val_referable_auc"], s["val_referable_auc_from_grade"]) + \
                max(s["val_urgent_auc"], s["val_urgent_auc_from_grade"])
            if self.keep is not None and score > self.best:
                self.best, self.best_weights = score, [w.copy() for w in self.keep.get_weights()]
                self.best_epoch, self.best_outputs = epoch, out
            return score

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs or {}
            if self.only_after is not None and epoch + 1 != self.only_after:
                self.progress.say(f"{self.phase} epoch {epoch + 1}: loss {logs.get('loss', float('nan')):.4f}")
                return
            out = self.predict_fn()
            s = self.scores(out)
            s.update({k: float(v) for k, v in logs.items()})
            self.history.append(s)
            self._consider(s, epoch + 1, out)
            self.progress.record(self.phase, epoch + 1, s)
            if self.phase != "head" or (epoch + 1) % 10 == 0:
                self.progress.say(f"{self.phase} epoch {epoch + 1}: loss {s.get('loss', float('nan')):.4f}, val AUC "
                                  f"referable {s['val_referable_auc']:.3f} (from grade "
                                  f"{s['val_referable_auc_from_grade']:.3f}), urgent {s['val_urgent_auc']:.3f} "
                                  f"(from grade {s['val_urgent_auc_from_grade']:.3f}), maculopathy "
                                  f"{s['val_maculopathy_auc']:.3f}")

        def restore_best(self, initial: float) -> None:
            if self.keep is not None and self.best_weights is not None:
                self.keep.set_weights(self.best_weights)
                before = f"before fine-tuning {initial:.4f}" if np.isfinite(initial) else "not scored before fine-tuning"
                self.progress.say(f"kept epoch {self.best_epoch} (score {self.best:.4f}; {before})")

    _CALLBACKS = (EpochTimer, ValidationMonitor)
    return _CALLBACKS


_CALLBACKS: tuple[type, type] | None = None
