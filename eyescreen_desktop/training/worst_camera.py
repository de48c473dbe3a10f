"""The shipped model's default operating point, chosen on the worst camera.

``python -m eyescreen_desktop.training.worst_camera [--model models/eyescreen-dr]``

Four collections, never a training patient:

* a collection the model was trained on: its validation patients (``split.csv``);
* a collection never seen in training: split by patient (seed 42) into a
  *calibration* half and a *report* half.

The thresholds come from site calibration's own rule (:mod:`core.calibration`,
worst collection wins) on the calibration photographs of all four (the
validation patients of fundus-dr and eyepacs-256, the calibration halves of the
other two); the table reports every collection's held-out photographs (the
report halves; for fundus-dr and eyepacs-256 the same validation patients,
which therefore also chose the point, as for the previous default).

Every photograph goes through the product's path once (quality gate,
preprocessing, the ONNX model); its probabilities are cached in
``.cache/worst-camera/`` keyed by the runtime file's SHA-256, so reruns are
instant and an interrupted run continues.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import random
import sys
import time
from pathlib import Path
from typing import Sequence

from ..core import calibration as C
from ..core.paths import default_model_dir, project_root, shared_datasets_dir

log = logging.getLogger(__name__)

COLLECTIONS = ("fundus-dr", "eyepacs-256", "odir-384", "idrid")
SEED = 42


def cache_file(runtime_sha256: str, gate_id: str = "") -> Path:
    """Where the probabilities of one model file behind one gate are kept (gitignored)."""
    suffix = f"-gate-{gate_id[:12]}" if gate_id else ""
    return project_root() / ".cache" / "worst-camera" / f"predictions-{runtime_sha256[:16]}{suffix}.csv"


def gate_identity() -> dict[str, str]:
    """The shipped gate that screens the photographs (its card's name, version and SHA-256):
    a retrained gate changes which photographs are graded, so it keys the cache too."""
    from ..core.classifier import sha256_file
    from ..core.gate import CARD_FILE, default_gate_dir

    card = default_gate_dir() / CARD_FILE
    if not card.is_file():
        return {}
    raw = json.loads(card.read_text(encoding="utf-8"))
    return {"name": str(raw.get("name", "")), "version": str(raw.get("version", "")),
            "card_sha256": sha256_file(card), "thresholds": raw.get("thresholds", {}),
            "training_data": raw.get("training_data", {}),
            "grader_runtime_sha256": raw.get("grader", {}).get("runtime_sha256", "")}


def collections(datasets: Path, split_csv: Path) -> dict[str, dict[str, list[C.LabelledEye]]]:
    """{collection: {"calibrate": eyes, "report": eyes}}, with no training patient anywhere."""
    with open(split_csv, newline="", encoding="utf-8") as f:
        part = {row["key"]: row["part"] for row in csv.DictReader(f)}
    out: dict[str, dict[str, list[C.LabelledEye]]] = {}
    for name in COLLECTIONS:
        eyes = C.read_labels(datasets / name / "labels.csv")
        if any(e.key in part for e in eyes):         # trained on: its validation patients only
            val = [e for e in eyes if part.get(e.key) == "val"]
            out[name] = {"calibrate": val, "report": val, "held_out": "validation patients"}  # type: ignore[dict-item]  # the result is a JSON-like dict of mixed values
        else:                                        # never seen: calibrate on one half, report the other
            cal, rep = halves(eyes, SEED)
            out[name] = {"calibrate": cal, "report": rep, "held_out": "report half"}  # type: ignore[dict-item]  # the result is a JSON-like dict of mixed values
    return out


def halves(eyes: Sequence[C.LabelledEye], seed: int) -> tuple[list[C.LabelledEye], list[C.LabelledEye]]:
    """Split by patient into two halves, stratified by the patient's worst label (urgent /
    referable / neither) so both halves hold their share of the rare urgent eyes."""
    by_patient: dict[str, list[C.LabelledEye]] = {}
    for e in eyes:
        by_patient.setdefault(e.patient, []).append(e)
    strata: dict[int, list[str]] = {}
    for patient, its in sorted(by_patient.items()):
        level = 2 if any(e.urgent for e in its) else 1 if any(e.referable for e in its) else 0
        strata.setdefault(level, []).append(patient)
    rng = random.Random(seed)
    first: set[str] = set()
    offset = 0
    for level in sorted(strata):
        patients = strata[level]
        rng.shuffle(patients)
        first.update(p for i, p in enumerate(patients) if (i + offset) % 2 == 0)
        offset += len(patients)
    return ([e for e in eyes if e.patient in first], [e for e in eyes if e.patient not in first])


def load_cache(path: Path) -> dict[str, tuple[str, float, float]]:
    """{key: (status, p_referable, p_urgent)} already computed with this model file."""
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        return {r["key"]: (r["status"], _num(r["p_referable"]), _num(r["p_urgent"])) for r in csv.DictReader(f)}


def _num(text: str) -> float:
    return float(text) if text else math.nan


def predict_all(model_dir: Path, eyes: Sequence[C.LabelledEye], threads: int = 2) -> list[C.ScreenedEye]:
    """Every eye screened once through the product path; cached rows are reused."""
    from ..core.classifier import Classifier
    from ..core.screening import Screener

    classifier = Classifier.load(model_dir, backend="onnx", threads=threads)
    path = cache_file(classifier.card.runtime_sha256, gate_identity().get("card_sha256", ""))
    cached = load_cache(path)
    todo = list({e.key: e for e in eyes if e.key not in cached}.values())
    if todo:
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.is_file()
        screener = Screener(classifier, decode_workers=1, batch_size=classifier.preferred_batch)
        t0 = time.time()
        with open(path, "a", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            if new:
                w.writerow(["key", "status", "p_referable", "p_urgent"])

            def progress(done: int, total: int) -> None:
                if done % 100 == 0 or done == total:
                    f.flush()
                    print(f"  screened {done}/{total} ({done / max(time.time() - t0, 1e-9):.1f}/s)", flush=True)

            for s in C.screen_labelled(screener, todo, progress=progress):
                w.writerow([s.eye.key, s.status, _fmt(s.p_referable), _fmt(s.p_urgent)])
                cached[s.eye.key] = (s.status, s.p_referable, s.p_urgent)
    return [C.ScreenedEye(e, *cached[e.key]) for e in eyes]


def _fmt(x: float) -> str:
    return "" if math.isnan(x) else f"{x:.7f}"


def worst_camera_point(model_dir: Path, parts: dict[str, dict[str, list[C.LabelledEye]]],
                       screened: dict[str, C.ScreenedEye], rule: C.Rule = C.Rule(),
                       n_boot: int = 1000) -> dict[str, object]:
    """Choose on the calibration photographs of every collection; report on the held-out ones,
    beside the previous default point and the strict variant (every urgent eye above the
    urgent threshold)."""
    from ..core.classifier import read_card

    card = read_card(model_dir)
    calib = [screened[e.key] for p in parts.values() for e in p["calibrate"]]
    chosen = C.choose_thresholds(calib, rule)
    strict = C.choose_thresholds(calib, C.Rule(rule.referable_sensitivity, 1.0, "strict"))
    old = C.Thresholds(card.operating_point.referable, card.operating_point.urgent)
    table = {}
    for name, p in parts.items():
        held = [screened[e.key] for e in p["report"]]
        table[name] = {"held_out": p["held_out"],
                       **{label: C._figures_dict(C.figures(held, t, rule, n_boot, name))
                          for label, t in (("new", chosen), ("old", old), ("strict", strict))}}
    return {"rule": rule.text(), "model": C.model_identity(card), "gate": gate_identity(),
            "calibration_photographs": {n: len(p["calibrate"]) for n, p in parts.items()},
            "thresholds": {"new": vars(chosen), "old": vars(old), "strict": vars(strict)},
            "per_collection": table}


def variants_table(parts: dict[str, dict[str, list[C.LabelledEye]]], screened: dict[str, C.ScreenedEye]) -> str:
    """Other rules on the same held-out photographs: what each would cost (point estimates)."""
    names = list(parts)
    rows = ["| chosen on | referable / urgent threshold | " + " | ".join(names) + " |", "|---" * (2 + len(names)) + "|"]
    for label, chosen_on, rule in (
            ("all four, urgent sensitivity 1.00 (strict)", names, C.Rule(0.90, 1.0)),
            ("all four, urgent sensitivity 0.97 (shipped)", names, C.Rule(0.90, 0.97)),
            ("all four, urgent sensitivity 0.90", names, C.Rule(0.90, 0.90)),
            ("without eyepacs-256, urgent sensitivity 0.97", [n for n in names if n != "eyepacs-256"],
             C.Rule(0.90, 0.97))):
        t = C.choose_thresholds([screened[e.key] for n in chosen_on for e in parts[n]["calibrate"]], rule)
        cells = []
        for n in names:
            f = C.figures([screened[e.key] for e in parts[n]["report"]], t, rule, n_boot=1, collection=n)
            cells.append(f"{f.referable_specificity.value:.2f} / {f.urgent_specificity.value:.2f} / "
                         f"{f.urgent_in_annual}")
        rows.append(f"| {label} | {t.referable:.4f} / {t.urgent:.4f} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def markdown_table(result: dict[str, object]) -> str:
    """The per-collection table for docs/training.md."""
    def rate(r: dict) -> str:  # type: ignore[type-arg]  # the result is a JSON-like dict of mixed values
        return f"{r['value']:.2f} ({r['ci95'][0]:.2f}-{r['ci95'][1]:.2f}) [{r['n'][0]}/{r['n'][1]}]"

    lines = ["| collection (held-out photographs) | graded (gated) | patients | referable AUC (95% CI) | referable "
             "sensitivity | referable specificity | urgent sensitivity | urgent specificity | urgent eyes in annual "
             "(previous default) | referable specificity at the previous default: cost |", "|---" * 10 + "|"]
    for name, v in result["per_collection"].items():  # type: ignore[union-attr]  # the result is a JSON-like dict of mixed values
        n, o = v["new"], v["old"]
        auc = n["referable_auc"]
        lines.append(
            f"| {name} ({v['held_out']}) | {n['photographs'] - n['gated']} ({n['gated']}) | {n['patients']} | "
            f"{auc[0]:.3f} ({auc[1]:.3f}-{auc[2]:.3f}) | {rate(n['referable_sensitivity'])} | "
            f"{rate(n['referable_specificity'])} | {rate(n['urgent_sensitivity'])} | {rate(n['urgent_specificity'])} | "
            f"**{n['urgent_in_annual']}** ({o['urgent_in_annual']}) | {o['referable_specificity']['value']:.2f}: "
            f"-{o['referable_specificity']['value'] - n['referable_specificity']['value']:.2f} |")
    return "\n".join(lines)


def card_section(result: dict[str, object]) -> dict[str, object]:
    """The model card's ``worst_camera`` section: how the default was chosen and what it gives."""
    keep = ("photographs", "patients", "gated", "referable_eyes", "urgent_eyes", "referable_auc",
            "referable_sensitivity", "referable_specificity", "urgent_sensitivity", "urgent_specificity",
            "urgent_in_annual")
    per = {}
    for name, v in result["per_collection"].items():  # type: ignore[union-attr]  # the result is a JSON-like dict of mixed values
        new, old = v["new"], v["old"]
        per[name] = {"held_out": v["held_out"], **{k: new[k] for k in keep},
                     "previous_default": {k: old[k] for k in ("referable_sensitivity", "referable_specificity",
                                                              "urgent_sensitivity", "urgent_in_annual")},
                     "specificity_cost": old["referable_specificity"]["value"] - new["referable_specificity"]["value"]}
    return {"rule": result["rule"], "thresholds": result["thresholds"]["new"],  # type: ignore[index]  # the result is a JSON-like dict of mixed values
            "gate": result.get("gate", {}),
            "chosen_on": {n: f"{c} photographs ({'calibration half' if per[n]['held_out'] == 'report half' else 'validation patients'})"
                          for n, c in result["calibration_photographs"].items()},  # type: ignore[union-attr]  # the result is a JSON-like dict of mixed values
            "split": ("collections the model trained on: its validation patients (split.csv); others split by "
                      f"patient into halves, stratified by worst label, seed {SEED}"),
            "command": "python -m eyescreen_desktop.training.worst_camera --write-card",
            "per_collection": per,
            "strict_variant": {"rule": "urgent sensitivity 1.00 on every collection (no urgent eye below the "
                                       "urgent threshold)",
                               "thresholds": result["thresholds"]["strict"]}}  # type: ignore[index]  # the result is a JSON-like dict of mixed values


def update_card(model_dir: Path, result: dict[str, object]) -> Path:
    """Make the worst-camera point the card's default; the previous default stays as a named
    alternative. The weights and their hashes are untouched."""
    from .export import write_card

    path = model_dir / "model_card.json"
    card = json.loads(path.read_text(encoding="utf-8"))
    points = card["operating_points"]
    new = {**points["default"], **{k: float(v) for k, v in result["thresholds"]["new"].items()}}  # type: ignore[index]  # the result is a JSON-like dict of mixed values
    if new != points["default"]:       # keep what training chose, under its own name
        if "previous-default" not in points:
            points = {"default": points["default"], "previous-default": dict(points["default"]),
                      **{k: v for k, v in points.items() if k != "default"}}
        card["validation"]["operating_point"] = "previous-default (chosen in training)"
    points["default"] = new
    card["operating_points"] = points
    card["default_operating_point"] = "default"
    card["worst_camera"] = card_section(result)
    return write_card(model_dir, card)


def main(argv: Sequence[str] | None = None) -> int:
    """Screen (cached), choose the default on the calibration photographs, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=default_model_dir())
    ap.add_argument("--datasets", type=Path, default=shared_datasets_dir())
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--predict-only", action="store_true", help="fill the prediction cache and stop")
    ap.add_argument("--json", type=Path, default=None, help="write the chosen point and the table here")
    ap.add_argument("--write-card", action="store_true", help="make the chosen point the model card's default")
    ap.add_argument("--variants", action="store_true", help="also print what other rules would cost")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    parts = collections(args.datasets, args.model / "split.csv")
    every = [e for p in parts.values() for side in ("calibrate", "report") for e in p[side]]
    for name, p in parts.items():
        print(f"{name}: calibrate {len(p['calibrate'])} photographs, report {len(p['report'])}")
    screened = {s.eye.key: s for s in predict_all(args.model, every, args.threads)}
    if args.predict_only:
        return 0
    result = worst_camera_point(args.model, parts, screened)
    print(markdown_table(result))
    if args.variants:
        print(variants_table(parts, screened))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    if args.write_card:
        print(f"updated {update_card(args.model, result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
