"""The fine-tuning input pipeline: shuffled tf.data batches (a new order every
epoch, fixed by the seed), each photograph drawn as itself or as its camera copy,
then augmented on the fly (flips, one affine warp, brightness, contrast, gamma)
with the black surround kept black, so training photographs look like
preprocessed ones."""

from __future__ import annotations

from typing import Any

import numpy as np


def make_dataset(images: np.ndarray, targets: dict[str, np.ndarray], weights: dict[str, np.ndarray],
                 batch: int, seed: int, augment: dict[str, float], alternates: np.ndarray | None = None,
                 alternate_used: np.ndarray | None = None, epoch: int | None = None, limit: int = 0) -> Any:
    """tf.data pipeline: shuffled batches (new order every epoch, fixed by ``seed``),
    augmented on the fly, prefetched while the model trains. With ``alternates``
    (camera copies, same order as ``images``), each photograph is drawn as itself or
    as its copy with equal chance, every epoch anew (only where ``alternate_used``).

    With ``epoch`` the dataset is that one epoch alone, its order, copies and
    augmentation a function of (``seed``, ``epoch``) only: a run resumed from a
    checkpoint draws exactly the epoch it would have drawn. ``limit`` keeps the
    first ``limit`` photographs of each epoch's order (a fresh subset every epoch)."""
    import tensorflow as tf

    rng = np.random.default_rng(seed if epoch is None else [seed, epoch])
    n, size = len(images), images.shape[1]
    drawn = min(n, limit) if limit > 0 else n
    counter = iter(range(0 if epoch is None else epoch * int(np.ceil(drawn / batch)), 1 << 62))
    can_swap = np.zeros(n, bool) if alternates is None else (
        np.ones(n, bool) if alternate_used is None else np.asarray(alternate_used, bool))

    def batches():
        order = rng.permutation(n)
        swap = can_swap & (rng.random(n) < 0.5)
        order = order[:drawn]
        for start in range(0, drawn, batch):
            idx = np.sort(order[start:start + batch])
            x = images[idx]
            if swap[idx].any():
                x = x.copy()
                x[swap[idx]] = alternates[idx[swap[idx]]]
            yield (x, {k: v[idx] for k, v in targets.items()},
                   {k: v[idx] for k, v in weights.items()}, np.int64(next(counter)))

    sig = (tf.TensorSpec((None, size, size, 3), tf.uint8),
           {k: tf.TensorSpec((None, *v.shape[1:]), tf.float32) for k, v in targets.items()},
           {k: tf.TensorSpec((None,), tf.float32) for k in weights},
           tf.TensorSpec((), tf.int64))
    ds = tf.data.Dataset.from_generator(batches, output_signature=sig)
    ds = ds.apply(tf.data.experimental.assert_cardinality(int(np.ceil(drawn / batch))))
    @tf.autograph.experimental.do_not_convert
    def augment_step(x: Any, y: Any, w: Any, k: Any) -> tuple[Any, Any, Any]:
        return augment_batch(x, tf.stack([tf.constant(seed, tf.int64), k]), augment), y, w

    ds = ds.map(augment_step, num_parallel_calls=1)
    return ds.prefetch(2)


def augment_batch(images: Any, seed: Any, ranges: dict[str, float]) -> Any:
    """Random flips, one affine warp (rotation, shift, zoom), brightness/contrast
    gains and (when ``ranges`` has it) a gamma per photograph; the black surround stays black so training photographs
    look like preprocessed ones. Deterministic for a given ``seed`` pair."""
    import tensorflow as tf

    x = tf.cast(images, tf.float32)
    n = tf.shape(x)[0]
    size = tf.cast(tf.shape(x)[1], tf.float32)
    u = lambda i, lo, hi: tf.random.stateless_uniform((n,), seed + i, lo, hi)  # noqa: E731 - a one-line helper used only here
    lit = tf.cast(tf.reduce_max(x, axis=-1, keepdims=True) > 0, tf.float32)
    x = tf.where(u(1, 0, 1)[:, None, None, None] < 0.5, x[:, :, ::-1], x)
    x = tf.where(u(2, 0, 1)[:, None, None, None] < 0.5, x[:, ::-1], x)
    x = _affine(tf.concat([x, lit], axis=-1), size,
                u(3, -1, 1) * ranges["rotation"] * np.pi / 180,
                1 + u(4, -1, 1) * ranges["zoom"],
                u(5, -1, 1) * ranges["shift"] * size, u(6, -1, 1) * ranges["shift"] * size)
    x, lit = x[..., :3], tf.cast(x[..., 3:] > 0.5, tf.float32)
    gain = (1 + u(7, -1, 1) * ranges["brightness"])[:, None, None, None]
    contrast = (1 + u(8, -1, 1) * ranges["contrast"])[:, None, None, None]
    mean = tf.reduce_sum(x * lit, axis=[1, 2], keepdims=True) / tf.maximum(tf.reduce_sum(lit, [1, 2], True), 1.0)
    x = ((x - mean) * contrast + mean) * gain
    if ranges.get("gamma", 0.0) > 0:
        gamma = tf.exp(u(9, -1, 1) * ranges["gamma"])[:, None, None, None]
        x = 255.0 * tf.pow(tf.clip_by_value(x, 0, 255) / 255.0, gamma)
    return tf.clip_by_value(x, 0, 255) * lit


def _affine(x: Any, size: Any, angle: Any, zoom: Any, dx: Any, dy: Any) -> Any:
    """One bilinear warp: rotate by ``angle`` and scale by ``zoom`` about the centre,
    then shift by (dx, dy) pixels; outside the photograph is black."""
    import tensorflow as tf

    c = size / 2.0
    cos, sin = tf.cos(angle) / zoom, tf.sin(angle) / zoom
    # output (x, y) -> input: A @ ([x, y] - c - d) + c
    a0, a1, b0, b1 = cos, -sin, sin, cos
    tx = c - a0 * (c + dx) - a1 * (c + dy)
    ty = c - b0 * (c + dx) - b1 * (c + dy)
    zeros = tf.zeros_like(angle)
    transforms = tf.stack([a0, a1, tx, b0, b1, ty, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=x, transforms=transforms, output_shape=tf.shape(x)[1:3], fill_value=0.0,
        interpolation="BILINEAR", fill_mode="CONSTANT")
