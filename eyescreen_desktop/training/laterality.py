"""Fit and measure the laterality check (core.laterality): which eye, from the optic disc's side.

``python -m eyescreen_desktop.training.laterality [--datasets ../shared/datasets] [--per-part N]``

Reproducible (fixed seeds, no network, numpy only), a couple of minutes on two cores:

* **Patients.** The grader's own split (``models/eyescreen-dr/split.csv``, made
  by :func:`training.data.patient_split`) decides: its validation patients are
  the held-out patients this script reports on and never fits or tunes on.
  Its training patients are split again by patient (:func:`patient_split`,
  25%) into *fit* (the weights) and *tune* (the warning level).
* **Collections.** The weights and the warning level are fitted on fundus-dr
  and odir-384, raw camera photographs in the standard orientation, like a
  clinic's camera. eyepacs-256 is measured but not fitted on: part of EyePACS
  is photographed inverted (as through an indirect ophthalmoscope), so its eye
  label does not say on which side the disc appears. idrid has no eye label:
  only how often the check is confident is reported.
* **Warning level.** The lowest confidence at which, on the tune patients of
  every fitted collection, at most ``--max-false-warnings`` (2%) of correctly
  filed photographs would be warned about (the worst collection decides).
* **Subsampling.** At most ``--per-part`` photographs per collection and part
  (fixed seed) are read, to keep the run short on a shared machine; the
  numbers say how many were used.

Writes ``models/eyescreen-laterality/laterality.json`` (the weights, the
warning level, every figure) and prints the per-collection table that
docs/laterality.md shows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..core import laterality as L
from ..core.imageio import read_image
from ..core.paths import models_dir
from .data import Sample, load_samples, patient_split, read_split

COLLECTIONS = ("fundus-dr", "odir-384", "eyepacs-256", "idrid")
FIT_COLLECTIONS = ("fundus-dr", "odir-384")
MAX_SIDE = 512          # decode size (the check runs on such a copy in the window too)
L2 = 1e-2


def samples_by_part(datasets: Path, split_csv: Path, seed: int) -> dict[str, list[Sample]]:
    """fit / tune (grader's training patients, re-split by patient) and test (grader's validation patients)."""
    samples, _dropped = load_samples([datasets / c / "labels.csv" for c in COLLECTIONS])
    split = read_split(split_csv)
    train = [s for s in samples if split.get(s.key) == "train"]
    test = [s for s in samples if split.get(s.key) == "val"]
    inner = patient_split(train, val_fraction=0.25, seed=seed)
    return {"fit": inner["train"], "tune": inner["val"], "test": test}


def subsample(samples: Sequence[Sample], per_part: int, seed: int) -> list[Sample]:
    """At most ``per_part`` photographs per collection, whole patients, fixed seed."""
    by_collection: dict[str, dict[str, list[Sample]]] = defaultdict(lambda: defaultdict(list))
    for s in samples:
        by_collection[s.collection][s.patient].append(s)
    chosen: list[Sample] = []
    for collection in sorted(by_collection):
        patients = sorted(by_collection[collection])
        random.Random(f"{seed}:{collection}").shuffle(patients)
        taken: list[Sample] = []
        for p in patients:
            if len(taken) >= per_part:
                break
            taken.extend(by_collection[collection][p])
        chosen.extend(taken)
    return chosen


def features(samples: Sequence[Sample]) -> np.ndarray:
    """:func:`core.laterality.disc_features` of every photograph (decoded at MAX_SIDE)."""
    out = np.zeros((len(samples), len(L.FEATURES)))
    for i, s in enumerate(samples):
        out[i] = L.disc_features(read_image(s.path, max_side=MAX_SIDE))
        if (i + 1) % 200 == 0:
            print(f"  {i + 1}/{len(samples)} photographs", file=sys.stderr, flush=True)
    return out


def fit_logistic(x: np.ndarray, right: np.ndarray, l2: float = L2, steps: int = 50) -> np.ndarray:
    """Logistic regression without intercept (Newton steps, L2 on the weights):
    odd cues and no intercept make a mirrored picture exactly the other side."""
    w = np.zeros(x.shape[1])
    y = right.astype(np.float64)
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -40, 40)))
        grad = x.T @ (p - y) / len(y) + l2 * w
        hess = (x.T * (p * (1 - p))) @ x / len(y) + l2 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def false_warning_rate(p_right: np.ndarray, right: np.ndarray, level: float) -> float:
    """Share of correctly filed photographs the check would call the other eye at ``level`` or above."""
    other = np.where(right, 1.0 - p_right, p_right)
    return float((other >= level).mean()) if len(other) else 0.0


def caught_rate(p_right: np.ndarray, right: np.ndarray, level: float) -> float:
    """Share of photographs filed under the wrong eye (each one, swapped) that would be warned about."""
    own = np.where(right, p_right, 1.0 - p_right)
    return float((own >= level).mean()) if len(own) else 0.0


def choose_level(p_right: np.ndarray, right: np.ndarray, collections: np.ndarray, fitted: Sequence[str],
                 max_false: float) -> float:
    """Lowest confidence level (0.5-0.999) at which every fitted collection stays at or under ``max_false``."""
    for level in np.round(np.arange(0.5, 1.0, 0.005), 3):
        if all(false_warning_rate(p_right[collections == c], right[collections == c], level) <= max_false
               for c in fitted):
            return float(level)
    return 0.999


def table(rows: list[dict[str, object]], level: float) -> str:
    """The markdown table of docs/laterality.md."""
    head = ("| collection | photographs | patients | accuracy | confident "
            f"(≥ {level:.3f}) | false warnings | wrong-eye filings caught |\n|---|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        if r["labelled"]:
            lines.append(f"| {r['collection']} | {r['photographs']} | {r['patients']} | {r['accuracy']:.1%} | "
                         f"{r['confident']:.1%} | {r['false_warnings']:.1%} | {r['caught']:.1%} |")
        else:
            lines.append(f"| {r['collection']} (no eye label) | {r['photographs']} | {r['patients']} | n/a | "
                         f"{r['confident']:.1%} | n/a | n/a |")
    return head + "\n".join(lines)


def measure(samples: Sequence[Sample], p: np.ndarray, level: float) -> list[dict[str, object]]:
    """Per-collection figures on ``samples`` (photographs, patients, accuracy, warning rates)."""
    rows = []
    for c in COLLECTIONS:
        idx = [i for i, s in enumerate(samples) if s.collection == c]
        if not idx:
            continue
        pc = p[idx]
        labelled = all(samples[i].eye in ("L", "R") for i in idx)
        right = np.array([samples[i].eye == "R" for i in idx])
        row: dict[str, object] = {"collection": c, "photographs": len(idx), "labelled": labelled,
                                  "patients": len({samples[i].patient for i in idx}),
                                  "confident": float((np.maximum(pc, 1 - pc) >= level).mean())}
        if labelled:
            row.update(accuracy=float(((pc >= 0.5) == right).mean()),
                       false_warnings=false_warning_rate(pc, right, level), caught=caught_rate(pc, right, level))
        rows.append(row)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    ap.add_argument("--split", type=Path, default=models_dir() / "eyescreen-dr" / "split.csv")
    ap.add_argument("--out", type=Path, default=Path("models/eyescreen-laterality") / L.CARD_FILE)
    ap.add_argument("--per-part", type=int, default=400, help="photographs per collection and part (subsample)")
    ap.add_argument("--max-false-warnings", type=float, default=0.02)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args(argv)

    parts = {k: subsample(v, args.per_part, args.seed) for k, v in samples_by_part(args.datasets, args.split,
                                                                                   args.seed).items()}
    parts["fit"] = [s for s in parts["fit"] if s.collection in FIT_COLLECTIONS]
    feats = {}
    for name, samples in parts.items():
        print(f"{name}: {len(samples)} photographs", file=sys.stderr, flush=True)
        feats[name] = features(samples)
    right_fit = np.array([s.eye == "R" for s in parts["fit"]])
    w = fit_logistic(feats["fit"], right_fit)
    model = L.LateralityModel(tuple(w), 0.0)
    p = {name: np.array([model.p_right(f) for f in feats[name]]) for name in parts}
    tune = parts["tune"]
    level = choose_level(p["tune"], np.array([s.eye == "R" for s in tune]),
                         np.array([s.collection for s in tune]), FIT_COLLECTIONS, args.max_false_warnings)
    measured = {"held_out": measure(parts["test"], p["test"], level), "tune": measure(tune, p["tune"], level),
                "fit_collections": list(FIT_COLLECTIONS), "per_part": args.per_part, "seed": args.seed,
                "split": "models/eyescreen-dr/split.csv (val = held out; train re-split 75/25 by patient)",
                "max_false_warnings": args.max_false_warnings, "decode_max_side": MAX_SIDE,
                "fitted_on": len(parts["fit"]), "date": dt.date.today().isoformat()}
    card = L.card_dict(w, level, "1.0.0", measured)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")
    print(f"weights {dict(zip(L.FEATURES, np.round(w, 3)))}; warn at confidence >= {level:.3f}")
    print("\nHeld-out patients:\n" + table(measured["held_out"], level))  # type: ignore[arg-type]  # measured figures are filled in above
    print("\nTune patients (the warning level was chosen here):\n" + table(measured["tune"], level))  # type: ignore[arg-type]  # measured figures are filled in above
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
