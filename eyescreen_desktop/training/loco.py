"""Leave-one-collection-out (LOCO) validation of recipe 1 (frozen ImageNet base + new head).

A patient split measures how well a model does on new people from cameras it
trained on; a clinic brings a camera it never saw. LOCO asks that question
directly: for each collection, the head is trained on every photograph of the
*other* collections and graded on the left-out one. A patient-split column
(80% of the patients of all collections for training, 20% per collection for
evaluation, ``data.patient_split`` seed 42, the split ``eyescreen train`` uses)
sits beside it for comparison.

The protocol, fixed so that runs compare:

* **Photographs.** Every row of each ``labels.csv``. The quality gate's verdict
  comes from ``data.ImageCache`` (the engine's own front end): photographs it
  refuses are never used, neither for training nor for evaluation. Photographs
  a collection itself graded ``quality=reject`` (EyeQ) are left out of training,
  as ``eyescreen train`` does, but graded when held out if the gate passes them.
* **Features.** The frozen base's pooled features, computed once per
  photograph and flip variant through ``train.FeatureCache`` with the same key
  as ``eyescreen train`` (base name, image-cache version), so a training run
  afterwards reuses them. Training uses ``variants`` flip variants; evaluation
  uses the photograph as it is (variant 0).
* **Head.** Dropout + dense ``grade`` (softmax), ``referable``, ``urgent`` and
  ``maculopathy`` (sigmoids); maculopathy's loss is masked (weight 0) where a
  collection does not grade it. Weights as in ``train.sample_weights``.
* **Epochs and thresholds.** Chosen on *inner* validation patients: 20% of the
  training collections' patients (``patient_split`` seed 42). A head trained on
  the other 80% stops early on their loss (patience 8); on its predictions for
  the inner validation photographs the referable threshold is the highest with
  sensitivity >= 0.90, the urgent threshold the lowest urgent probability of any
  urgent inner-validation eye (so no urgent eye there would wait a year). The
  head is then retrained on all training photographs for the same number of
  epochs and graded on the left-out photographs with those thresholds.
* **Numbers.** AUCs with 95% confidence intervals from 1000 bootstrap
  resamples of *patients* (both eyes move together); sensitivity/specificity of
  "referred" (either threshold fires, as ``core.protocol`` decides) and the
  number of urgent eyes that would have gone to annual screening.

``python -m eyescreen_desktop.training.loco run`` writes one JSON;
``... bases`` repeats the protocol on a patient subsample for several bases and
input sizes and measures each one's feature cost; ``... markdown`` prints the
tables of docs/training-loco.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..domain.grades import referred_array
from ..domain.thresholds import Rule, thresholds_from_arrays
from . import data as D
from . import metrics as M

DATASETS = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
COLLECTIONS: tuple[str, ...] = ("fundus-dr", "eyepacs-256", "odir-384", "idrid")
HEADS: tuple[str, ...] = ("grade", "referable", "urgent", "maculopathy")
REFERABLE_SENSITIVITY = 0.90
PATIENT_SPLIT = "patient-split"
INNER_FRACTION = 0.2
SEED = 42


# --------------------------------------------------------------------------- photographs


def default_sources(root: Path = DATASETS) -> list[Path]:
    """The four collections' manifests under ``../shared/datasets``."""
    return [Path(root) / c / "labels.csv" for c in COLLECTIONS]


def read_all(sources: Sequence[Path]) -> list[D.Sample]:
    """Every row of every manifest (quality-rejected ones included: they are graded when held out)."""
    return [s for src in sources for s in D.read_manifest(Path(src))]


def subsample_patients(samples: Sequence[D.Sample], max_per_collection: int, seed: int = SEED) -> list[D.Sample]:
    """At most ``max_per_collection`` photographs per collection, whole patients only.

    Patients are taken in a shuffled order (``random.Random(seed)`` over the
    sorted patient ids of each collection) while they still fit, so the subset
    is reproducible and never holds half a patient."""
    by_patient: dict[str, list[D.Sample]] = defaultdict(list)
    for s in samples:
        by_patient[s.patient].append(s)
    chosen: list[D.Sample] = []
    for coll in sorted({s.collection for s in samples}):
        patients = sorted(p for p, eyes in by_patient.items() if eyes[0].collection == coll)
        random.Random(f"{seed}-{coll}").shuffle(patients)
        taken = 0
        for p in patients:
            if taken + len(by_patient[p]) <= max_per_collection:
                chosen.extend(by_patient[p])
                taken += len(by_patient[p])
    return chosen


def gate_passed(samples: Sequence[D.Sample], cache: D.ImageCache) -> tuple[list[D.Sample], dict[str, int]]:
    """The photographs the engine's quality gate passes, and how many it refused per collection."""
    kept, refused = [], Counter()
    for s in samples:
        if cache.get(s.path).status == "ok":
            kept.append(s)
        else:
            refused[s.collection] += 1
    return kept, dict(refused)


# --------------------------------------------------------------------------- features


class LazyImages:
    """``images[idx]`` for FeatureCache that reads preprocessed photographs only when
    a feature is missing (7400 photographs at 384 px would not fit in memory)."""

    def __init__(self, samples: Sequence[D.Sample], cache: D.ImageCache):
        self.samples, self.cache = list(samples), cache

    def __getitem__(self, idx: Sequence[int]) -> np.ndarray:
        return np.stack([self.cache.get(self.samples[i].path).image for i in idx])

    def __len__(self) -> int:
        return len(self.samples)


class LazyExtractor:
    """The frozen base + pooling of ``eyescreen train`` (``build_model`` up to ``pool``),
    built on the first photograph whose features are not cached yet."""

    def __init__(self, factory: Callable[[], Any]):
        self.factory, self.model = factory, None

    def predict_on_batch(self, x: np.ndarray) -> np.ndarray:
        if self.model is None:
            self.model = self.factory()
        return np.asarray(self.model.predict_on_batch(x))


def train_extractor(base_name: str, input_size: int) -> tuple[str, Callable[[], Any]]:
    """The base's cache name and a factory of the same feature extractor ``train.py`` uses."""
    from . import train as T

    def build() -> Any:
        import keras

        base = T.load_base(base_name, input_size)
        model = T.build_model(base, 0.3)
        return keras.Model(model.inputs, model.get_layer("pool").output)

    return base_name, build


class _Say:
    """The ``progress`` FeatureCache prints to."""

    def __init__(self) -> None:
        self.t0 = time.time()

    def say(self, text: str) -> None:
        print(f"[{(time.time() - self.t0) / 60:5.1f} min] {text}", flush=True)


def features(samples: Sequence[D.Sample], base_name: str, image_cache: D.ImageCache, variants: int,
             extractor: Any, chunk: int = 256) -> np.ndarray:
    """(N, variants, D) pooled features through ``train.FeatureCache`` (shared with training)."""
    from . import train as T

    fcache = T.FeatureCache(base_name, image_cache.version)
    say = _Say()
    parts = []
    for start in range(0, len(samples), chunk):
        part = list(samples[start:start + chunk])
        parts.append(fcache.features(extractor, part, LazyImages(part, image_cache), variants, say))
        if fcache.misses:
            say.say(f"features {start + len(part)}/{len(samples)} ({fcache.misses} computed, {fcache.hits} cached)")
    return np.concatenate(parts) if parts else np.zeros((0, variants, 0), np.float32)


# --------------------------------------------------------------------------- folds


@dataclass(frozen=True)
class Fold:
    """One evaluation: train on ``train`` (indices), grade ``test`` (indices)."""

    name: str
    train: list[int]
    test: list[int]


def make_folds(samples: Sequence[D.Sample], all_samples: Sequence[D.Sample], drop_quality: Sequence[str],
               seed: int = SEED) -> list[Fold]:
    """One LOCO fold per collection and the patient-split fold.

    ``samples`` are the gate-passed photographs (what gets features);
    ``all_samples`` every row, so the patient split is the one ``eyescreen
    train`` draws (it splits before the gate). Training indices never hold a
    photograph graded ``drop_quality`` by its collection."""
    drop = set(drop_quality)
    trainable = [i for i, s in enumerate(samples) if s.quality not in drop]
    folds = []
    for coll in [c for c in COLLECTIONS if any(s.collection == c for s in samples)] + \
            sorted({s.collection for s in samples} - set(COLLECTIONS)):
        folds.append(Fold(coll, [i for i in trainable if samples[i].collection != coll],
                          [i for i, s in enumerate(samples) if s.collection == coll]))
    parts = D.patient_split(all_samples, 0.2, seed)
    val_keys = {s.key for s in parts["val"]}
    folds.append(Fold(PATIENT_SPLIT, [i for i in trainable if samples[i].key not in val_keys],
                      [i for i, s in enumerate(samples) if s.key in val_keys]))
    return folds


# --------------------------------------------------------------------------- head


def head_model(n_features: int, dropout: float) -> Any:
    """Dropout + the four dense outputs on pooled features (``train.head_model`` plus maculopathy)."""
    import keras

    inp = keras.Input((n_features,), name="features")
    x = keras.layers.Dropout(dropout, name="head_dropout")(inp)
    return keras.Model(inp, {
        "grade": keras.layers.Dense(5, activation="softmax", name="grade")(x),
        "referable": keras.layers.Dense(1, activation="sigmoid", name="referable")(x),
        "urgent": keras.layers.Dense(1, activation="sigmoid", name="urgent")(x),
        "maculopathy": keras.layers.Dense(1, activation="sigmoid", name="maculopathy")(x),
    })


def targets_and_weights(samples: Sequence[D.Sample]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Targets of the four outputs and their sample weights; maculopathy's weight is 0
    where the collection does not grade it (a masked loss), square-root balanced elsewhere."""
    from . import train as T

    t = D.targets(samples)
    w = dict(T.sample_weights(samples))
    mac = t["maculopathy"].ravel()
    known = mac >= 0
    mw = np.zeros(len(samples), np.float32)
    if known.any():
        classes, counts = np.unique(mac[known], return_counts=True)
        share = {c: np.sqrt(known.sum() / (len(classes) * n)) for c, n in zip(classes, counts)}
        mw[known] = [share[v] for v in mac[known]]
        mw[known] /= mw[known].mean()
    y = {"grade": t["grade"], "referable": t["referable"], "urgent": t["urgent"],
         "maculopathy": np.where(known[:, None], t["maculopathy"], 0.0).astype(np.float32)}
    return y, {**w, "maculopathy": mw}


def fit_head(x: np.ndarray, samples: Sequence[D.Sample], recipe: Any, seed: int, epochs: int,
             val: tuple[np.ndarray, Sequence[D.Sample]] | None = None) -> tuple[Any, int]:
    """Train the head on (N, V, D) features; with ``val`` (features (M, D), samples) stop
    early on its loss and return the best epoch count, else train ``epochs`` epochs."""
    import keras

    v = x.shape[1]
    rep = lambda a: np.repeat(a, v, axis=0)  # noqa: E731 - variants are consecutive rows
    y, w = targets_and_weights(samples)
    keras.utils.set_random_seed(seed)
    head = head_model(x.shape[-1], recipe.dropout)
    head.compile(optimizer=keras.optimizers.AdamW(learning_rate=recipe.head_lr, weight_decay=recipe.weight_decay),
                 loss={"grade": keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing),
                       **{k: keras.losses.BinaryCrossentropy() for k in HEADS[1:]}})
    callbacks, validation = [], None
    if val is not None:
        vy, vw = targets_and_weights(val[1])
        validation = (val[0], vy, vw)
        callbacks = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=8, restore_best_weights=True)]
    history = head.fit(x.reshape(-1, x.shape[-1]), {k: rep(a) for k, a in y.items()},
                       sample_weight={k: rep(a) for k, a in w.items()}, validation_data=validation,
                       epochs=epochs, batch_size=recipe.head_batch, shuffle=True, verbose=0, callbacks=callbacks)
    if val is None:
        return head, epochs
    losses = history.history["val_loss"]
    return head, int(np.argmin(losses)) + 1


def predict(head: Any, x: np.ndarray) -> dict[str, np.ndarray]:
    """The head's four outputs for (N, D) features; referable/urgent/maculopathy flattened."""
    out = head.predict(x, verbose=0, batch_size=512)
    return {k: (np.asarray(v) if k == "grade" else np.asarray(v).ravel()) for k, v in out.items()}


def choose_thresholds(y_ref: np.ndarray, p_ref: np.ndarray, y_urg: np.ndarray, p_urg: np.ndarray
                      ) -> dict[str, float]:
    """The one threshold rule (domain.thresholds) with referable sensitivity >= 0.90 and
    every urgent eye it was chosen on caught (urgent sensitivity 1.0)."""
    rule = Rule(REFERABLE_SENSITIVITY, 1.0, "loco")
    return vars(thresholds_from_arrays(y_ref, p_ref, y_urg, p_urg, np.zeros(len(p_ref)), rule))


# --------------------------------------------------------------------------- metrics


def fold_metrics(samples: Sequence[D.Sample], pred: dict[str, np.ndarray], op: dict[str, float],
                 n_boot: int = 1000) -> dict[str, Any]:
    """AUCs (patient-bootstrap CIs) and the screening numbers of one graded set."""
    groups = [s.patient for s in samples]
    y_ref = np.array([s.referable for s in samples])
    y_urg = np.array([s.urgent for s in samples])
    y_mac = np.array([s.maculopathy for s in samples])
    p_ref, p_urg = pred["referable"], pred["urgent"]
    referred = referred_array(p_ref, p_urg, op["referable"], op["urgent"])
    out: dict[str, Any] = {"photographs": len(samples), "patients": len(set(groups)),
                           "referable": int(y_ref.sum()), "urgent": int(y_urg.sum())}
    for name, y, p in (("referable", y_ref, p_ref), ("urgent", y_urg, p_urg)):
        out[f"{name}_auc"], *ci = M.auc_ci(y, p, groups, n_boot)
        out[f"{name}_auc_ci"] = ci
    graded = y_mac >= 0
    out["maculopathy_photographs"] = int(graded.sum())
    if graded.any() and 0 < y_mac[graded].sum() < graded.sum():
        g = np.flatnonzero(graded)
        out["maculopathy_auc"], *ci = M.auc_ci(y_mac[g], pred["maculopathy"][g], [groups[i] for i in g], n_boot)
        out["maculopathy_auc_ci"] = ci
    sens, spec = M.sens_spec(y_ref, referred.astype(float), 0.5)
    out.update({"referable_sensitivity": sens, "referable_specificity": spec,
                "referred": int(referred.sum()),
                "urgent_sensitivity": M.sens_spec(y_urg, p_urg, op["urgent"])[0],
                "urgent_in_annual": int(((y_urg == 1) & ~referred).sum())})
    return out


def per_collection(samples: Sequence[D.Sample], pred: dict[str, np.ndarray], op: dict[str, float],
                   n_boot: int = 1000) -> dict[str, dict[str, Any]]:
    """:func:`fold_metrics` of each collection's photographs, at the same thresholds."""
    out = {}
    for coll in [c for c in COLLECTIONS if any(s.collection == c for s in samples)]:
        idx = [i for i, s in enumerate(samples) if s.collection == coll]
        out[coll] = fold_metrics([samples[i] for i in idx], {k: v[idx] for k, v in pred.items()}, op, n_boot)
    return out


def _json(x: Any) -> Any:
    if isinstance(x, float) and np.isnan(x):
        return None
    if isinstance(x, (np.floating, np.integer)):
        return _json(x.item())
    if isinstance(x, dict):
        return {k: _json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json(v) for v in x]
    return x


# --------------------------------------------------------------------------- the protocol


def run_folds(samples: Sequence[D.Sample], feats: np.ndarray, folds: Sequence[Fold], recipe: Any,
              seed: int = SEED, n_boot: int = 1000, say: Callable[[str], None] = print,
              done: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Inner split -> epochs and thresholds -> head on all training photographs -> metrics, per fold;
    ``done(results so far)`` after each fold (a long run keeps what it finished)."""
    results = {}
    for fold in folds:
        t0 = time.time()
        train = [samples[i] for i in fold.train]
        inner = D.patient_split(train, INNER_FRACTION, seed)
        inner_val_keys = {s.key for s in inner["val"]}
        fit_i = [i for i in fold.train if samples[i].key not in inner_val_keys]
        val_i = [i for i in fold.train if samples[i].key in inner_val_keys]
        val_s = [samples[i] for i in val_i]
        head, epochs = fit_head(feats[fit_i], [samples[i] for i in fit_i], recipe, seed, recipe.head_epochs,
                                val=(feats[val_i, 0], val_s))
        p_val = predict(head, feats[val_i, 0])
        op = choose_thresholds(np.array([s.referable for s in val_s]), p_val["referable"],
                               np.array([s.urgent for s in val_s]), p_val["urgent"])
        head, _ = fit_head(feats[fold.train], train, recipe, seed, epochs)
        test = [samples[i] for i in fold.test]
        pred = predict(head, feats[fold.test, 0])
        m = fold_metrics(test, pred, op, n_boot)
        if fold.name == PATIENT_SPLIT:
            m["per_collection"] = per_collection(test, pred, op, n_boot)
        results[fold.name] = {
            "trained_on": dict(sorted(Counter(s.collection for s in train).items())),
            "training_photographs": len(train), "training_patients": len({s.patient for s in train}),
            "epochs": epochs, "thresholds": op, "thresholds_chosen_on_photographs": len(val_s),
            **m, "seconds": round(time.time() - t0, 1)}
        say(f"{fold.name}: trained on {len(train)} photographs ({epochs} epochs), graded {len(test)}: "
            f"referable AUC {m['referable_auc']:.3f}, urgent AUC {m['urgent_auc']:.3f}, "
            f"sens {m['referable_sensitivity']:.3f} spec {m['referable_specificity']:.3f}, "
            f"urgent in annual {m['urgent_in_annual']}/{m['urgent']}")
        if done:
            done(results)
    return results


PROBE_L2 = 1e-2


def logistic_probe(x: np.ndarray, y: np.ndarray, l2: float = PROBE_L2) -> Callable[[np.ndarray], np.ndarray]:
    """An L2-regularised logistic regression on standardised features (scipy L-BFGS);
    returns the scoring function. Seconds where a Keras head takes minutes on a shared
    CPU, so several bases can be compared on the same folds."""
    from scipy.optimize import minimize

    mu, sd = x.mean(0), x.std(0) + 1e-6
    z = np.c_[(x - mu) / sd, np.ones(len(x))]
    y = y.astype(np.float64)

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        t = z @ w
        p = 1 / (1 + np.exp(-t))
        value = np.mean(np.logaddexp(0, t) - y * t) + l2 / 2 * w[:-1] @ w[:-1]
        grad = z.T @ (p - y) / len(y)
        grad[:-1] += l2 * w[:-1]
        return float(value), grad

    w = minimize(loss, np.zeros(z.shape[1]), jac=True, method="L-BFGS-B", options={"maxiter": 500}).x
    return lambda f: np.c_[(f - mu) / sd, np.ones(len(f))] @ w


def probe_folds(samples: Sequence[D.Sample], feats: np.ndarray, folds: Sequence[Fold],
                n_boot: int = 1000, say: Callable[[str], None] = print) -> dict[str, Any]:
    """AUCs only (no thresholds) of a logistic probe per output and fold, for comparing bases."""
    results = {}
    for fold in folds:
        train = [samples[i] for i in fold.train]
        test = [samples[i] for i in fold.test]
        x = feats[fold.train].reshape(-1, feats.shape[-1])
        v = feats.shape[1]
        pred = {}
        for name in ("referable", "urgent", "maculopathy"):
            y = np.repeat(np.array([getattr(s, name) for s in train]), v)
            known = y >= 0
            if known.any() and 0 < y[known].sum() < known.sum():
                pred[name] = logistic_probe(x[known], y[known])(feats[fold.test, 0])
            else:
                pred[name] = np.full(len(test), np.nan)
        groups = [s.patient for s in test]
        m: dict[str, Any] = {"photographs": len(test), "patients": len(set(groups)),
                             "trained_on": dict(sorted(Counter(s.collection for s in train).items()))}
        for name in ("referable", "urgent", "maculopathy"):
            y = np.array([getattr(s, name) for s in test])
            idx = np.flatnonzero(y >= 0)
            if len(idx) and 0 < y[idx].sum() < len(idx) and not np.isnan(pred[name]).any():
                m[f"{name}_auc"], *ci = M.auc_ci(y[idx], pred[name][idx], [groups[i] for i in idx], n_boot)
                m[f"{name}_auc_ci"] = ci
        results[fold.name] = m
        say(f"{fold.name}: probe referable AUC {m.get('referable_auc', float('nan')):.3f}, "
            f"urgent {m.get('urgent_auc', float('nan')):.3f}")
    return results


def loco(sources: Sequence[Path], base_name: str = "efficientnet-lite0", input_size: int = 384,
         variants: int = 2, max_per_collection: int = 0, seed: int = SEED, n_boot: int = 1000,
         extractor_factory: Callable[[], Any] | None = None, recipe: Any = None,
         head: str = "keras", partial: Path | None = None) -> dict[str, Any]:
    """The whole protocol for one base and input size; returns what ``run`` writes as JSON.

    ``head="keras"`` trains recipe 1's head (epochs and thresholds from inner
    validation patients); ``head="probe"`` fits a logistic probe per output and
    reports AUCs only (the base comparison). ``extractor_factory`` replaces the
    named base's extractor (tests pass a tiny one). ``partial``: a JSON file
    rewritten after every fold with the folds finished so far."""
    from . import train as T

    t0 = time.time()
    say = _Say().say
    recipe = recipe or T.RECIPES["feature"]
    everything = read_all(sources)
    if max_per_collection:
        everything = subsample_patients(everything, max_per_collection, seed)
    cache = D.ImageCache(input_size)
    samples, refused = gate_passed(everything, cache)
    say(f"{len(everything)} photographs, gate refused {refused}; features of {len(samples)}")
    factory = extractor_factory or train_extractor(base_name, input_size)[1]
    feats = features(samples, base_name, cache, variants, LazyExtractor(factory))
    feature_s = time.time() - t0
    folds = make_folds(samples, everything, D.DEFAULT_DROP_QUALITY, seed)
    if head == "probe":
        results = probe_folds(samples, feats, folds, n_boot, say)
    else:
        def done(so_far: dict[str, Any]) -> None:
            if partial is not None:
                Path(partial).write_text(json.dumps(_json({"partial": True, "base": base_name,
                                                           "input_size": input_size, "folds": so_far}), indent=1))

        results = run_folds(samples, feats, folds, recipe, seed, n_boot, say, done)
    return _json({
        "base": base_name, "input_size": input_size, "variants": variants, "seed": seed, "head": head,
        "max_per_collection": max_per_collection or None,
        "photographs": dict(sorted(Counter(s.collection for s in everything).items())),
        "gate_refused": refused,
        "quality_reject_left_out_of_training": dict(sorted(Counter(
            s.collection for s in samples if s.quality in D.DEFAULT_DROP_QUALITY).items())),
        "recipe": {k: getattr(recipe, k) for k in ("head_epochs", "head_lr", "head_batch", "dropout",
                                                    "label_smoothing", "weight_decay")},
        "folds": results, "feature_seconds": round(feature_s, 1),
        "seconds": round(time.time() - t0, 1), "threads": _threads(),
        "load_average_end": list(os.getloadavg()),
    })


def _threads() -> str:
    return os.environ.get("OMP_NUM_THREADS", "?")


# --------------------------------------------------------------------------- feature cost


def feature_cost_ms(base_name: str, input_size: int, samples: Sequence[D.Sample], repeats: int = 5,
                    batch: int = 8) -> dict[str, float]:
    """Milliseconds per photograph of the frozen base + pooling (one view), on real
    preprocessed photographs, batch ``batch``, after one warm-up, best of ``repeats``.

    Both the process's CPU time (with one thread: the cost on one core, even
    while other jobs share the machine) and the wall-clock time are kept; on a
    shared machine only the CPU time compares between bases."""
    _, build = train_extractor(base_name, input_size)
    model = build()
    cache = D.ImageCache(input_size)
    x = np.stack([cache.get(s.path).image for s in samples[:batch]]).astype(np.float32)
    model.predict_on_batch(x)
    cpu, wall = [], []
    for _ in range(repeats):
        c, t = time.process_time(), time.perf_counter()
        model.predict_on_batch(x)
        cpu.append((time.process_time() - c) * 1000 / len(x))
        wall.append((time.perf_counter() - t) * 1000 / len(x))
    return {"cpu_ms_per_image": float(min(cpu)), "cpu_ms_per_image_median": float(np.median(cpu)),
            "wall_ms_per_image": float(min(wall)), "batch": len(x), "repeats": repeats,
            "parameters": int(model.count_params())}


def parse_config(text: str) -> tuple[str, int]:
    """``efficientnet-lite1@448`` -> (``efficientnet-lite1``, 448)."""
    name, _, size = text.partition("@")
    if not size.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: write BASE@PIXELS, e.g. efficientnet-lite1@448")
    return name, int(size)


# --------------------------------------------------------------------------- markdown


def _auc(m: dict[str, Any], name: str) -> str:
    v = m.get(f"{name}_auc")
    if v is None:
        return "-"
    ci = m.get(f"{name}_auc_ci") or [None, None]
    return f"{v:.3f} ({ci[0]:.3f}-{ci[1]:.3f})" if ci[0] is not None else f"{v:.3f}"


def loco_table(result: dict[str, Any]) -> str:
    """The LOCO table (one row per held-out collection) and the patient-split rows beside it."""
    folds = result["folds"]
    head = ("| held out | trained on (photographs) | graded photographs / patients | referable AUC (95% CI) "
            "| urgent AUC (95% CI) | maculopathy AUC (95% CI) | thresholds ref / urg | referable sens / spec "
            "| urgent in annual | patient-split referable AUC (95% CI) | patient-split urgent AUC "
            "| patient-split maculopathy AUC |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    split = folds.get(PATIENT_SPLIT, {}).get("per_collection", {})
    for name, m in folds.items():
        if name == PATIENT_SPLIT:
            continue
        trained = ", ".join(f"{c} {n}" for c, n in m["trained_on"].items())
        s = split.get(name, {})
        lines.append(
            f"| {name} | {trained} | {m['photographs']} / {m['patients']} | {_auc(m, 'referable')} "
            f"| {_auc(m, 'urgent')} | {_auc(m, 'maculopathy')} "
            f"| {m['thresholds']['referable']:.3f} / {m['thresholds']['urgent']:.3f} "
            f"| {m['referable_sensitivity']:.3f} / {m['referable_specificity']:.3f} "
            f"| {m['urgent_in_annual']} of {m['urgent']} | {_auc(s, 'referable') if s else '-'} "
            f"| {_auc(s, 'urgent') if s else '-'} | {_auc(s, 'maculopathy') if s else '-'} |")
    return "\n".join(lines)


def split_table(result: dict[str, Any]) -> str:
    """The patient-split fold per collection, at its own thresholds."""
    fold = result["folds"].get(PATIENT_SPLIT)
    if not fold:
        return ""
    head = ("| validation patients of | photographs / patients | referable AUC (95% CI) | urgent AUC (95% CI) "
            "| maculopathy AUC (95% CI) | referable sens / spec | urgent in annual |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, m in [*fold.get("per_collection", {}).items(), ("all", fold)]:
        lines.append(f"| {name} | {m['photographs']} / {m['patients']} | {_auc(m, 'referable')} "
                     f"| {_auc(m, 'urgent')} | {_auc(m, 'maculopathy')} "
                     f"| {m['referable_sensitivity']:.3f} / {m['referable_specificity']:.3f} "
                     f"| {m['urgent_in_annual']} of {m['urgent']} |")
    return "\n".join(lines)


def bases_table(runs: Sequence[dict[str, Any]]) -> str:
    """One row per base and size: LOCO referable AUC per held-out collection, their mean,
    urgent AUC mean, and the feature cost."""
    colls = [c for c in COLLECTIONS if any(c in r["folds"] for r in runs)]
    head = ("| base @ px | " + " | ".join(f"LOCO referable AUC, {c} held out" for c in colls)
            + " | mean | mean LOCO urgent AUC | patient-split referable AUC (all) | CPU ms/img (1 thread) "
            "| parameters |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in runs:
        f = r["folds"]
        refs = [f[c]["referable_auc"] for c in colls if f.get(c, {}).get("referable_auc") is not None]
        urgs = [f[c]["urgent_auc"] for c in colls if f.get(c, {}).get("urgent_auc") is not None]
        cost = r.get("feature_cost", {})
        lines.append(f"| {r['base']} @ {r['input_size']} | " + " | ".join(_auc(f[c], "referable") for c in colls)
                     + f" | {np.mean(refs):.3f} | {np.mean(urgs):.3f} | {_auc(f[PATIENT_SPLIT], 'referable')} "
                     f"| {cost.get('cpu_ms_per_image', float('nan')):.0f} "
                     f"| {cost.get('parameters', 0) / 1e6:.1f} M |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m eyescreen_desktop.training.loco {run,bases,markdown}``."""
    parser = argparse.ArgumentParser(prog="python -m eyescreen_desktop.training.loco", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "bases"):
        p = sub.add_parser(name)
        p.add_argument("--data", type=Path, action="append", default=None,
                       help="labels.csv (repeatable; default: the four collections in ../shared/datasets)")
        p.add_argument("--variants", type=int, default=2, help="flip variants of the training features")
        p.add_argument("--max-per-collection", type=int, default=0,
                       help="patient subsample: at most this many photographs per collection (0 = all)")
        p.add_argument("--seed", type=int, default=SEED)
        p.add_argument("--n-boot", type=int, default=1000)
        p.add_argument("--threads", type=int, default=1, help="TensorFlow CPU threads")
        p.add_argument("--out", type=Path, required=True, help="JSON to write")
    run_p, bases_p = sub.choices["run"], sub.choices["bases"]
    run_p.add_argument("--base", default="efficientnet-lite0")
    run_p.add_argument("--input-size", type=int, default=384)
    bases_p.add_argument("--config", type=parse_config, action="append", required=True,
                         help="BASE@PIXELS, repeatable (e.g. efficientnet-lite1@448)")
    bases_p.add_argument("--head", choices=("keras", "probe"), default="probe",
                         help="probe = logistic probe per output, AUCs only (default); keras = recipe 1's head")
    md = sub.add_parser("markdown", help="print the tables of docs/training-loco.md")
    md.add_argument("loco_json", type=Path)
    md.add_argument("--bases", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.command == "markdown":
        result = json.loads(args.loco_json.read_text())
        print(loco_table(result) + "\n\n" + split_table(result))
        if args.bases:
            print("\n" + bases_table(json.loads(args.bases.read_text())["runs"]))
        return 0
    from . import train as T

    T._tensorflow(args.threads)
    sources = args.data or default_sources()
    if args.command == "run":
        result = loco(sources, args.base, args.input_size, args.variants, args.max_per_collection, args.seed,
                      args.n_boot, partial=args.out.with_suffix(".partial.json"))
        result["command"] = "python -m eyescreen_desktop.training.loco " + " ".join(sys.argv[1:] if argv is None else argv)
    else:
        runs = []
        for base_name, size in args.config:
            r = loco(sources, base_name, size, args.variants, args.max_per_collection, args.seed, args.n_boot,
                     head=args.head)
            r["feature_cost"] = feature_cost_ms(base_name, size, read_all(sources)[:8])
            runs.append(r)
            args.out.write_text(json.dumps({"runs": runs}, indent=1) + "\n")
        result = {"runs": runs, "command": "python -m eyescreen_desktop.training.loco " +
                  " ".join(sys.argv[1:] if argv is None else argv)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
