"""What the validation patients choose after training: which outputs the model
ships (a learnt head, or the sum of grade probabilities, whichever ranks better),
the maculopathy threshold, and the operating points (by the one threshold rule
of ``domain.thresholds``: on the worst camera, on all validation photographs
pooled, and per collection) with the validation metrics the model card reports."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..domain.grades import referred_array, risks_from_grades
from ..domain.thresholds import thresholds_from_arrays
from . import data as D
from . import metrics as M

#: maculopathy fires on its own (a routine referral) only above this specificity on labelled validation eyes
MACULOPATHY_SPECIFICITY = 0.95


def choose_outputs(pred: dict[str, np.ndarray], targets: dict[str, np.ndarray]) -> dict[str, str]:
    """For referable and urgent: keep the learnt sigmoid head when its validation
    AUC is at least that of the sum of grade probabilities, else derive it from
    the grade (the classifier sums the softmax when a head is absent)."""
    g = pred["grade"]
    chosen = {}
    for name, derived in zip(("referable", "urgent"), risks_from_grades(g)):
        y = targets[name].ravel()
        chosen[name] = "head" if M.roc_auc(y, pred[name]) >= M.roc_auc(y, derived) else "grade"
    mac = targets.get("maculopathy")
    if "maculopathy" in pred and mac is not None and (np.ravel(mac) > 0).any():
        chosen["maculopathy"] = "head"      # no grade-derived fallback; only when some eye was labelled
    return chosen


def export_view(model: Any, outputs: dict[str, str]) -> Any:
    """The model to ship: ``grade`` plus the heads validation chose (same layers)."""
    import keras

    keep = {"grade": model.get_layer("grade").output}
    for name, how in outputs.items():
        if how == "head":
            keep[name] = model.get_layer(name).output
    return keras.Model(model.inputs, keep, name="eyescreen")


def maculopathy_auc(y_mac: np.ndarray, p_mac: np.ndarray) -> float | None:
    """AUC of the maculopathy output on the eyes that carry the label (-1 = not
    graded); None unless both classes are among them."""
    known = np.asarray(y_mac) >= 0
    y = np.asarray(y_mac)[known]
    return M.roc_auc(y, np.asarray(p_mac)[known]) if len(set(y)) == 2 else None


def maculopathy_threshold(y_mac: np.ndarray, p_mac: np.ndarray) -> float | None:
    """Maculopathy refers an eye on its own above the threshold that keeps
    ``MACULOPATHY_SPECIFICITY`` on labelled validation eyes (-1 = not labelled); the
    referable output already learnt maculopathy as referable, so this only adds the
    confident cases and names the finding. None when no eye of either class is labelled."""
    y_mac, p_mac = np.asarray(y_mac), np.asarray(p_mac, float)
    known = y_mac >= 0
    if not ((y_mac[known] == 1).any() and (y_mac[known] == 0).any()):
        return None
    neg = np.sort(p_mac[known & (y_mac == 0)])
    t = neg[min(len(neg) - 1, int(np.ceil(MACULOPATHY_SPECIFICITY * len(neg))))]
    return float(np.ceil(t * 1e6) / 1e6) if t < 1 else 1.0


def operating_points(outputs: dict[str, np.ndarray], samples: Sequence[D.Sample],
                     threshold_collections: Sequence[str] = ()) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """Operating points chosen on validation patients, from the probabilities the
    classifier will compute.

    ``default`` is chosen on the worst camera, by site calibration's own rule over every
    collection (``core.calibration.Rule``: referable sensitivity >= 0.90 and urgent
    >= 0.97 on each, no urgent eye in annual), or by the same rule on the validation photographs of
    ``threshold_collections`` when given; ``all-validation`` (all pooled) and one
    point per collection (each alone), by the same rule, are stored beside it, so a site can switch to the one closest
    to its camera. Every point carries the maculopathy threshold when the model has
    that output. Returns the points and the validation metrics of the default point on
    every validation photograph (with a per-collection breakdown)."""
    from ..core.classifier import predictions_from_outputs
    from .evaluate import screening_summary

    preds = predictions_from_outputs(outputs)
    p_ref = np.array([p.p_referable for p in preds])
    p_urg = np.array([p.p_urgent for p in preds])
    has_mac = preds[0].p_maculopathy is not None if preds else False
    p_mac = np.array([p.p_maculopathy if has_mac else 0.0 for p in preds])
    y_ref = np.array([s.referable for s in samples])
    y_urg = np.array([s.urgent for s in samples])
    y_mac = np.array([s.maculopathy for s in samples])
    colls = np.array([s.collection for s in samples])
    t_mac = maculopathy_threshold(y_mac, p_mac) if has_mac else None
    mac_flag = p_mac >= t_mac if t_mac is not None else np.zeros(len(samples), bool)
    def pick(m: np.ndarray, groups: np.ndarray = colls) -> dict[str, float]:
        """The one threshold rule (domain.thresholds) on the photographs ``m``."""
        return vars(thresholds_from_arrays(y_ref[m], p_ref[m], y_urg[m], p_urg[m], groups[m], also_flagged=mac_flag[m]))

    everything = np.ones(len(colls), bool)
    if threshold_collections:
        chosen = np.isin(colls, list(threshold_collections))
        if not chosen.any():
            raise D.DataError(f"no validation photographs from {', '.join(threshold_collections)} to choose "
                              "operating points on; check --thresholds-on")
        default = pick(chosen)
    else:
        default = pick(everything)
    ops = {"default": default, "all-validation": pick(everything, np.full(len(colls), "all")),
           **{c: pick(colls == c) for c in sorted(set(colls))}}
    if t_mac is not None:
        ops = {name: {**op, "maculopathy": t_mac} for name, op in ops.items()}
    op = ops["default"]
    groups = [s.patient for s in samples]
    summary = screening_summary(y_ref, p_ref, y_urg, p_urg, groups, op["referable"], op["urgent"], n_boot=1000)
    flagged = referred_array(p_ref, p_urg, op["referable"], op["urgent"], mac_flag)
    metrics = {"photographs": len(samples), "patients": len(set(groups)),
               "default_chosen_on": sorted(threshold_collections) or "every collection (worst camera)",
               "urgent_in_annual": int(((y_urg == 1) & ~flagged).sum()),
               **_jsonable(summary),
               "maculopathy_auc": maculopathy_auc(y_mac, p_mac) if has_mac else None,
               "per_collection": _per_collection(samples, p_ref, p_urg, p_mac if has_mac else None, mac_flag, op)}
    return ops, metrics


def _per_collection(samples: Sequence[D.Sample], p_ref: np.ndarray, p_urg: np.ndarray, p_mac: np.ndarray | None,
                    mac_flag: np.ndarray, op: dict[str, float]) -> dict[str, dict[str, Any]]:
    out = {}
    for coll in sorted({s.collection for s in samples}):
        m = np.array([s.collection == coll for s in samples])
        sub = [s for s in samples if s.collection == coll]
        y_ref = np.array([s.referable for s in sub])
        y_urg = np.array([s.urgent for s in sub])
        y_mac = np.array([s.maculopathy for s in sub])
        flagged = referred_array(p_ref[m], p_urg[m], op["referable"], op["urgent"], mac_flag[m])
        groups = [s.patient for s in sub]
        auc, lo, hi = M.auc_ci(y_ref, p_ref[m], groups, n_boot=1000)
        out[coll] = {"photographs": int(m.sum()), "patients": len(set(groups)),
                     "referable_auc": auc, "referable_auc_ci95": [lo, hi],
                     "urgent_auc": M.roc_auc(y_urg, p_urg[m]),
                     "referable_sensitivity": M.sens_spec(y_ref, flagged.astype(float), 0.5)[0],
                     "referable_specificity": M.sens_spec(y_ref, flagged.astype(float), 0.5)[1],
                     "urgent_sensitivity": M.sens_spec(y_urg, p_urg[m], op["urgent"])[0],
                     "urgent_specificity": M.sens_spec(y_urg, p_urg[m], op["urgent"])[1],
                     "urgent_in_annual": int(((y_urg == 1) & ~flagged).sum()),
                     "maculopathy_auc": maculopathy_auc(y_mac, p_mac[m]) if p_mac is not None else None}
    return out


def _jsonable(summary: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in summary.items():
        if isinstance(v, M.RateCI):
            out[k] = {"value": v.value, "ci95": [v.low, v.high], "n": [v.hits, v.total]}
        elif isinstance(v, tuple):
            out[k] = list(v)
        else:
            out[k] = v
    return out
