"""Fine-tuned leave-one-collection-out: the table of docs/training.md ("Model 3.0.0").

For each collection held out, a model trained on the other three with recipe
``final`` at 384 px and then the resolution fix at 512 px (``resfix-512``), both
scored with ``eyescreen evaluate`` on every photograph of the held-out collection.
Reads the two evaluations' ``predictions.csv`` and prints, per held-out
collection, AUC with its patient-bootstrap CI, sensitivity and specificity at
each model's own default point (chosen on the three training collections), urgent
eyes in annual, and the paired AUC difference 512 - 384 on the same photographs.

    python scripts/loco_finetuned.py RUN_ROOT [--json FILE]

RUN_ROOT holds ``<collection>/eval384`` and ``<collection>/eval512``
(docs/training.md gives the training and evaluation commands).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from eyescreen_desktop.core import metrics as M


def read(folder: Path) -> dict[str, dict[str, str]]:
    with open(folder / "predictions.csv", newline="") as f:
        return {r["key"]: r for r in csv.DictReader(f)}


def summary(rows: list[dict[str, str]]) -> dict[str, object]:
    """Referred = the queue ``evaluate`` chose (urgent or routine), not the CSV's
    probabilities thresholded again: they are rounded to 5 decimals, and an eye at
    the threshold would move (odir-384: 913 instead of the report's 914 of 1025)."""
    ok = [r for r in rows if r["status"] == "ok"]
    y_ref = np.array([int(r["referable"]) for r in ok])
    y_urg = np.array([int(r["urgent"]) for r in ok])
    p_ref = np.array([float(r["p_referable"]) for r in ok])
    p_urg = np.array([float(r["p_urgent"]) for r in ok])
    groups = [r["patient"] for r in ok]
    referred = np.array([r["queue"] in ("urgent", "routine") for r in ok])
    lo, hi = M.patient_bootstrap(lambda i: M.roc_auc(y_ref[i], p_ref[i]), groups, 1000, 0)
    ulo, uhi = M.patient_bootstrap(lambda i: M.roc_auc(y_urg[i], p_urg[i]), groups, 1000, 0)
    return {
        "photographs": len(rows), "graded": len(ok), "patients": len(set(groups)),
        "referable_auc": M.roc_auc(y_ref, p_ref), "referable_auc_ci95": [lo, hi],
        "urgent_auc": M.roc_auc(y_urg, p_urg), "urgent_auc_ci95": [ulo, uhi],
        "referable_sensitivity": float(referred[y_ref == 1].mean()),
        "referable_specificity": float(1 - referred[y_ref == 0].mean()),
        "urgent_in_annual": int(sum(1 for r in ok if r["urgent"] == "1" and r["queue"] == "annual")),
        "urgent_eyes": int(y_urg.sum()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    out = {}
    print("| held out | model | graded / patients | referable AUC (95% CI) | urgent AUC (95% CI) | "
          "referable sens / spec at its default | urgent in annual | paired Δ referable AUC 512 - 384 (95% CI) |")
    print("|---|---|---|---|---|---|---|---|")
    for held in sorted(p.name for p in args.root.iterdir() if (p / "eval384" / "predictions.csv").is_file()):
        a = read(args.root / held / "eval384")
        b = read(args.root / held / "eval512") if (args.root / held / "eval512" / "predictions.csv").is_file() else {}
        fold = {"384": summary(list(a.values()))}
        both = [k for k in a if k in b and a[k]["status"] == b[k]["status"] == "ok"]
        if b:
            fold["512"] = summary(list(b.values()))
            y = np.array([int(a[k]["referable"]) for k in both])
            d, lo, hi = M.paired_auc_difference(y, np.array([float(a[k]["p_referable"]) for k in both]),
                                                np.array([float(b[k]["p_referable"]) for k in both]),
                                                [a[k]["patient"] for k in both])
            fold["paired_512_minus_384"] = {"difference": d, "ci95": [lo, hi], "photographs": len(both)}
        out[held] = fold
        for size in ("384", "512"):
            if size not in fold:
                continue
            s = fold[size]
            delta = ""
            if size == "512":
                p = fold["paired_512_minus_384"]
                delta = f"{p['difference']:+.3f} ({p['ci95'][0]:+.3f} to {p['ci95'][1]:+.3f})"
            print(f"| {held} | fine-tuned at {size} | {s['graded']} / {s['patients']} | "
                  f"{s['referable_auc']:.3f} ({s['referable_auc_ci95'][0]:.3f}-{s['referable_auc_ci95'][1]:.3f}) | "
                  f"{s['urgent_auc']:.3f} ({s['urgent_auc_ci95'][0]:.3f}-{s['urgent_auc_ci95'][1]:.3f}) | "
                  f"{s['referable_sensitivity']:.3f} / {s['referable_specificity']:.3f} | "
                  f"{s['urgent_in_annual']} of {s['urgent_eyes']} | {delta} |")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
