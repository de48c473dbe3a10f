"""Paired scorings of a trained model's validation patients: does a change help?

``python -m eyescreen_desktop.training.paired --data ... --split models/eyescreen-dr/split.csv
--score base=models/eyescreen-dr --score base-flip=models/eyescreen-dr+flip
--score fix=runs/fix --ensemble both=base,fix --baseline base --out runs/paired``

Every scoring grades the same photographs: the validation patients of the split
file that the quality gate passes and the collection did not grade ``reject``
(the set a training run validates on), through the product's own front end
(``data.ImageCache``) and ``core.classifier.Classifier`` (ONNX where the model
ships it). A scoring is one model folder, optionally at another input size than
its card's (``@512``: the Keras model rebuilt at that size, the test-time
resolution check) and optionally averaged with its horizontal mirror (``+flip``:
test-time augmentation); an ensemble averages the raw outputs of scorings.

For each scoring the default operating point is chosen by the one rule
(``selection.operating_points``, as a training run chooses its card's), so
sensitivity, specificity and urgent eyes in annual compare at like points; the
maculopathy output is read at the threshold that keeps 95% specificity on the
labelled eyes of each collection (at most 5% false flags). Each scoring is then
compared with the baseline by a paired patient bootstrap of the AUC difference
(``core.metrics.paired_auc_difference``): a change is kept when its 95% interval
excludes 0. The raw outputs are saved, so adding a scoring later costs only that
scoring.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from . import data as D
from . import metrics as M
from .selection import maculopathy_threshold, operating_points

HEAD_KEYS = ("grade", "referable", "urgent", "maculopathy")


@dataclass(frozen=True)
class Scoring:
    """One way of scoring the photographs: a model at a size, with or without flips,
    or the average of other scorings (``members``)."""

    name: str
    folder: Path | None = None
    size: int | None = None
    flip: bool = False
    members: tuple[str, ...] = ()


def parse_scoring(text: str) -> Scoring:
    """``NAME=FOLDER[@SIZE][+flip]``."""
    name, _, rest = text.partition("=")
    if not name or not rest:
        raise argparse.ArgumentTypeError(f"{text!r}: write NAME=FOLDER[@SIZE][+flip]")
    flip = rest.endswith("+flip")
    rest = rest.removesuffix("+flip")
    folder, _, size = rest.partition("@")
    return Scoring(name, Path(folder), int(size) if size else None, flip)


def parse_ensemble(text: str) -> Scoring:
    """``NAME=A,B``: the average of scorings A and B."""
    name, _, members = text.partition("=")
    if not name or "," not in members:
        raise argparse.ArgumentTypeError(f"{text!r}: write NAME=SCORING,SCORING")
    return Scoring(name, members=tuple(members.split(",")))


def validation_photographs(data: Sequence[Path], split_file: Path, size: int,
                           drop_quality: Sequence[str] = D.DEFAULT_DROP_QUALITY) -> list[D.Sample]:
    """The split's validation photographs that a training run validates on: those the
    gate passes (its verdict at ``size``, the baseline's input) and not graded ``reject``."""
    samples, _ = D.load_samples(data, drop_quality=())
    val = D.select_part(samples, D.read_split(split_file), "val")
    cache = D.ImageCache(size)
    return [s for s in val if s.quality not in drop_quality and cache.get(s.path).status == "ok"]


def model_runner(scoring: Scoring, backend: str = "auto", base_factory: Any = None
                 ) -> tuple[Callable[[np.ndarray], dict[str, np.ndarray]], int]:
    """A function from preprocessed images to raw outputs, and its input size: the
    product's Classifier at the card's size, else the Keras model rebuilt at ``size``."""
    from ..core.classifier import Classifier, read_card

    assert scoring.folder is not None
    card = read_card(scoring.folder)
    if scoring.size in (None, card.input_size):
        clf = Classifier.load(scoring.folder, backend=backend)
        return (lambda x: {k: v for k, v in clf.raw_outputs(x).items() if k in HEAD_KEYS}), card.input_size
    from .model import _tensorflow, rebuild_at_size

    _tensorflow(2)
    model, _ = rebuild_at_size(scoring.folder, scoring.size, base_factory)
    return (lambda x: {k: np.asarray(v) for k, v in model.predict_on_batch(x).items()}), int(scoring.size)


def score(scoring: Scoring, samples: Sequence[D.Sample], backend: str = "auto",
          batch: int = 16, base_factory: Any = None, mirrored: bool = False) -> tuple[dict[str, np.ndarray], float]:
    """Raw outputs for every photograph (mirror-averaged with ``flip``; of the mirror
    images alone with ``mirrored``) and the milliseconds per photograph it took."""
    run, size = model_runner(scoring, backend, base_factory)
    cache = D.ImageCache(size)
    parts: list[dict[str, np.ndarray]] = []
    t0 = time.perf_counter()
    for start in range(0, len(samples), batch):
        x = np.stack([cache.get(s.path).image for s in samples[start:start + batch]]).astype(np.float32)
        if mirrored:
            x = np.ascontiguousarray(x[:, :, ::-1])
        out = run(x)
        if scoring.flip:
            mirrored = run(np.ascontiguousarray(x[:, :, ::-1]))
            out = {k: (v + mirrored[k]) / 2 for k, v in out.items()}
        parts.append(out)
    ms = 1000 * (time.perf_counter() - t0) / max(1, len(samples))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}, ms


def average(outputs: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The ensemble: raw outputs averaged (the referable probability, a sum of grade
    probabilities, is then the average of the members' referable probabilities)."""
    keys = set.intersection(*(set(o) for o in outputs))
    return {k: np.mean([o[k] for o in outputs], axis=0) for k in sorted(keys)}


def maculopathy_at_false_flags(outputs: dict[str, np.ndarray], samples: Sequence[D.Sample]) -> dict[str, Any]:
    """Per labelled collection and pooled: the share of oedema eyes flagged at the
    threshold that keeps 95% specificity (``selection.maculopathy_threshold``)."""
    if "maculopathy" not in outputs:
        return {}
    p = np.ravel(outputs["maculopathy"])
    y = np.array([s.maculopathy for s in samples])
    colls = np.array([s.collection for s in samples])
    result = {}
    for name, m in [("all labelled", np.ones(len(y), bool)), *((c, colls == c) for c in sorted(set(colls)))]:
        t = maculopathy_threshold(y[m], p[m])
        if t is None:
            continue
        yes, no = m & (y == 1), m & (y == 0)
        result[name] = {"sensitivity": float((p[yes] >= t).mean()), "false_flags": float((p[no] >= t).mean()),
                        "threshold": t, "eyes": int(yes.sum())}
    return result


def summarise(outputs: dict[str, np.ndarray], samples: Sequence[D.Sample]) -> dict[str, Any]:
    """Default point by the one rule, its metrics (pooled and per collection, AUC CIs
    by patient) and the maculopathy sensitivity at <= 5% false flags."""
    ops, metrics = operating_points(outputs, samples)
    return {"default": ops["default"], "validation": metrics,
            "maculopathy_at_5pct": maculopathy_at_false_flags(outputs, samples)}


def referable_probability(outputs: dict[str, np.ndarray]) -> np.ndarray:
    """p_referable as the classifier computes it (head, else the sum of grade probabilities)."""
    from ..core.classifier import predictions_from_outputs

    return np.array([p.p_referable for p in predictions_from_outputs(outputs)])


def compare(a: dict[str, np.ndarray], b: dict[str, np.ndarray], samples: Sequence[D.Sample],
            n_boot: int) -> dict[str, list[float]]:
    """Paired referable-AUC difference b - a with its 95% CI, pooled and per collection."""
    y = np.array([s.referable for s in samples])
    groups = np.array([s.patient for s in samples])
    colls = np.array([s.collection for s in samples])
    pa, pb = referable_probability(a), referable_probability(b)
    out = {"all": list(M.paired_auc_difference(y, pa, pb, groups, n_boot))}
    for c in sorted(set(colls)):
        m = colls == c
        out[c] = list(M.paired_auc_difference(y[m], pa[m], pb[m], groups[m], n_boot))
    return out


def _saved(out: Path, scoring: Scoring, samples: Sequence[D.Sample]) -> dict[str, np.ndarray] | None:
    f = out / "scores" / f"{scoring.name}.npz"
    meta = out / "scores" / f"{scoring.name}.json"
    if not (f.exists() and meta.exists()):
        return None
    if json.loads(meta.read_text()) != _identity(scoring, samples):
        return None
    with np.load(f) as z:
        return {k: z[k] for k in z.files}


def _identity(scoring: Scoring, samples: Sequence[D.Sample]) -> dict[str, Any]:
    from ..core.classifier import read_card

    card = read_card(scoring.folder) if scoring.folder else None
    return {"folder": str(scoring.folder), "weights_sha256": card.weights_sha256 if card else None,
            "size": scoring.size, "flip": scoring.flip, "photographs": [s.key for s in samples]}


def run_all(scorings: Sequence[Scoring], ensembles: Sequence[Scoring], samples: Sequence[D.Sample], out: Path,
            baseline: str, pairs: Sequence[tuple[str, str]], n_boot: int, backend: str,
            base_factory: Any = None) -> dict[str, Any]:
    """Score (or reuse saved scores), summarise each scoring and compare the pairs
    (``base_factory`` builds a rebuilt scoring's base: tests pass a tiny one)."""
    (out / "scores").mkdir(parents=True, exist_ok=True)
    outputs: dict[str, dict[str, np.ndarray]] = {}
    timing: dict[str, float] = {}
    for s in scorings:
        found = _saved(out, s, samples)
        if found is None:
            twin = next((outputs[t.name] for t in scorings if t.name in outputs and s.flip and not t.flip
                         and (t.folder, t.size) == (s.folder, s.size)), None)
            if twin is not None:     # the unflipped pass is done: only the mirror images are new
                mirror, timing[s.name] = score(Scoring(s.name, s.folder, s.size), samples, backend,
                                               base_factory=base_factory, mirrored=True)
                found = average([twin, mirror])
            else:
                found, timing[s.name] = score(s, samples, backend, base_factory=base_factory)
            np.savez(out / "scores" / f"{s.name}.npz", **found)
            (out / "scores" / f"{s.name}.json").write_text(json.dumps(_identity(s, samples)))
            print(f"scored {s.name}: {timing[s.name]:.0f} ms per photograph", flush=True)
        outputs[s.name] = found
    for e in ensembles:
        outputs[e.name] = average([outputs[m] for m in e.members])
    wanted = list(pairs) or [(baseline, name) for name in outputs if name != baseline]
    return {"photographs": len(samples), "patients": len({s.patient for s in samples}),
            "scorings": {n: summarise(o, samples) for n, o in outputs.items()},
            "definitions": {s.name: _describe(s) for s in [*scorings, *ensembles]},
            "differences": {f"{b} - {a}": compare(outputs[a], outputs[b], samples, n_boot) for a, b in wanted},
            "scoring_ms_per_photograph": timing, "bootstrap": n_boot}


def _describe(s: Scoring) -> str:
    if s.members:
        return "average of " + " and ".join(s.members)
    return f"{s.folder}" + (f" at {s.size} px" if s.size else "") + (" + horizontal flip" if s.flip else "")


def markdown(result: dict[str, Any]) -> str:
    """The tables of docs/hires-experiment.md."""
    lines = [f"{result['photographs']} validation photographs, {result['patients']} patients; "
             f"{result['bootstrap']} paired patient-bootstrap draws.", "",
             "| scoring | collection | photos | referable AUC (95% CI) | sens / spec at default | urgent AUC "
             "| urgent in annual | maculopathy sens at <=5% false flags |", "|---|---|---|---|---|---|---|---|"]
    for name, r in result["scorings"].items():
        v, mac = r["validation"], r["maculopathy_at_5pct"]
        lo, hi = v["referable_auc_ci"]
        lines.append(f"| {name} | all | {v['photographs']} | {v['referable_auc']:.3f} ({lo:.3f}-{hi:.3f}) "
                     f"| {v['referable_sensitivity']['value']:.2f} / {v['referable_specificity']['value']:.2f} "
                     f"| {v['urgent_auc']:.3f} | {v['urgent_in_annual']} | {_mac(mac.get('all labelled'))} |")
        for coll, m in v["per_collection"].items():
            lo, hi = m["referable_auc_ci95"]
            lines.append(f"| {name} | {coll} | {m['photographs']} | {m['referable_auc']:.3f} ({lo:.3f}-{hi:.3f}) "
                         f"| {m['referable_sensitivity']:.2f} / {m['referable_specificity']:.2f} "
                         f"| {m['urgent_auc']:.3f} | {m['urgent_in_annual']} | {_mac(mac.get(coll))} |")
    colls = sorted({c for d in result["differences"].values() for c in d})
    lines += ["", "Paired referable-AUC differences (95% CI; * = excludes 0):", "",
              "| difference | " + " | ".join(colls) + " |", "|---|" + "---|" * len(colls)]
    for name, d in result["differences"].items():
        cells = [f"{d[c][0]:+.3f} ({d[c][1]:+.3f} to {d[c][2]:+.3f}){'*' if d[c][1] > 0 or d[c][2] < 0 else ''}"
                 for c in colls]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Default points (chosen by the one rule on these photographs):", ""]
    lines += [f"- {n}: referable >= {r['default']['referable']:.4f}, urgent >= {r['default']['urgent']:.4f}"
              for n, r in result["scorings"].items()]
    return "\n".join(lines) + "\n"


def _mac(m: dict[str, Any] | None) -> str:
    return "-" if not m else f"{m['sensitivity']:.2f} ({m['false_flags']:.0%} ff, {m['eyes']} eyes)"


def onnx_ms_per_photograph(folders: Sequence[Path], repeats: int = 30, batch: int = 8) -> dict[str, dict[str, float]]:
    """Median milliseconds for one photograph alone and per photograph in a batch, on each
    model's ONNX runtime at its own size (the clinic's path). The models are timed in
    turn, round after round, so a machine whose load drifts (others share it) weighs on
    all of them alike; the load average is reported beside the figures."""
    import os

    from ..core.classifier import Classifier

    models = {str(f): Classifier.load(f, backend="onnx") for f in folders}
    rng = np.random.default_rng(0)
    probes = {k: rng.integers(0, 255, (batch, c.input_size, c.input_size, 3)).astype(np.float32)
              for k, c in models.items()}
    one: dict[str, list[float]] = {k: [] for k in models}
    many: dict[str, list[float]] = {k: [] for k in models}
    for k, c in models.items():
        c.predict(probes[k])                       # warm
    for _ in range(repeats):
        for k, c in models.items():
            t = time.perf_counter()
            c.predict(probes[k][:1])
            one[k].append(time.perf_counter() - t)
            t = time.perf_counter()
            c.predict(probes[k])
            many[k].append((time.perf_counter() - t) / batch)
    return {k: {"input_size": c.input_size, "one_photograph_ms": 1000 * float(np.median(one[k])),
                f"per_photograph_in_batch_of_{batch}_ms": 1000 * float(np.median(many[k])),
                "load_average_1min": os.getloadavg()[0]} for k, c in models.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """Score, compare, write ``paired.json`` and ``paired.md`` into ``--out``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, action="append", required=True, help="labels.csv manifests (repeatable)")
    p.add_argument("--split", type=Path, required=True, help="split.csv whose validation patients are scored")
    p.add_argument("--score", type=parse_scoring, action="append", default=[], help="NAME=FOLDER[@SIZE][+flip]")
    p.add_argument("--ensemble", type=parse_ensemble, action="append", default=[], help="NAME=SCORING,SCORING")
    p.add_argument("--baseline", required=True, help="the scoring the others are compared with")
    p.add_argument("--pair", action="append", default=[], metavar="A:B",
                   help="compare B with A (repeatable; default: each scoring with the baseline)")
    p.add_argument("--bootstrap", type=int, default=2000, help="paired bootstrap draws")
    p.add_argument("--backend", default="auto", choices=("auto", "onnx", "keras"))
    p.add_argument("--timing", type=Path, action="append", default=[], metavar="FOLDER",
                   help="also time this model's ONNX runtime per photograph (repeatable; timed in turn)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    from ..core.classifier import read_card

    base = next(s for s in args.score if s.name == args.baseline)
    samples = validation_photographs(args.data, args.split, base.size or read_card(base.folder).input_size)
    pairs = [tuple(x.split(":", 1)) for x in args.pair]
    result = run_all(args.score, args.ensemble, samples, args.out, args.baseline, pairs, args.bootstrap, args.backend)
    result["onnx_timing"] = onnx_ms_per_photograph(args.timing) if args.timing else {}
    (args.out / "paired.json").write_text(json.dumps(result, indent=1, default=float) + "\n")
    (args.out / "paired.md").write_text(markdown(result))
    print(markdown(result))
    for f, t in result["onnx_timing"].items():
        print(f"{f}: {t}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
