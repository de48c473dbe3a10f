"""``eyescreen train-external``: the external-eye check, the course's two networks.

The course's worked example of transfer learning on a small data set, on
photographs of the front of the eye (../shared/datasets/external-eye):

* **Network 1 - feature extraction.** The ImageNet base (EfficientNet-Lite0,
  offline port) is frozen; its pooled features are computed once per
  photograph and its mirror image and cached under ``.cache/``; a new dense
  head (dropout + 4-way softmax) is trained on them in seconds.
* **Network 2 - fine-tuning.** Network 1's head, then the last blocks
  (``block6``, ``block7``, ``top_``) unfrozen, BatchNormalization kept frozen,
  trained at a low learning rate on augmented photographs (flips, small
  shifts, rotations, zoom, brightness, contrast and colour).

Both predict a softmax over ``normal / cataract / conjunctivitis / other``
(categorical cross-entropy); the binary "go for an eye check-up" is
``p_checkup = 1 - p(normal)`` (multi-class to binary, as in the course).

Web pictures repeat: the same photograph resized, recompressed or mirrored
appears under two names. :func:`duplicate_groups` joins pictures whose
perceptual hash (a 9x8 grey copy's gradient signs, mirror included) differs in
a few bits, and whole groups go to one side of the split, so the held-out
figures are not inflated by pictures the network has already seen.

Split: train 70% / validation 15% / held-out test 15% of groups, stratified by
label. Validation chooses the epoch, the shipped network and the operating
point; the held-out part is only measured.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..domain.thresholds import floor6
from . import metrics as M

log = logging.getLogger(__name__)

CLASSES: tuple[str, ...] = ("normal", "cataract", "conjunctivitis", "other")
#: dataset label -> class; glaucoma pictures are web results for the word, seldom visible: "other finding"
LABEL_TO_CLASS = {"normal": "normal", "cataract": "cataract", "conjunctivitis": "conjunctivitis",
                  "glaucoma": "other", "other": "other"}
OUTPUT = "finding"
CHECKUP_SENSITIVITY = 0.90
NEAR_DUPLICATE_BITS = 6       # of 64: recompressed / resized copies differ by 0-4 bits
INTENDED_USE = ("Research and demonstration only; not for clinical use. Trained on web-collected photographs "
                "with web labels (not clinical grades). Says 'your eye looks healthy' or 'go for an eye "
                "check-up' from a photograph of the front of the eye; it is not a diabetic-retinopathy "
                "screen and not a medical device.")


@dataclass(frozen=True)
class ExternalRecipe:
    """Every knob of one run (recorded in the model card)."""

    input_size: int = 224
    head_epochs: int = 150
    head_lr: float = 1e-3
    head_batch: int = 32
    dropout: float = 0.3
    label_smoothing: float = 0.05
    fine_tune_epochs: int = 6
    fine_tune_lr: float = 5e-5
    fine_tune_batch: int = 16
    weight_decay: float = 1e-4
    augment: dict[str, float] = field(default_factory=lambda: {
        "rotation": 12.0, "shift": 0.06, "zoom": 0.10, "brightness": 0.15, "contrast": 0.15, "colour": 0.08})


@dataclass(frozen=True)
class EyePhoto:
    """One labelled photograph; ``group`` joins near-duplicates."""

    path: Path
    label: str
    source: str
    group: int = -1

    @property
    def cls(self) -> int:
        return CLASSES.index(LABEL_TO_CLASS[self.label])


# --------------------------------------------------------------------------- data


def read_labels(path: Path) -> list[EyePhoto]:
    """labels.csv (file, label, source) -> photographs under ``images/`` beside it."""
    path = Path(path)
    root = path.parent / "images"
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    unknown = {r["label"] for r in rows} - set(LABEL_TO_CLASS)
    if unknown:
        raise ValueError(f"{path}: labels {sorted(unknown)} are not known; use {sorted(LABEL_TO_CLASS)}")
    return [EyePhoto(root / r["file"], r["label"], r.get("source", "")) for r in rows]


def dhash(rgb: np.ndarray) -> int:
    """64-bit difference hash of a 9x8 grey copy: survives resizing and JPEG recompression."""
    import cv2

    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def duplicate_groups(hashes: Sequence[int], mirrored: Sequence[int], max_bits: int = NEAR_DUPLICATE_BITS
                     ) -> np.ndarray:
    """Group index per picture: pictures within ``max_bits`` of each other (or of
    the other's mirror image) share a group, transitively (union-find)."""
    h = np.array(hashes, dtype=np.uint64)
    m = np.array(mirrored, dtype=np.uint64)
    parent = list(range(len(h)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(h)):
        dist = np.minimum(_popcount(h[i] ^ h[i + 1:]), _popcount(h[i] ^ m[i + 1:]))
        for j in np.flatnonzero(dist <= max_bits) + i + 1:
            parent[find(int(j))] = find(i)
    roots = [find(i) for i in range(len(h))]
    _, groups = np.unique(roots, return_inverse=True)
    return groups


def _popcount(x: np.ndarray) -> np.ndarray:
    b = x.view(np.uint8).reshape(-1, 8)
    return np.unpackbits(b, axis=1).sum(axis=1)


def group_split(photos: Sequence[EyePhoto], fractions: tuple[float, float] = (0.15, 0.15), seed: int = 42
                ) -> dict[str, list[EyePhoto]]:
    """train / val / test by duplicate group, stratified by the group's first label."""
    rng = np.random.default_rng(seed)
    by_group: dict[int, list[EyePhoto]] = {}
    for p in photos:
        by_group.setdefault(p.group, []).append(p)
    parts: dict[str, list[EyePhoto]] = {"train": [], "val": [], "test": []}
    for cls in CLASSES:
        groups = [g for g, ps in by_group.items() if LABEL_TO_CLASS[ps[0].label] == cls]
        groups = [groups[i] for i in rng.permutation(len(groups))]
        n_val, n_test = (int(round(f * len(groups))) for f in fractions)
        for k, g in enumerate(groups):
            part = "val" if k < n_val else "test" if k < n_val + n_test else "train"
            parts[part].extend(by_group[g])
    return parts


def load_photos(photos: Sequence[EyePhoto], size: int, cache: Path) -> tuple[list[EyePhoto], np.ndarray]:
    """Decode every photograph once (cached as one .npz under ``cache``): model
    inputs (N, size, size, 3) uint8 and the photographs with duplicate groups."""
    from ..core import imageio
    from ..core.eye_input import EYE_PREPROCESSING_ID, square_eye

    digest = hashlib.sha256("".join(sorted(str(p.path) for p in photos)).encode()).hexdigest()[:12]
    npz = Path(cache) / f"external-images-{EYE_PREPROCESSING_ID}-{size}-{digest}.npz"
    if npz.exists():
        data = np.load(npz)
        images, h, m = data["images"], data["hash"], data["mirror"]
    else:
        images = np.zeros((len(photos), size, size, 3), np.uint8)
        h, m = np.zeros(len(photos), np.uint64), np.zeros(len(photos), np.uint64)
        for i, p in enumerate(photos):
            rgb = imageio.read_image(p.path)
            images[i] = square_eye(rgb, size)
            h[i], m[i] = dhash(rgb), dhash(rgb[:, ::-1])
        npz.parent.mkdir(parents=True, exist_ok=True)
        tmp = npz.with_suffix(".tmp.npz")  # an interrupted run must not leave half a cache
        np.savez(tmp, images=images, hash=h, mirror=m)
        tmp.replace(npz)
    groups = duplicate_groups(list(h), list(m))
    return [EyePhoto(p.path, p.label, p.source, int(g)) for p, g in zip(photos, groups)], images


# --------------------------------------------------------------------------- networks


def build_network(base: Any, dropout: float) -> Any:
    """Base -> global average pooling -> dropout -> ``finding`` softmax, one flat graph
    (so the heat-map layer is reachable by name and the ONNX twin exports it)."""
    import keras

    x = keras.layers.GlobalAveragePooling2D(name="pool")(base.model.output)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    out = keras.layers.Dense(len(CLASSES), activation="softmax", name=OUTPUT)(x)
    return keras.Model(base.model.inputs, {OUTPUT: out}, name="eyescreen_external")


def class_weights(y: np.ndarray) -> np.ndarray:
    """Square-root inverse class frequency per photograph, mean 1 (as for the fundus model)."""
    counts = np.bincount(y, minlength=len(CLASSES)).astype(np.float64)
    w = 1.0 / np.sqrt(np.maximum(counts, 1))[y]
    return (w / w.mean()).astype(np.float32)


def features(model: Any, images: np.ndarray, cache: Path, key: str, mirror: bool) -> np.ndarray:
    """Frozen-base pooled features (N, V, D), V = 2 with the mirror image; cached."""
    import keras

    path = Path(cache) / f"external-features-{key}-v{2 if mirror else 1}.npy"
    if path.exists():
        return np.load(path)
    extractor = keras.Model(model.inputs, model.get_layer("pool").output)
    views = [images, images[:, :, ::-1]] if mirror else [images]
    out = np.stack([np.concatenate([extractor.predict_on_batch(v[i:i + 32].astype(np.float32))
                                    for i in range(0, len(v), 32)]) for v in views], axis=1)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, out)
    tmp.replace(path)
    return out


def network1(model: Any, images: dict[str, np.ndarray], y: dict[str, np.ndarray], recipe: ExternalRecipe,
             cache: Path, key: str, seed: int) -> dict[str, Any]:
    """Feature extraction: the head trained on cached features; its weights are
    copied into ``model``. Returns validation and test probabilities."""
    import keras

    f_train = features(model, images["train"], cache, f"{key}-train", mirror=True)
    f_val = features(model, images["val"], cache, f"{key}-val", mirror=False)[:, 0]
    f_test = features(model, images["test"], cache, f"{key}-test", mirror=False)[:, 0]
    x = f_train.reshape(-1, f_train.shape[-1])
    yt = np.repeat(y["train"], f_train.shape[1])
    keras.utils.set_random_seed(seed)
    inp = keras.Input((x.shape[1],))
    h = keras.layers.Dropout(recipe.dropout)(inp)
    head = keras.Model(inp, keras.layers.Dense(len(CLASSES), activation="softmax", name=OUTPUT)(h))
    _compile(head, recipe.head_lr, recipe)
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=10, restore_best_weights=True)
    hist = head.fit(x, _onehot(yt), sample_weight=class_weights(yt), batch_size=recipe.head_batch,
                    epochs=recipe.head_epochs, validation_data=(f_val, _onehot(y["val"])), verbose=0,
                    shuffle=True, callbacks=[stop])
    model.get_layer(OUTPUT).set_weights(head.get_layer(OUTPUT).get_weights())
    return {"val": head.predict(f_val, verbose=0), "test": head.predict(f_test, verbose=0),
            "epochs": len(hist.history["loss"])}


def network2(model: Any, base: Any, images: dict[str, np.ndarray], y: dict[str, np.ndarray],
             recipe: ExternalRecipe, seed: int, say: Any) -> dict[str, Any]:
    """Fine-tuning: last blocks unfrozen (BatchNorm frozen), augmented photographs,
    low learning rate with cosine decay; keeps the epoch with the best validation
    AUC of ``p_checkup``. Returns validation and test probabilities."""
    import keras

    from .train import set_fine_tunable

    n = set_fine_tunable(model, (*base.fine_tune_prefixes, OUTPUT))
    say(f"network 2: fine-tuning {n:,} weights ({', '.join(base.fine_tune_prefixes)}; BatchNorm frozen), "
        f"{recipe.fine_tune_epochs} epochs at lr {recipe.fine_tune_lr:g}")
    steps = int(np.ceil(len(y["train"]) / recipe.fine_tune_batch))
    lr = keras.optimizers.schedules.CosineDecay(recipe.fine_tune_lr, steps * recipe.fine_tune_epochs, alpha=0.1)
    _compile(model, lr, recipe, named=True)
    ds = _dataset(images["train"], y["train"], recipe, seed)
    best = (-1.0, 0, [w.copy() for w in model.get_weights()])
    best = _keep_best(best, model, images["val"], y["val"], 0, say)
    for epoch in range(1, recipe.fine_tune_epochs + 1):
        t0 = time.time()
        loss = model.fit(ds, epochs=1, verbose=0, shuffle=False).history["loss"][-1]  # ds shuffles itself
        say(f"network 2 epoch {epoch}: loss {loss:.4f} ({time.time() - t0:.0f} s)")
        best = _keep_best(best, model, images["val"], y["val"], epoch, say)
    model.set_weights(best[2])
    say(f"network 2: kept epoch {best[1]} (validation p_checkup AUC {best[0]:.3f})")
    return {"val": predict(model, images["val"]), "test": predict(model, images["test"]), "epoch": best[1]}


def _keep_best(best: tuple[float, int, list], model: Any, images: np.ndarray, y: np.ndarray, epoch: int,
               say: Any) -> tuple[float, int, list]:
    p = predict(model, images)
    auc = M.roc_auc(y != 0, p_checkup(p))
    say(f"  validation: p_checkup AUC {auc:.3f}, accuracy {float((p.argmax(1) == y).mean()):.3f}")
    return (auc, epoch, [w.copy() for w in model.get_weights()]) if auc > best[0] else best


def _compile(model: Any, lr: Any, recipe: ExternalRecipe, named: bool = False) -> None:
    """AdamW and categorical cross-entropy (label smoothing: web labels are noisy)."""
    import keras

    loss = keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing)
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=lr, weight_decay=recipe.weight_decay),
                  loss={OUTPUT: loss} if named else loss)


def _onehot(y: np.ndarray) -> np.ndarray:
    return np.eye(len(CLASSES), dtype=np.float32)[y]


def _dataset(images: np.ndarray, y: np.ndarray, recipe: ExternalRecipe, seed: int) -> Any:
    """Shuffled, augmented batches (the fundus pipeline's warp plus a colour cast per photograph)."""
    import tensorflow as tf

    from .train import make_dataset

    ds = make_dataset(images, {OUTPUT: _onehot(y)}, {OUTPUT: class_weights(y)}, recipe.fine_tune_batch, seed,
                      recipe.augment)
    colour = recipe.augment.get("colour", 0.0)

    def cast(x: Any, t: Any, w: Any) -> tuple[Any, Any, Any]:
        gains = tf.random.uniform((tf.shape(x)[0], 1, 1, 3), 1 - colour, 1 + colour, seed=seed)
        return tf.clip_by_value(x * gains, 0, 255), t, w

    return ds.map(cast)


def predict(model: Any, images: np.ndarray, batch: int = 32) -> np.ndarray:
    """Softmax (N, 4) for uint8 images."""
    return np.concatenate([np.asarray(model.predict_on_batch(images[i:i + batch].astype(np.float32))[OUTPUT])
                           for i in range(0, len(images), batch)])


def p_checkup(probs: np.ndarray) -> np.ndarray:
    """Multi-class to binary: the probability of any finding, 1 - p(normal)."""
    return 1.0 - np.asarray(probs, np.float64)[:, 0]


# --------------------------------------------------------------------------- metrics


def held_out_metrics(probs: np.ndarray, y: np.ndarray, groups: Sequence[int], threshold: float,
                     n_boot: int = 1000) -> dict[str, Any]:
    """Accuracy (4 classes and check-up vs normal), AUC of p_checkup with a bootstrap
    95% CI over duplicate groups, sensitivity/specificity at ``threshold`` and the
    confusion table (rows true, columns predicted)."""
    p = p_checkup(probs)
    yb = (y != 0).astype(int)
    g = [str(x) for x in groups]
    auc, lo, hi = M.auc_ci(yb, p, g, n_boot=n_boot)
    sens, spec = M.sens_spec_ci(yb, p, threshold, g, n_boot=n_boot)
    acc_ci = M.patient_bootstrap(lambda i: float((probs[i].argmax(1) == y[i]).mean()), g, n_boot)
    table = M.confusion([CLASSES[i] for i in y], [CLASSES[i] for i in probs.argmax(1)], CLASSES)
    return {"photographs": int(len(y)), "groups": int(len(set(g))),
            "accuracy_4class": float((probs.argmax(1) == y).mean()), "accuracy_4class_ci95": list(acc_ci),
            "accuracy_checkup": float(((p >= threshold) == yb).mean()),
            "auc_checkup": auc, "auc_checkup_ci95": [lo, hi],
            "sensitivity": {"value": sens.value, "ci95": [sens.low, sens.high], "n": [sens.hits, sens.total]},
            "specificity": {"value": spec.value, "ci95": [spec.low, spec.high], "n": [spec.hits, spec.total]},
            "confusion": {"labels": list(CLASSES), "rows_true_columns_predicted": table.tolist()}}


# --------------------------------------------------------------------------- run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``eyescreen train-external`` options."""
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/external-eye/labels.csv"),
                        help="labels.csv of the external-eye collection (file, label, source)")
    parser.add_argument("--out", type=Path, default=Path("models/eyescreen-external"), help="model folder to write")
    parser.add_argument("--cache", type=Path, default=Path(".cache"), help="decoded images and frozen features")
    parser.add_argument("--epochs", type=int, default=ExternalRecipe.fine_tune_epochs, help="network 2 epochs")
    parser.add_argument("--size", type=int, default=ExternalRecipe.input_size, help="input size in pixels")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=2, help="TensorFlow CPU threads")
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX twin (tests)")
    parser.add_argument("--random-base", action="store_true", help="random base weights (tests only)")


def run(args: argparse.Namespace) -> int:
    """Train both networks, ship the better one on validation, report both on held-out pictures."""
    recipe = ExternalRecipe(input_size=args.size, fine_tune_epochs=args.epochs)
    summary = train_external(args.data, args.out, recipe, cache=args.cache, seed=args.seed, threads=args.threads,
                             onnx=not args.no_onnx, imagenet=not args.random_base)
    print(json.dumps({k: summary[k] for k in ("shipped", "comparison")}, indent=1))
    return 0


def train_external(labels: Path, out: Path, recipe: ExternalRecipe = ExternalRecipe(), cache: Path = Path(".cache"),
                   seed: int = 42, threads: int = 2, onnx: bool = True, imagenet: bool = True) -> dict[str, Any]:
    """The whole run; writes the model folder and returns the summary (also in training.json)."""
    from .bases import get_base
    from .train import _tensorflow

    t_start = time.time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    say = _sayer(out)
    tf, keras = _tensorflow(threads)
    photos, images = load_photos(read_labels(labels), recipe.input_size, cache)
    parts = group_split(photos, seed=seed)
    index = {p.path: i for i, p in enumerate(photos)}
    imgs = {k: images[[index[p.path] for p in v]] for k, v in parts.items()}
    y = {k: np.array([p.cls for p in v]) for k, v in parts.items()}
    say(f"{len(photos)} photographs in {len({p.group for p in photos})} near-duplicate groups; "
        + ", ".join(f"{k} {len(v)}" for k, v in parts.items()))
    keras.utils.set_random_seed(seed)
    base = get_base("efficientnet-lite0", recipe.input_size, imagenet=imagenet)
    model = build_network(base, recipe.dropout)
    key = hashlib.sha256(json.dumps([str(labels), recipe.input_size, seed, imagenet,
                                     [str(p.path) for p in parts["train"]]]).encode()).hexdigest()[:12]
    n1 = network1(model, imgs, y, recipe, cache, key, seed)
    say(f"network 1: head trained for {n1['epochs']} epochs; validation p_checkup AUC "
        f"{M.roc_auc(y['val'] != 0, p_checkup(n1['val'])):.3f}")
    n1_weights = [w.copy() for w in model.get_weights()]
    n2 = network2(model, base, imgs, y, recipe, seed, say)
    results = {"network1": n1, "network2": n2}
    auc_val = {k: M.roc_auc(y["val"] != 0, p_checkup(r["val"])) for k, r in results.items()}
    shipped = max(auc_val, key=lambda k: (auc_val[k], k))
    if shipped == "network1":
        model.set_weights(n1_weights)
    threshold = floor6(M.threshold_for_sensitivity(y["val"] != 0, p_checkup(results[shipped]["val"]),
                                                    CHECKUP_SENSITIVITY))
    groups = [p.group for p in parts["test"]]
    comparison = {k: {"validation_auc_checkup": auc_val[k],
                      "held_out": held_out_metrics(r["test"], y["test"], groups, threshold)}
                  for k, r in results.items()}
    summary = {"shipped": shipped, "threshold_checkup": threshold, "comparison": comparison,
               "minutes": round((time.time() - t_start) / 60, 1)}
    _write_model(model, out, recipe, base, parts, summary, seed, threads)
    if onnx:
        from .onnx_export import add_onnx_runtime

        add_onnx_runtime(out, probe=imgs["test"][:8].astype(np.float32))
    write_card_markdown(out)
    say(f"done in {(time.time() - t_start) / 60:.1f} min; shipped {shipped}")
    return summary


def _sayer(out: Path) -> Any:
    log_path = out / "training_log.txt"
    log_path.write_text("", encoding="utf-8")

    def say(text: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {text}"
        print(line, flush=True)
        with open(log_path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
    return say


def _write_model(model: Any, out: Path, recipe: ExternalRecipe, base: Any, parts: dict[str, list[EyePhoto]],
                 summary: dict[str, Any], seed: int, threads: int) -> None:
    """model.keras + card (JSON and Markdown, hash included), split.csv, training.json."""
    from ..core.eye_input import EYE_PREPROCESSING_ID
    from .export import save_model
    from .train import machine_description

    held = summary["comparison"][summary["shipped"]]["held_out"]
    card = {
        "name": "eyescreen-external", "version": "1.0.0", "intended_use": INTENDED_USE,
        "modality": "external_eye", "input_size": recipe.input_size,
        "input": "float32 RGB 0-255, (N, S, S, 3): one eye, core.eye_input.square_eye (the model rescales inside)",
        "preprocessing": EYE_PREPROCESSING_ID, "outputs": [OUTPUT], "classes": list(CLASSES),
        "output_sources": {OUTPUT: "softmax over " + " / ".join(CLASSES),
                           "p_checkup": "1 - p(normal): 'go for an eye check-up'"},
        # The card format needs referable/urgent: referable = go for an eye check-up
        # (routine); the external-eye check never makes an eye urgent.
        "operating_points": {"default": {"referable": summary["threshold_checkup"], "urgent": 1.0}},
        "default_operating_point": "default",
        "operating_point_rule": f"p_checkup threshold with sensitivity >= {CHECKUP_SENSITIVITY} on validation "
                                "pictures; urgent 1.0 = never urgent",
        "heatmap": {"feature_layer": base.feature_layer, "dense_layer": OUTPUT},
        "base": {"name": base.name, "source": base.attribution},
        "data_sources": {"external-eye": "web-collected photographs of the front of the eye from two public "
                         "repositories (cataract-web, conjunctivitis-web), no licence given, WEB LABELS (not "
                         "clinical grades; glaucoma pictures are search results, trained as 'other finding'); "
                         "research and development use only"},
        "training_data": {k: len(v) for k, v in parts.items()} | {
            "split": f"by near-duplicate group (dHash of a 9x8 grey copy, mirror included, <= "
                     f"{NEAR_DUPLICATE_BITS} bits), stratified by label, 70/15/15, seed {seed}"},
        "recipe": asdict(recipe),
        "networks": {"network1": "frozen base + new dense head (feature extraction)",
                     "network2": "block6, block7, top_ unfrozen (BatchNorm frozen), augmented, low learning rate",
                     "shipped": summary["shipped"]},
        "held_out": held,
        "comparison": {k: {"validation_auc_checkup": v["validation_auc_checkup"],
                           "held_out_auc_checkup": v["held_out"]["auc_checkup"],
                           "held_out_accuracy_4class": v["held_out"]["accuracy_4class"]}
                       for k, v in summary["comparison"].items()},
        "training_time_minutes": summary["minutes"],
        "training_machine": machine_description(threads),
        "licence": "Model weights: research and demonstration only (training pictures carry no licence). "
                   "Code: Apache-2.0.",
    }
    import keras

    # a fresh view of the same layers carries no optimizer state (AdamW moments would double the file)
    save_model(keras.Model(model.inputs, model.output, name="eyescreen_external"), out, card)
    with open(out / "split.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file", "label", "group", "part"])
        for part, photos in parts.items():
            w.writerows([p.path.name, p.label, p.group, part] for p in photos)
    (out / "training.json").write_text(json.dumps(summary, indent=1, default=_np) + "\n", encoding="utf-8")


def _np(x: Any) -> Any:
    return x.tolist() if isinstance(x, np.ndarray) else str(x)


# --------------------------------------------------------------------------- model card for people


def write_card_markdown(folder: Path) -> Path:
    """``model_card.md`` from the JSON card (which stays authoritative): what the model
    is for, its web labels, Network 1 vs 2 and the held-out figures as tables."""
    from ..core.classifier import read_card

    card = read_card(folder).raw
    held = card["held_out"]
    ci = lambda r: f"{r['value']:.3f} ({r['ci95'][0]:.3f}-{r['ci95'][1]:.3f}) [{r['n'][0]}/{r['n'][1]}]"  # noqa: E731 - a one-line helper used only here
    lines = [f"# Model card: {card['name']} {card['version']}", "",
             "**Research and demonstration only. The labels are web labels, not clinical grades.**", "",
             "## Intended use", "", card["intended_use"], "",
             "## What it does", "",
             f"- Input: {card['input']}; {card['input_size']} px; preprocessing `{card['preprocessing']}`.",
             f"- Output `{card['outputs'][0]}`: softmax over {', '.join(card['classes'])}.",
             "- `p_checkup = 1 - p(normal)`; at or above "
             f"{card['operating_points']['default']['referable']:.4f} the verdict is \"Go for an eye check-up\" "
             "(routine referral, finding in words), below it \"Your eye looks healthy\" (which is never a "
             "diabetic-retinopathy screen). Never urgent, never an ICDR grade.",
             f"- Operating point: {card['operating_point_rule']}.",
             f"- Weights SHA-256 `{card['weights_sha256']}`; ONNX twin `{card.get('runtime_file', '-')}` "
             f"(SHA-256 `{card.get('runtime_sha256', '-')}`, max |ONNX - Keras| "
             f"{card.get('runtime_check', {}).get('max_abs_diff_vs_keras', float('nan')):.1e}).", "",
             "## Data", "", *[f"- **{k}**: {v}" for k, v in card["data_sources"].items()],
             f"- Split: {card['training_data']['split']}: train {card['training_data']['train']}, "
             f"validation {card['training_data']['val']}, held-out {card['training_data']['test']} pictures.", "",
             "## Network 1 vs Network 2 (held-out pictures)", "",
             "| network | how | validation AUC | held-out AUC of p_checkup | held-out 4-class accuracy |",
             "|---|---|---|---|---|",
             *[f"| {k}{' (shipped)' if k == card['networks']['shipped'] else ''} | {card['networks'][k]} | "
               f"{v['validation_auc_checkup']:.3f} | {v['held_out_auc_checkup']:.3f} | "
               f"{v['held_out_accuracy_4class']:.3f} |" for k, v in card["comparison"].items()], "",
             f"## Shipped network on {held['photographs']} held-out pictures ({held['groups']} duplicate groups)", "",
             f"- AUC of p_checkup (check-up vs normal): {held['auc_checkup']:.3f} "
             f"(95% CI {held['auc_checkup_ci95'][0]:.3f}-{held['auc_checkup_ci95'][1]:.3f}, bootstrap over groups)",
             f"- 4-class accuracy: {held['accuracy_4class']:.3f}; check-up vs normal accuracy at the operating "
             f"point: {held['accuracy_checkup']:.3f}",
             f"- Sensitivity for a check-up: {ci(held['sensitivity'])}; specificity: {ci(held['specificity'])}", "",
             "Confusion table (rows: web label, columns: predicted):", "",
             "| | " + " | ".join(held["confusion"]["labels"]) + " |", "|---" * (len(CLASSES) + 1) + "|",
             *[f"| {lab} | " + " | ".join(map(str, row)) + " |"
               for lab, row in zip(held["confusion"]["labels"], held["confusion"]["rows_true_columns_predicted"])],
             "", "## Known limits", "",
             "- Web pictures, web labels: some 'normal' eyes are visibly red; 'glaucoma' pictures (trained as "
             "'other finding') are whatever a search engine returned and are rarely told apart from cataract.",
             "- Close-ups from the web, not phone selfies: eye crops from a selfie are smaller and softer than the "
             "training pictures.",
             "- Not a diabetic-retinopathy screen: a fundus photograph is needed for that.", "",
             f"Training: {card['training_time_minutes']} min on {card['training_machine']}. "
             f"Licence: {card['licence']}", ""]
    path = Path(folder) / "model_card.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
