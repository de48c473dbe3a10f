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

from ..core.gate import (MODALITIES, FeatureVerdict, _sigmoid, decide_gate, ppca_distance, quality_vector,
                         verdict_from_probs)

OUTCOMES = ("graded", "ungradable", "learned_reject", "unfamiliar", "external_eye", "not_fundus")


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def feature_verdict(d: dict[str, Any], heads: dict, thresholds: dict) -> FeatureVerdict:
    """What ``Gate.judge`` says, from a cached description."""
    x = quality_vector(d["embedding"], d["metrics"])
    z = (x - heads["q_mean"]) / heads["q_std"]
    p_reject = _sigmoid(float(z @ heads["reject_w"] + heads["reject_b"]))
    p_good = _sigmoid(float(z @ heads["good_w"] + heads["good_b"]))
    dist = ppca_distance(np.asarray(d["embedding"], np.float64), heads)
    quality = "reject" if p_reject >= thresholds["reject"] else ("good" if p_good >= 0.5 else "usable")
    return FeatureVerdict(quality, p_reject, p_good, dist, dist > thresholds["unfamiliar"])


def outcome(d: dict[str, Any], modality: str, heads: dict, thresholds: dict) -> tuple[str, tuple[str, ...]]:
    """The full gate's decision for one described picture: (outcome, reasons)."""
    if modality != "fundus" or "embedding" not in d:
        return ("external_eye" if modality == "external_eye" else "not_fundus"), ()
    status, reasons = decide_gate(modality, d["status"], tuple(d["reasons"]),
                                  feature_verdict(d, heads, thresholds), d["metrics"])
    if status == "ok":
        return "graded", ()
    if reasons and reasons[0] == "unfamiliar":
        return "unfamiliar", reasons
    if tuple(d["reasons"]):
        return "ungradable", reasons
    return "learned_reject", reasons


def evaluate(items: list, desc: dict, heads: dict, thresholds: dict, mod_w: np.ndarray,
             mod_b: np.ndarray) -> dict[str, Any]:
    """Every figure of docs/quality-gate.md's learned-gate section, on ``check`` pictures."""
    chk = [it for it in items if it.part == "check"]
    lite = np.stack([desc[it.key]["lite"] for it in chk]).astype(np.float64)
    probs = _softmax(lite @ mod_w + mod_b)
    modality_table: dict[str, Counter] = defaultdict(Counter)
    gate_table: dict[str, Counter] = defaultdict(Counter)
    eyeq: dict[str, Counter] = defaultdict(Counter)
    reasons_ok: dict[str, Counter] = defaultdict(Counter)
    refused: list[dict[str, Any]] = []
    for it, p in zip(chk, probs):
        seen = verdict_from_probs(p, thresholds.get("fundus_min_prob", 0.0))
        label = seen.label
        src = it.source
        modality_table[src][label] += 1
        d = desc[it.key]
        if seen.doubtful:
            gate_table[src]["unfamiliar"] += 1
            if it.modality == "fundus":
                refused.append({"key": it.key, "outcome": "unfamiliar", "reasons": ["unfamiliar"], "source": src,
                                "quality": it.quality})
            continue
        if it.modality != "fundus" and "embedding" not in d:
            gate_table[src]["graded" if label == "fundus" else label if label == "external_eye" else "not_fundus"] += 1
            if label == "fundus":
                refused.append({"key": it.key, "outcome": "graded?", "reasons": [], "source": src})
            continue
        out, why = outcome(d, label, heads, thresholds)
        gate_table[src][out] += 1
        if src == "eyepacs-256":
            eyeq[it.quality][out] += 1
        if src.startswith("degraded"):
            reasons_ok[src]["expected" if it.reason in why else (why[0] if why else out)] += 1
        if out != "graded" and it.modality == "fundus":
            refused.append({"key": it.key, "outcome": out, "reasons": list(why), "source": src,
                            "quality": it.quality})
    return {"modality": {k: dict(v) for k, v in sorted(modality_table.items())},
            "gate": {k: dict(v) for k, v in sorted(gate_table.items())},
            "eyeq": {k: dict(v) for k, v in eyeq.items()},
            "degraded_reasons": {k: dict(v) for k, v in reasons_ok.items()},
            "thresholds": thresholds, "refused": refused}


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
    lines += ["", "| source | n | " + " | ".join(OUTCOMES) + " |", "|---|---|" + "---|" * len(OUTCOMES)]
    for src, c in m["gate"].items():
        lines.append(f"| {src} | {sum(c.values())} | " + " | ".join(str(c.get(k, 0)) for k in OUTCOMES) + " |")
    e = m["eyeq"]
    if e:
        caught, nr = rate(e.get("reject", {}), OUTCOMES[1:])
        good, ng = rate(e.get("good", {}), ("graded",))
        usable, nu = rate(e.get("usable", {}), ("graded",))
        lines += ["", f"EyeQ held-out patients: reject caught {caught}/{nr} = {100 * caught / max(nr, 1):.1f}%; "
                      f"good pass {good}/{ng} = {100 * good / max(ng, 1):.1f}%; "
                      f"usable pass {usable}/{nu} = {100 * usable / max(nu, 1):.1f}%"]
    lines += ["", "degradation -> reason: " + "; ".join(f"{k}: {dict(v)}" for k, v in m["degraded_reasons"].items())]
    return "\n".join(lines)


def write_report(path: Path, metrics: dict[str, Any]) -> None:
    path.write_text(json.dumps(metrics, indent=1, default=float) + "\n", encoding="utf-8")

