"""A simulated clinic for issue 22: a second reader's grades calibrate EyeScreen on "the clinic's camera".

For each collection (odir-384, then eyepacs-256) taken as one clinic's camera,
using only the validation patients of models/eyescreen-dr/split.csv (never a
patient the model trained on), subsampled to --patients per collection:

1. screen every patient into a fresh clinic database with the shipped model at
   its default point (``eyescreen screen``);
2. import 30% of the patients' reference grades (maculopathy blank: neither
   collection has oedema labels) with ``eyescreen grades import``;
3. ``eyescreen calibrate --from-database`` -> the site's OP.json;
4. screen the other 70% again with that OP.json (``eyescreen screen --operating-point``);
5. ``eyescreen report --format qa`` on the database -> the kappa.

Then compares, on the 70% held out, referable sensitivity and specificity (eyes
the gate let through; eye level, reference ICDR >= 2) and the urgent eyes
(reference ICDR >= 3) left in annual, with the default point and with the site
point. Writes OUT/simulated-clinic.md and .json.

    nice -n 10 .venv/bin/python scripts/simulated_clinic.py --out /tmp/clinic-sim [--patients 300]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
import time
from pathlib import Path

from eyescreen_desktop.domain.grades import REFERABLE_GRADE, URGENT_GRADE
from eyescreen_desktop.core.paths import project_root

ROOT = project_root()
DATASETS = ROOT.parent / "shared" / "datasets"
SPLIT = ROOT / "models" / "eyescreen-dr" / "split.csv"
COLLECTIONS = ("odir-384", "eyepacs-256")


def eyescreen(*args: str) -> subprocess.CompletedProcess[str]:
    """One ``eyescreen`` command, as a clinic would type it; its output is kept."""
    done = subprocess.run([sys.executable, "-m", "eyescreen_desktop.cli", *args], capture_output=True, text=True)
    if done.returncode not in (0,):
        print(done.stdout[-2000:], done.stderr[-4000:], file=sys.stderr)
        raise SystemExit(f"eyescreen {args[0]} failed ({done.returncode})")
    return done


def validation_eyes(collection: str) -> dict[str, dict[str, dict[str, str]]]:
    """patient -> eye (R/L) -> label row, for the collection's validation patients (some have one eye)."""
    with open(SPLIT, newline="") as f:
        val = {r["key"].split("/", 1)[1] for r in csv.DictReader(f)
               if r["key"].startswith(collection + "/") and r["part"] == "val"}
    with open(DATASETS / collection / "labels.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["file"] in val]
    out: dict[str, dict[str, dict[str, str]]] = {}
    for r in rows:
        out.setdefault(f"{collection.split('-')[0]}{r['patient']}" if not r["patient"].startswith(
            collection.split("-")[0]) else r["patient"], {})[r["eye"]] = r
    return out


def link_photos(folder: Path, collection: str, patients: dict[str, dict[str, dict[str, str]]]) -> None:
    """<patient>_<R|L>.<ext> symbolic links to the dataset's photographs (no copies)."""
    folder.mkdir(parents=True, exist_ok=True)
    for p, eyes in patients.items():
        for eye, r in eyes.items():
            src = DATASETS / collection / "images" / r["file"]
            (folder / f"{p}_{eye}{src.suffix}").symlink_to(src)


def results(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    with open(path, newline="") as f:
        return {(r["patient_id"], r["eye"]): r for r in csv.DictReader(f)}


def figures(rows: dict[tuple[str, str], dict[str, str]], truth: dict[tuple[str, str], int]) -> dict[str, float]:
    """Eye-level referable sensitivity/specificity on gate-passed eyes, urgent in annual, eyes in review."""
    tp = fn = tn = fp = urgent_annual = review = 0
    for key, grade in truth.items():
        r = rows[key]
        if r["status"] != "ok":
            review += 1
            continue
        referred = r["queue"] in ("urgent", "routine")
        if grade >= REFERABLE_GRADE:
            tp, fn = tp + referred, fn + (not referred)
        else:
            tn, fp = tn + (not referred), fp + referred
        urgent_annual += grade >= URGENT_GRADE and r["queue"] == "annual"
    return {"eyes": len(truth), "review": review, "referable": tp + fn, "sensitivity": tp / max(tp + fn, 1),
            "specificity": tn / max(tn + fp, 1), "urgent_eyes": sum(g >= URGENT_GRADE for k, g in truth.items()
                                                                    if rows[k]["status"] == "ok"),
            "urgent_in_annual": urgent_annual, "referral_rate": (tp + fp) / max(tp + fn + tn + fp, 1)}


def simulate(collection: str, out: Path, n_patients: int, seed: int) -> dict[str, object]:
    work = out / collection
    all_patients = validation_eyes(collection)
    rng = random.Random(seed)
    chosen = sorted(rng.sample(sorted(all_patients), min(n_patients, len(all_patients))))
    graded = set(rng.sample(chosen, round(0.3 * len(chosen))))
    rest = [p for p in chosen if p not in graded]
    link_photos(work / "photos" / "all", collection, {p: all_patients[p] for p in chosen})
    link_photos(work / "photos" / "rest", collection, {p: all_patients[p] for p in rest})
    t0 = time.time()
    eyescreen("screen", str(work / "photos" / "all"), "--out", str(work / "default"), "--data-dir",
              str(work / "clinic"), "--no-pdf", "--backend", "onnx")
    with open(work / "grades-30.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["patient_id", "eye", "icdr_grade", "maculopathy", "gradable", "grader"])
        for p in sorted(graded):
            for eye, r in sorted(all_patients[p].items()):
                w.writerow([p, eye, r["icdr_grade"], "", 1 if r["icdr_grade"] != "" else 0, "reference"])
    eyescreen("grades", "import", str(work / "grades-30.csv"), "--data-dir", str(work / "clinic"))
    calibrated = eyescreen("calibrate", "--from-database", "--data-dir", str(work / "clinic"), "--site", collection,
                           "--out", str(work / "site-op.json"), "--backend", "onnx")
    eyescreen("screen", str(work / "photos" / "rest"), "--out", str(work / "site"), "--data-dir",
              str(work / "site-clinic"), "--no-pdf", "--operating-point", str(work / "site-op.json"),
              "--backend", "onnx")
    qa = eyescreen("report", "--format", "qa", "--out", str(work / "qa"), "--data-dir", str(work / "clinic"),
                   "--site", collection)
    truth = {(p, eye): int(r["icdr_grade"]) for p in rest for eye, r in all_patients[p].items()
             if r["icdr_grade"] != ""}
    op = json.loads((work / "site-op.json").read_text())
    return {"collection": collection, "validation_patients": len(all_patients), "patients": len(chosen),
            "graded_patients": len(graded), "held_out_patients": len(rest),
            "default": figures(results(work / "default" / "results.csv"), truth),
            "site": figures(results(work / "site" / "results.csv"), truth),
            "site_point": op["thresholds"], "site_calibration": op.get("site", {}),
            "calibrate_output": calibrated.stdout.strip().splitlines(),
            "qa_summary": qa.stdout.strip().splitlines()[0], "seconds": round(time.time() - t0)}


def table(runs: list[dict[str, object]]) -> str:
    lines = ["| camera (collection) | point | held-out eyes (gate-passed) | referable eyes | referable sensitivity | "
             "referable specificity | urgent eyes in annual (of urgent) | eye referral rate |",
             "|---|---|---|---|---|---|---|---|"]
    for run in runs:
        for which in ("default", "site"):
            f = run[which]  # type: ignore[index]  # the run's figures by name
            lines.append(f"| {run['collection']} | {which} | {f['eyes']} ({f['eyes'] - f['review']}) | "
                         f"{f['referable']} | {f['sensitivity']:.3f} | {f['specificity']:.3f} | "
                         f"{f['urgent_in_annual']} (of {f['urgent_eyes']}) | {f['referral_rate']:.3f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--patients", type=int, default=300, help="patients per collection (subsample)")
    parser.add_argument("--seed", type=int, default=22)
    parser.add_argument("--collections", nargs="+", default=list(COLLECTIONS))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    runs = []
    for collection in args.collections:
        runs.append(simulate(collection, args.out, args.patients, args.seed))
        (args.out / "simulated-clinic.json").write_text(json.dumps(runs, indent=1))
        print(json.dumps(runs[-1], indent=1), flush=True)
    (args.out / "simulated-clinic.md").write_text(table(runs) + "\n\n" + "\n".join(
        f"- {r['collection']}: QA report: {r['qa_summary']}" for r in runs) + "\n")
    print(table(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
