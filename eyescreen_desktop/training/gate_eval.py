"""How well the learned gate does, on ``check`` pictures it was not fitted on.

Reproduces the whole gate's decision from the cached descriptions (the same
rule :func:`core.gate.decide_gate` applies at screening time) and counts, per
source: the modality confusion, what the full gate did (graded, ungradable by
a hand-made measure, rejected by the learned quality head, unfamiliar, not a
fundus photograph, front of the eye), EyeQ agreement on held-out patients and
whether synthetic degradations got the reason expected.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ..core import fundus
from .gate import FUNDUS_COLLECTIONS, made_from
from ..core.gate import MODALITIES, QualityVerdict, decide_gate, ppca_distance, quality_verdict, verdict_from_probs

GRADABILITY_MEASURES = ("fov_diameter", "width", "height", "coverage", "fov_brightness", "saturated", "dark_fraction",
                        "vessel_contrast", "fine_detail")
OUTCOMES = ("graded", "ungradable", "learned_reject", "unfamiliar_picture", "unfamiliar", "external_eye",
            "not_fundus")
# ungradable: a hand-made measure's reason (core.fundus); learned_reject: the quality head;
# unfamiliar_picture: called fundus weakly, or the modality network's features far from any fundus
# picture; unfamiliar: the grader's features far from the fundus photographs the gate was fitted on


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def quality_of(d: dict[str, Any], heads: dict, thresholds: dict) -> QualityVerdict:
    """What ``Gate.quality`` says, from a cached description."""
    return quality_verdict(heads, d["lite_q"], d["metrics"], thresholds["reject"])


def distance_of(d: dict[str, Any], heads: dict) -> float:
    """What ``Gate.familiarity`` says, from a cached description."""
    return ppca_distance(np.asarray(d["embedding"], np.float64), heads)


def hand_made_reasons(d: dict[str, Any]) -> tuple[str, ...]:
    """The hand-made reasons screening gives now (``core.fundus.gradability_reasons``
    with the learned gate), from the cached measures: the cache holds what was
    measured, the rule is applied here, so retuning a limit needs no new
    description. A photograph refused before it was measured (no field of
    view, too small) keeps its cached reasons."""
    m = d["metrics"]
    if d["status"] == "ok" or all(k in m for k in GRADABILITY_MEASURES):
        return tuple(fundus.gradability_reasons(m, fundus_known=True))
    return tuple(d["reasons"])


def modality_verdict(d: dict[str, Any], heads: dict, thresholds: dict, mod_w: np.ndarray, mod_b: np.ndarray):
    """What ``Gate.modality`` says, from a cached description."""
    lite = np.asarray(d["lite"], np.float64)
    probs = softmax(lite @ mod_w + mod_b)
    dist = ppca_distance(lite, heads, "lite_ood") if "lite_ood_mean" in heads else 0.0
    return verdict_from_probs(probs, thresholds.get("fundus_min_prob", 0.0), dist,
                              thresholds.get("unfamiliar_picture", float("inf")))


def outcome_of(it: Any, d: dict[str, Any], heads: dict, thresholds: dict, mod_w: np.ndarray,
               mod_b: np.ndarray) -> tuple[str, tuple[str, ...]]:
    """The whole gate's decision for one described picture, stage by stage, as
    screening takes it (``screening.gate_picture`` then ``Screener._apply_gate``):
    (outcome, reasons)."""
    seen = modality_verdict(d, heads, thresholds, mod_w, mod_b)
    if seen.label != "fundus":
        return ("external_eye" if seen.label == "external_eye" else "not_fundus"), (seen.label,)
    if seen.doubtful:
        return "unfamiliar_picture", ("unfamiliar",)
    if "embedding" not in d:
        return "graded", ()          # a non-fundus picture without the grader's view: it would be graded
    reasons = hand_made_reasons(d)
    if reasons:
        return "ungradable", reasons
    status, reasons = decide_gate("fundus", "ok", (), quality_of(d, heads, thresholds), d["metrics"],
                                  unfamiliar=distance_of(d, heads) > thresholds["unfamiliar"])
    if status == "ok":
        return "graded", ()
    return ("unfamiliar" if reasons == ("unfamiliar",) else "learned_reject"), reasons


def evaluate(items: list, desc: dict, heads: dict, thresholds: dict, mod_w: np.ndarray,
             mod_b: np.ndarray) -> dict[str, Any]:
    """Every figure of docs/quality-gate.md's learned-gate section, on ``check`` pictures."""
    chk = [it for it in items if it.part == "check"]
    modality_table: dict[str, Counter] = defaultdict(Counter)
    gate_table: dict[str, Counter] = defaultdict(Counter)
    eyeq: dict[str, Counter] = defaultdict(Counter)
    reasons_ok: dict[str, Counter] = defaultdict(Counter)
    by_label: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    degraded_from: dict[str, Counter] = defaultdict(Counter)
    refused: list[dict[str, Any]] = []
    for it in chk:
        d = desc[it.key]
        seen = modality_verdict(d, heads, thresholds, mod_w, mod_b)
        src = it.source
        modality_table[src][seen.label] += 1
        out, why = outcome_of(it, d, heads, thresholds, mod_w, mod_b)
        gate_table[src][out] += 1
        if src == "eyepacs-256":
            eyeq[it.quality][out] += 1
        if src in FUNDUS_COLLECTIONS:
            by_label[src][it.quality or "unlabelled"][out] += 1
        elif src.startswith("degraded") and made_from(it):
            degraded_from[made_from(it)][out] += 1
        if src.startswith("degraded"):
            reasons_ok[src]["expected" if it.reason in why else (why[0] if why else out)] += 1
        if (out != "graded") == (it.modality == "fundus" and it.quality != "reject"):
            refused.append({"key": it.key, "outcome": out, "reasons": list(why), "source": src,
                            "quality": it.quality, "kind": d.get("kind", ""), "p_fundus": seen.probs["fundus"],
                            "picture_distance": seen.distance,
                            **({"p_reject": quality_of(d, heads, thresholds).p_reject,
                                "distance": round(distance_of(d, heads), 4)}
                               if "embedding" in d and it.modality == "fundus" else {})})
    return {"modality": {k: dict(v) for k, v in sorted(modality_table.items())},
            "gate": {k: dict(v) for k, v in sorted(gate_table.items())},
            "eyeq": {k: dict(v) for k, v in eyeq.items()},
            "degraded_reasons": {k: dict(v) for k, v in reasons_ok.items()},
            "by_label": {c: {q: dict(v) for q, v in sorted(t.items())} for c, t in sorted(by_label.items())},
            "degraded_from": {c: dict(v) for c, v in sorted(degraded_from.items())},
            "thresholds": thresholds, "mistakes": refused}


def rate(counter: dict[str, int], keys: tuple[str, ...]) -> tuple[int, int]:
    n = sum(counter.values())
    return sum(counter.get(k, 0) for k in keys), n


def summary(m: dict[str, Any]) -> str:
    """The headline figures as Markdown tables."""
    lines = ["| source | n | as fundus | as external_eye | as other |", "|---|---|---|---|---|"]
    for src, c in m["modality"].items():
        n = sum(c.values())
        lines.append(f"| {src} | {n} | " + " | ".join(f"{c.get(k, 0)} ({100 * c.get(k, 0) / n:.1f}%)"
                                                     for k in MODALITIES) + " |")
    lines += ["", "| source | n | graded % | " + " | ".join(OUTCOMES) + " |",
              "|---|---|---|" + "---|" * len(OUTCOMES)]
    for src, c in m["gate"].items():
        n = sum(c.values())
        lines.append(f"| {src} | {n} | {100 * c.get('graded', 0) / max(n, 1):.1f} | "
                     + " | ".join(str(c.get(k, 0)) for k in OUTCOMES) + " |")
    e = m["eyeq"]
    if e:
        caught, nr = rate(e.get("reject", {}), OUTCOMES[1:])
        good, ng = rate(e.get("good", {}), ("graded",))
        usable, nu = rate(e.get("usable", {}), ("graded",))
        lines += ["", f"EyeQ held-out patients: reject caught {caught}/{nr} = {100 * caught / max(nr, 1):.1f}%; "
                      f"good pass {good}/{ng} = {100 * good / max(ng, 1):.1f}%; "
                      f"usable pass {usable}/{nu} = {100 * usable / max(nu, 1):.1f}%"]
    lines += ["", "degradation -> reason: " + "; ".join(f"{k}: {dict(v)}" for k, v in m["degraded_reasons"].items())]
    g = m["gate"]
    fundus = {k: v for k, v in g.items() if not k.startswith(("degraded", "external", "other", "eyepacs"))}
    worst = min(fundus.items(), key=lambda kv: kv[1].get("graded", 0) / max(sum(kv[1].values()), 1)) if fundus else None
    ext = g.get("external-eye", {})
    oth = g.get("other", {})
    lines += ["", "Targets: fundus graded >= 99% on every collection and frame format (lowest: "
              + (f"{worst[0]} {100 * worst[1].get('graded', 0) / max(sum(worst[1].values()), 1):.1f}%" if worst else "-")
              + f"); external eye recognised >= 97% ({100 * ext.get('external_eye', 0) / max(sum(ext.values()), 1):.1f}%"
              + f", graded {ext.get('graded', 0)}); other never graded (graded {oth.get('graded', 0)} of "
              + f"{sum(oth.values())})",
              "Thresholds: " + ", ".join(f"{k} {v:.4g}" for k, v in m["thresholds"].items())]
    return "\n".join(lines)


# What a camera's check photographs stand for in the leave-one-camera-out report: the labels that mean
# "should be refused" and "should pass" (eyepacs-256: EyeQ; odir-384: its graders' keyword remarks, see
# gate.KEYWORD_QUALITY; fundus-dr and idrid carry no quality label: every photograph is gradable)
REJECT_LABELS = ("reject",)
GOOD_LABELS = ("good", "gradable")
LOCO_TARGET = {"rejects_caught": 0.75, "good_pass": 0.95}


def _share(table: dict[str, dict[str, int]], labels: tuple[str, ...], outcomes: tuple[str, ...]) -> list[int]:
    """[how many of the photographs with these labels had these outcomes, how many there were]."""
    rows = [table.get(q, {}) for q in labels]
    return [sum(r.get(o, 0) for r in rows for o in outcomes), sum(sum(r.values()) for r in rows)]


def loco_row(m: dict[str, Any], left_out: str) -> dict[str, Any]:
    """One line of the leave-one-camera-out report, from a fold's ``evaluate``
    result: on the left-out camera's check photographs, the rejects caught (any
    outcome but graded) and the good photographs passed (graded), its usable
    ones passed, the synthetic degradations made from its photographs refused;
    on every other collection, the share of its gradable photographs still graded
    (a fold must not refuse another camera en masse). Pairs are [count, of]."""
    by = m.get("by_label", {})
    row: dict[str, Any] = {"left_out": left_out or "none"}
    for coll, table in by.items():
        row[coll] = {"rejects_caught": _share(table, REJECT_LABELS, OUTCOMES[1:]),
                     "good_pass": _share(table, GOOD_LABELS, ("graded",)),
                     "usable_pass": _share(table, ("usable",), ("graded",)),
                     "degraded_refused": _share({"d": m.get("degraded_from", {}).get(coll, {})}, ("d",),
                                                OUTCOMES[1:])}
    if left_out:
        own = row.get(left_out, {})
        caught, good = own.get("rejects_caught", [0, 0]), own.get("good_pass", [0, 0])
        row["meets_target"] = (None if not caught[1] else caught[0] >= LOCO_TARGET["rejects_caught"] * caught[1]
                               and good[0] >= LOCO_TARGET["good_pass"] * good[1])
    oth = m.get("gate", {}).get("other", {})
    row["other_graded"] = [oth.get("graded", 0), sum(oth.values())]
    return row


def _pct(pair: list[int]) -> str:
    return "-" if not pair[1] else f"{pair[0]}/{pair[1]} = {100 * pair[0] / pair[1]:.1f}%"


def loco_table(rows: list[dict[str, Any]]) -> str:
    """The leave-one-camera-out report as Markdown: a line per fold."""
    lines = ["| left out | its rejects caught | its good passed | its usable passed | its degradations refused "
             "| other collections' good passed (lowest) | `other` graded |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        colls = [c for c in FUNDUS_COLLECTIONS if c in r]
        own = r.get(r["left_out"], {})
        rest = [(c, r[c]["good_pass"]) for c in colls if c != r["left_out"] and r[c]["good_pass"][1]]
        low = min(rest, key=lambda cp: cp[1][0] / cp[1][1]) if rest else None
        lines.append(f"| {r['left_out']} | {_pct(own.get('rejects_caught', [0, 0]))} | "
                     f"{_pct(own.get('good_pass', [0, 0]))} | {_pct(own.get('usable_pass', [0, 0]))} | "
                     f"{_pct(own.get('degraded_refused', [0, 0]))} | "
                     f"{(low[0] + ' ' + _pct(low[1])) if low else '-'} | {_pct(r['other_graded'])} |")
    return "\n".join(lines)


def write_report(path: Path, metrics: dict[str, Any]) -> None:
    path.write_text(json.dumps(metrics, indent=1, default=float) + "\n", encoding="utf-8")



if __name__ == "__main__":   # print the tables of a written gate: python -m eyescreen_desktop.training.gate_eval [folder]
    import sys

    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "models" / "eyescreen-gate"
    print(summary(json.loads((folder / "metrics.json").read_text(encoding="utf-8"))))
