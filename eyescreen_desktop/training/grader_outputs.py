"""Thresholds of the grader's secondary outputs, chosen on patients it never trained on.

``python -m eyescreen_desktop.training.grader_outputs [--write-cards]``

Issue 23 (items 2-4), without retraining anything:

* **maculopathy flag**: the default ``maculopathy`` threshold is the lowest at
  which at most 5% of the validation eyes graded free of oedema (fundus-dr and
  idrid together) are flagged. Sensitivity is reported on fundus-dr and idrid
  (idrid also by its oedema risk grade); the false-flag rate also on odir-384's
  eyes whose only keyword is "normal fundus" (mined negatives: its keywords name
  no macular oedema) and, as a proxy only, eyepacs-256's grade-0 eyes.
* **borderline photographs**: the gate's learned ``p_reject`` band
  [``borderline``, ``reject``): ``borderline`` is the 90th percentile of the
  p_reject of the EyeQ-good eyepacs-256 photographs the gate passes, among the
  patients the gate never fitted on (its ``tune`` and ``check`` parts): at most
  1 good photograph in 10 carries the note.
* **urgent signs on refused photographs**: the grader looks at every fundus
  photograph of the grader's validation patients that the gate refuses for
  quality; ``urgent_signs`` is the lowest p_urgent (never under the default
  urgent threshold) at which at most 5% of the refused photographs *without*
  urgent disease would be told "possible urgent disease visible".

Every photograph goes through the product's path (``Screener``: gate,
preprocessing, the ONNX twin) once; rows are cached in
``.cache/grader-outputs/`` keyed by the runtime file and gate card.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..core.paths import default_model_dir, project_root, shared_datasets_dir
from ..domain.grades import is_urgent
from ..domain.vocabulary import REFERRAL_QUEUES, Queue
from .data import label_referable

COLLECTIONS = ("fundus-dr", "eyepacs-256", "odir-384", "idrid")
MACULOPATHY_LABELLED = ("fundus-dr", "idrid")
MAX_FALSE_FLAGS = 0.05          # maculopathy flags and urgent-signs warnings on eyes without the disease
BORDERLINE_GOOD_SHARE = 0.10    # EyeQ-good photographs that may carry "photo quality borderline"
COMMAND = "python -m eyescreen_desktop.training.grader_outputs"
FIELDS = ("key", "collection", "patient", "part", "gate_part", "grade", "maculopathy", "dme_risk", "normal_fundus",
          "eyeq", "status", "reasons", "p_referable", "p_urgent", "p_maculopathy", "p_reject", "grader_p_urgent")


@dataclass(frozen=True)
class Photo:
    """One labelled photograph and where it sits: the grader's split part, the gate's part."""

    path: Path
    key: str
    collection: str
    patient: str
    part: str               # grader: train / val
    gate_part: str          # gate: fit / tune / check
    grade: int
    maculopathy: int        # 1 / 0, -1 where not graded
    dme_risk: int           # idrid 0-2, else -1
    normal_fundus: bool     # odir-384: the only keyword is "normal fundus"
    eyeq: str               # eyepacs-256: good / usable / reject / ""


def photos(datasets: Path, split_csv: Path) -> list[Photo]:
    """The photographs measured: the grader's validation patients of all four
    collections, and eyepacs-256's EyeQ-labelled photographs of patients the gate
    never fitted on (for the borderline band; those may be grader training patients:
    the band reads the gate only)."""
    from .gate import part_of

    with open(split_csv, newline="", encoding="utf-8") as f:
        part = {r["key"]: r["part"] for r in csv.DictReader(f)}
    out = []
    for coll in COLLECTIONS:
        with open(datasets / coll / "labels.csv", newline="", encoding="utf-8") as f:
            for r in csv.DictReader(f):
                key = f"{coll}/{r['file']}"
                gate_part = part_of(f"{coll}:{r['patient']}")
                p = Photo(datasets / coll / "images" / r["file"], key, coll, r["patient"], part.get(key, ""),
                          gate_part, int(r["icdr_grade"]), int(r["maculopathy"]) if r.get("maculopathy") else -1,
                          int(r["dme_risk"]) if r.get("dme_risk") else -1,
                          r.get("keywords", "").strip() == "normal fundus", r.get("quality", ""))
                if p.part == "val" or (coll == "eyepacs-256" and p.eyeq and gate_part != "fit"):
                    out.append(p)
    return out


def cache_path(runtime_sha256: str, gate_card_sha256: str) -> Path:
    return project_root() / ".cache" / "grader-outputs" / f"{runtime_sha256[:16]}-{gate_card_sha256[:12]}.csv"


def screen(model_dir: Path, todo: Sequence[Photo], threads: int = 2) -> list[dict[str, str]]:
    """Every photograph through the product path, cached; the grader also looks at every
    photograph refused for quality (its p_urgent goes in ``grader_p_urgent``)."""
    from ..core.classifier import Classifier, sha256_file
    from ..core.gate import CARD_FILE, QUALITY_PROBABILITY, default_gate_dir
    from ..core.screening import ScreenItem, Screener

    classifier = Classifier.load(model_dir, backend="onnx", threads=threads)
    path = cache_path(classifier.card.runtime_sha256, sha256_file(default_gate_dir() / CARD_FILE))
    rows: dict[str, dict[str, str]] = {}
    if path.is_file():
        with open(path, newline="", encoding="utf-8") as f:
            rows = {r["key"]: r for r in csv.DictReader(f)}
    new = [p for p in todo if p.key not in rows]
    if new:
        screener = Screener(classifier, decode_workers=1, batch_size=classifier.preferred_batch)
        screener.urgent_signs_at = math.inf        # look at every refused photograph, warn on none
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not path.is_file()
        t0 = time.time()
        with open(path, "a", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, FIELDS)
            if fresh:
                w.writeheader()
            for i, (p, r) in enumerate(zip(new, screener.screen(ScreenItem(q.path) for q in new)), 1):
                pred, metrics = r.prediction, (r.quality.metrics if r.quality else {})
                row = {"key": p.key, "collection": p.collection, "patient": p.patient, "part": p.part,
                       "gate_part": p.gate_part, "grade": p.grade, "maculopathy": p.maculopathy,
                       "dme_risk": p.dme_risk, "normal_fundus": int(p.normal_fundus), "eyeq": p.eyeq,
                       "status": r.status.value, "reasons": " ".join(r.quality.reasons if r.quality else ()),
                       "p_referable": _f(pred.p_referable if pred else None),
                       "p_urgent": _f(pred.p_urgent if pred else None),
                       "p_maculopathy": _f(pred.p_maculopathy if pred else None),
                       "p_reject": _f(metrics.get(QUALITY_PROBABILITY)),
                       "grader_p_urgent": _f(metrics.get("grader_p_urgent"))}
                w.writerow(row)
                rows[p.key] = {k: str(v) for k, v in row.items()}
                if i % 100 == 0 or i == len(new):
                    f.flush()
                    print(f"  screened {i}/{len(new)} ({i / max(time.time() - t0, 1e-9):.1f}/s)", flush=True)
    return [rows[p.key] for p in todo]


def _f(x: float | None) -> str:
    return "" if x is None else f"{float(x):.6f}"


def _num(rows: Sequence[dict[str, str]], name: str) -> np.ndarray:
    return np.array([float(r[name]) if r[name] else np.nan for r in rows])


# ---------------------------------------------------------------------- the three choices


def lowest_threshold(negatives: np.ndarray, max_rate: float, decimals: int = 6) -> float:
    """The lowest threshold, at ``decimals`` places (``p >= t`` flags), that flags at most
    ``max_rate`` of ``negatives``: just above the first value that may not be flagged."""
    s = np.sort(negatives)[::-1]
    allowed = int(math.floor(max_rate * len(s)))        # this many may be flagged
    if allowed >= len(s):
        return 0.0
    scale = 10 ** decimals
    return float(math.floor(s[allowed] * scale + 1) / scale)


def maculopathy_choice(val: Sequence[dict[str, str]]) -> dict[str, Any]:
    """The maculopathy threshold: the lowest at which at most 5% of the oedema-graded
    validation eyes without oedema (fundus-dr and idrid together) are flagged; the
    same limit on each collection alone and on odir-384's "normal fundus" eyes is
    reported beside it (``limits``), with a sweep of other thresholds (``sweep``)."""
    ok = [r for r in val if r["status"] == "ok"]
    graded = [r for r in ok if r["collection"] in MACULOPATHY_LABELLED and r["maculopathy"] in ("0", "1")]
    negatives = {
        "fundus-dr": [r for r in graded if r["collection"] == "fundus-dr" and r["maculopathy"] == "0"],
        "idrid": [r for r in graded if r["collection"] == "idrid" and r["maculopathy"] == "0"],
        "odir-384 (normal fundus)": [r for r in ok if r["collection"] == "odir-384" and r["normal_fundus"] == "1"],
    }
    limits = {name: lowest_threshold(_num(rows, "p_maculopathy"), MAX_FALSE_FLAGS) for name, rows in negatives.items()}
    pooled = lowest_threshold(_num([r for r in graded if r["maculopathy"] == "0"], "p_maculopathy"), MAX_FALSE_FLAGS)
    p, y = _num(graded, "p_maculopathy"), np.array([r["maculopathy"] == "1" for r in graded])
    sweep = [{"threshold": t, "caught": int((p[y] >= t).sum()), "of": int(y.sum()),
              "false_flags": int((p[~y] >= t).sum()), "of_negatives": int((~y).sum())}
             for t in (0.3, 0.4, 0.4634, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8265)]
    return {"threshold": pooled, "limits": limits, "sweep": sweep, "rule": (
        f"lowest p_maculopathy at which at most {MAX_FALSE_FLAGS:.0%} of the validation eyes graded free of "
        "oedema (fundus-dr and idrid together) are flagged; graded photographs through the product's path")}


def maculopathy_table(val: Sequence[dict[str, str]], thresholds: dict[str, float]) -> list[dict[str, Any]]:
    """Sensitivity and false-flag rate per labelled group, at each threshold."""
    from ..core.metrics import roc_auc

    ok = [r for r in val if r["status"] == "ok"]
    groups = {
        "fundus-dr": [r for r in ok if r["collection"] == "fundus-dr"],
        "idrid": [r for r in ok if r["collection"] == "idrid"],
        "idrid, oedema risk 1 (exudates away from the macula)": [r for r in ok if r["collection"] == "idrid"
                                                                 and r["dme_risk"] in ("0", "1")],
        "idrid, oedema risk 2 (within 1 disc diameter)": [r for r in ok if r["collection"] == "idrid"
                                                          and r["dme_risk"] in ("0", "2")],
        "fundus-dr + idrid": [r for r in ok if r["collection"] in MACULOPATHY_LABELLED],
        "odir-384 (normal fundus: no oedema)": [r for r in ok if r["collection"] == "odir-384"
                                                and r["normal_fundus"] == "1"],
        "eyepacs-256 grade 0 (proxy, no oedema label)": [r for r in ok if r["collection"] == "eyepacs-256"
                                                         and r["grade"] == "0" and r["part"] == "val"],
    }
    out = []
    for name, rows in groups.items():
        p = _num(rows, "p_maculopathy")
        y = np.array([r["maculopathy"] == "1" for r in rows])
        row: dict[str, Any] = {"group": name, "eyes": len(rows), "oedema": int(y.sum())}
        if 0 < y.sum() < len(y):
            row["auc"] = roc_auc(y, p)
            row["auc_p_referable"] = roc_auc(y, _num(rows, "p_referable"))
        for label, t in thresholds.items():
            row[label] = {"caught": int((p[y] >= t).sum()), "of": int(y.sum()),
                          "false_flags": int((p[~y] >= t).sum()), "of_negatives": int((~y).sum())}
        out.append(row)
    return out


def _labels() -> dict[str, dict[str, str]]:
    """Every collection's labels.csv row by key (``collection/file``): read once per check."""
    labels = {}
    for coll in COLLECTIONS:
        with open(shared_datasets_dir() / coll / "labels.csv", newline="", encoding="utf-8") as f:
            labels.update({f"{coll}/{r['file']}": r for r in csv.DictReader(f)})
    return labels


def _referable(label: dict[str, str], grade: int | str) -> bool:
    """The labelled eye's referable target, by training's one rule."""
    return label_referable(label, int(grade))


def referral_check(val: Sequence[dict[str, str]], op: Any, maculopathy: float) -> dict[str, Any]:
    """The default point's guarantees with the new flag: per collection, referable
    sensitivity, urgent eyes in annual, and the share of eyes the flag alone refers."""
    from dataclasses import replace

    from ..core.protocol import get_protocol
    from ..core.records import Prediction

    proto, point = get_protocol("icdr-ada"), replace(op, maculopathy=maculopathy)
    labels = _labels()
    out = {}
    for coll in COLLECTIONS:
        rows = [r for r in val if r["collection"] == coll and r["status"] == "ok" and r["part"] == "val"]
        ref = sens = annual_urgent = by_flag = 0
        for r in rows:
            lab = labels[r["key"]]
            pred = Prediction((0.2,) * 5, float(r["p_referable"]), float(r["p_urgent"]),
                              float(r["p_maculopathy"]) if r["p_maculopathy"] else None)
            queue = proto.decide_eye(pred, point).queue
            old = proto.decide_eye(pred, op).queue
            referable = _referable(lab, lab["icdr_grade"])
            ref += referable
            sens += referable and queue in REFERRAL_QUEUES
            annual_urgent += is_urgent(int(lab["icdr_grade"])) and queue is Queue.ANNUAL
            by_flag += old is Queue.ANNUAL and queue is Queue.ROUTINE
        out[coll] = {"graded": len(rows), "referable_sensitivity": sens / max(ref, 1), "referable": ref,
                     "urgent_in_annual": annual_urgent, "annual_to_routine_by_flag": by_flag}
    return out


def borderline_choice(rows: Sequence[dict[str, str]], reject_at: float) -> dict[str, Any]:
    """The borderline band's lower end and what falls in it (gate tune + check patients)."""
    held = [r for r in rows if r["collection"] == "eyepacs-256" and r["eyeq"] and r["gate_part"] != "fit"
            and r["status"] == "ok" and r["p_reject"]]
    p = _num(held, "p_reject")
    good = np.array([r["eyeq"] == "good" for r in held])
    borderline = round(float(np.quantile(p[good], 1 - BORDERLINE_GOOD_SHARE)), 4)
    borderline = min(borderline, reject_at)
    table = {}
    for q in ("good", "usable", "reject"):
        sel = np.array([r["eyeq"] == q for r in held])
        table[q] = {"passed": int(sel.sum()), "borderline": int((p[sel] >= borderline).sum())}
    return {"threshold": borderline, "by_eyeq": table, "rule": (
        f"90th percentile of the learned p_reject of the EyeQ-good eyepacs-256 photographs the gate passes, "
        f"patients of the gate's tune and check parts (never fitted on): at most {BORDERLINE_GOOD_SHARE:.0%} of "
        "good photographs are called borderline")}


def borderline_grading(val: Sequence[dict[str, str]], borderline: float) -> dict[str, Any]:
    """How the graded validation photographs split at the band, and the referable AUC in each."""
    from ..core.metrics import roc_auc

    labels = _labels()
    ok = [r for r in val if r["status"] == "ok" and r["part"] == "val" and r["p_reject"]]
    out = {}
    for name, sel in (("borderline", lambda v: v >= borderline), ("clear", lambda v: v < borderline)):
        rows = [r for r in ok if sel(float(r["p_reject"]))]
        y = np.array([_referable(labels[r["key"]], r["grade"]) for r in rows])
        per = {c: sum(r["collection"] == c for r in rows) for c in COLLECTIONS}
        out[name] = {"photographs": len(rows), "per_collection": per,
                     "referable_auc": roc_auc(y, _num(rows, "p_referable")) if 0 < y.sum() < len(y) else None}
    return out


def urgent_signs_choice(val: Sequence[dict[str, str]], urgent_at: float) -> dict[str, Any]:
    """The p_urgent at which a refused photograph says "possible urgent disease visible"."""
    refused = [r for r in val if r["part"] == "val" and r["grader_p_urgent"]]
    p = _num(refused, "grader_p_urgent")
    urgent = np.array([is_urgent(int(r["grade"])) for r in refused])
    threshold = max(lowest_threshold(p[~urgent], MAX_FALSE_FLAGS, 4), urgent_at)
    per = {}
    for coll in COLLECTIONS:
        sel = np.array([r["collection"] == coll for r in refused])
        per[coll] = {"refused": int(sel.sum()), "urgent": int((sel & urgent).sum()),
                     "urgent_warned": int((sel & urgent & (p >= threshold)).sum()),
                     "not_urgent_warned": int((sel & ~urgent & (p >= threshold)).sum())}
    eyeq = np.array([r["eyeq"] == "reject" for r in refused])
    return {"threshold": threshold, "per_collection": per,
            "eyeq_reject": {"refused": int(eyeq.sum()), "urgent": int((eyeq & urgent).sum()),
                            "urgent_warned": int((eyeq & urgent & (p >= threshold)).sum()),
                            "not_urgent_warned": int((eyeq & ~urgent & (p >= threshold)).sum())},
            "rule": (f"lowest p_urgent (not under the default urgent threshold {urgent_at}) at which at most "
                     f"{MAX_FALSE_FLAGS:.0%} of the validation patients' photographs refused for quality without "
                     "urgent disease (ICDR < 3) are warned"),
            "examples": sorted(((float(r["grader_p_urgent"]), r["key"], r["grade"]) for r in refused),
                               reverse=True)[:8]}


# ---------------------------------------------------------------------- cards


def write_cards(model_dir: Path, mac: dict[str, Any], table: list[dict[str, Any]], border: dict[str, Any],
                signs: dict[str, Any], grading: dict[str, Any]) -> None:
    """The grader card's maculopathy thresholds and ``refused_photographs``; the gate card's
    ``borderline``; the grader card's record of the gate card's new SHA-256."""
    from ..core.classifier import sha256_file
    from ..core.gate import CARD_FILE, default_gate_dir
    from .export import write_card

    gate_path = default_gate_dir() / CARD_FILE
    gate = json.loads(gate_path.read_text(encoding="utf-8"))
    gate["thresholds"]["borderline"] = border["threshold"]
    gate["borderline"] = {"rule": border["rule"], "by_eyeq": border["by_eyeq"], "graded_validation": grading,
                          "command": COMMAND}
    gate_path.write_text(json.dumps(gate, indent=2) + "\n", encoding="utf-8")
    card_path = model_dir / "model_card.json"
    card = json.loads(card_path.read_text(encoding="utf-8"))
    for name, point in card["operating_points"].items():
        if name != "previous-default":
            point["maculopathy"] = mac["threshold"]
    card["maculopathy_flag"] = {"threshold": mac["threshold"], "previous": 0.826511, "rule": mac["rule"],
                                "limits_per_collection": mac["limits"], "sweep_fundus_dr_and_idrid": mac["sweep"],
                                "table": table, "command": COMMAND}
    card["refused_photographs"] = {"urgent_signs": signs["threshold"], "rule": signs["rule"],
                                   "per_collection": signs["per_collection"], "eyeq_reject": signs["eyeq_reject"],
                                   "command": COMMAND}
    behind = card.get("worst_camera", {}).get("gate")
    if behind is not None:
        behind["card_sha256"] = sha256_file(gate_path)
        behind["thresholds"] = gate["thresholds"]
    write_card(model_dir, card)          # the JSON and its Markdown rendering


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=default_model_dir())
    ap.add_argument("--datasets", type=Path, default=shared_datasets_dir())
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--write-cards", action="store_true", help="write the chosen thresholds into both cards")
    ap.add_argument("--json", type=Path, help="write every figure here")
    args = ap.parse_args(argv)
    from ..core.classifier import read_card
    from ..core.gate import Gate

    card = read_card(args.model)
    todo = photos(args.datasets, args.model / "split.csv")
    rows = screen(args.model, todo, args.threads)
    val = [r for r in rows if r["part"] == "val"]
    op = card.operating_points["default"]
    mac = maculopathy_choice(val)
    table = maculopathy_table(val, {"previous": 0.826511, "chosen": mac["threshold"]})
    border = borderline_choice(rows, Gate.load().thresholds["reject"])
    grading = borderline_grading(val, border["threshold"])
    signs = urgent_signs_choice(val, op.urgent)
    report = {"maculopathy": mac, "maculopathy_table": table,
              "referral_check": referral_check(val, op, mac["threshold"]),
              "borderline": border, "borderline_grading": grading, "urgent_signs": signs}
    print(json.dumps(report, indent=1, default=float))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=float) + "\n", encoding="utf-8")
    if args.write_cards:
        write_cards(args.model, mac, table, border, signs, grading)
    return 0


if __name__ == "__main__":
    sys.exit(main())
