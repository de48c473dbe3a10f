"""The photographs a training run learns from: manifests read, split by patient,
preprocessed (cached) and kept where the gate passes them, with their targets
and per-output sample weights (square-root inverse frequency, maculopathy masked
where a collection does not grade it), and the camera copies when the recipe
asks for them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from . import data as D
from .recipes import HEADS, Progress, TrainConfig


@dataclass
class TrainingData:
    """Preprocessed images and targets of the two sides of the patient split."""

    split: dict[str, list[D.Sample]]
    train_samples: list[D.Sample]
    val_samples: list[D.Sample]
    train_images: np.ndarray
    val_images: np.ndarray
    train_targets: dict[str, np.ndarray]
    val_targets: dict[str, np.ndarray]
    train_weights: dict[str, np.ndarray]
    dropped: dict[str, int]
    gated: dict[str, int]
    version: str = ""           # the image cache's front-end version: features are keyed by it
    val_weights: dict[str, np.ndarray] = field(default_factory=dict)   # masks unknown maculopathy
    train_copies: np.ndarray | None = None     # camera copies (training.camera_aug), same order as train
    copy_used: np.ndarray | None = None        # False where the gate refused the copy (original stands in)
    copies_version: str = ""


def prepare_data(config: TrainConfig, progress: Progress) -> TrainingData:
    """Read manifests, split by patient, preprocess (cached), keep what the gate passes."""
    samples, _ = D.load_samples(config.data, drop_quality=())  # dropped after the split, per side
    if config.recipe.start_from:     # fine-tuning a model: exactly its split, so its validation stays unseen
        saved = D.read_split(Path(config.recipe.start_from) / "split.csv")
        split = {part: D.select_part(samples, saved, part) for part in ("train", "val")}
    else:
        split = D.patient_split(samples, config.val_fraction, config.seed)
    progress.say("photographs:\n" + D.describe(samples))
    cache = D.ImageCache(config.recipe.input_size)
    parts: dict[str, tuple[list[D.Sample], np.ndarray]] = {}
    gated: dict[str, int] = {}
    dropped: dict[str, int] = {}
    for part in ("train", "val"):
        images, verdicts = cache.load(split[part], progress=lambda i, n: progress.say(f"  preprocessed {i}/{n}"))
        keep = [i for i, (s, v) in enumerate(zip(split[part], verdicts))
                if v.status == "ok" and s.quality not in config.drop_quality]
        gated[part] = sum(v.status != "ok" for v in verdicts)
        dropped[part] = sum(s.quality in config.drop_quality for s in split[part])
        parts[part] = ([split[part][i] for i in keep], images[keep])
    progress.say(f"cache: {cache.hits} hits, {cache.misses} preprocessed; train {len(parts['train'][0])}, "
                 f"val {len(parts['val'][0])} photographs (gate refused {gated}, quality-dropped {dropped})")
    train_s, val_s = parts["train"][0], parts["val"][0]
    val_mac = np.array([s.maculopathy >= 0 for s in val_s], np.float32)
    data = TrainingData(split, train_s, val_s, parts["train"][1], parts["val"][1], training_targets(train_s),
                        training_targets(val_s), sample_weights(train_s, config.recipe.collection_balance),
                        dropped, gated, cache.version,
                        val_weights={k: (val_mac if k == "maculopathy" else np.ones(len(val_s), np.float32))
                                     for k in HEADS})
    if config.recipe.camera_copies:
        from .camera_aug import CameraCopies

        t0 = time.time()
        copies = CameraCopies(config.recipe.input_size)
        data.train_copies, data.copy_used = copies.load(
            train_s, data.train_images, index=0, workers=config.threads,
            progress=lambda i, n: progress.say(f"  camera copies {i}/{n}"))
        data.copies_version = copies.version
        progress.say(f"camera copies ready in {time.time() - t0:.0f} s: {int(data.copy_used.sum())} used, "
                     f"{int((~data.copy_used).sum())} refused by the gate (their originals stand in)")
    return data


def sample_weights(samples: Sequence[D.Sample], collection_balance: float = 0.0) -> dict[str, np.ndarray]:
    """Per-output sample weights (grade, referable, urgent, maculopathy): square-root
    inverse class frequency, times an optional collection factor, normalised to mean 1
    over the photographs that carry the label. Maculopathy's weight is 0 where the
    collection does not grade it (the masked loss)."""
    coll = np.array([s.collection for s in samples])
    factor = np.ones(len(samples))
    for c in np.unique(coll):
        factor[coll == c] = (len(samples) / (len(np.unique(coll)) * (coll == c).sum())) ** collection_balance
    out = {}
    for name, labels in (("grade", [s.grade for s in samples]), ("referable", [s.referable for s in samples]),
                         ("urgent", [s.urgent for s in samples])):
        out[name] = _balanced(np.array(labels)) * factor
    mac = np.array([s.maculopathy for s in samples])
    known = mac >= 0
    out["maculopathy"] = np.zeros(len(samples))
    if known.any():
        out["maculopathy"][known] = _balanced(mac[known]) * factor[known]
    return {k: (v / v[v > 0].mean() if (v > 0).any() else v).astype(np.float32) for k, v in out.items()}


def training_targets(samples: Sequence[D.Sample]) -> dict[str, np.ndarray]:
    """``data.targets`` with unknown maculopathy (-1) set to 0: those rows weigh 0 in its loss."""
    t = D.targets(samples)
    t["maculopathy"] = np.maximum(t["maculopathy"], 0.0)
    return t


def _balanced(labels: np.ndarray) -> np.ndarray:
    classes, counts = np.unique(labels, return_counts=True)
    w = {c: np.sqrt(len(labels) / (len(classes) * n)) for c, n in zip(classes, counts)}
    return np.array([w[x] for x in labels], np.float64)
