"""``eyescreen evaluate``: how well a model folder screens labelled photographs.

The evaluation runs the product's own path, not a training shortcut: every
photograph goes through the quality gate and ``core.preprocess`` (cached), the
model is loaded with :class:`core.classifier.Classifier` (hash checked) and the
queue comes from ``core.protocol`` at the model card's operating point. Photos
the gate refuses land in *review*, as at the clinic, and are counted.

The report (``report.md`` + PNG plots + ``predictions.csv``) gives ROC curves
and AUC for referable and urgent, sensitivity and specificity at the operating
point with 95% confidence intervals from a bootstrap over *patients*, the queue
confusion matrix (true triage vs predicted queue), calibration, and the same
figures per collection. Restrict it to the validation (or test) patients of a
training run with ``--split models/NAME/split.csv --part val``.
"""

from __future__ import annotations

import argparse
import csv
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..domain.grades import referred_array
from . import metrics as M
from .data import ImageCache, Sample, load_samples, read_split, select_part

log = logging.getLogger(__name__)

TRUE_QUEUE_WORDS = {"urgent": "urgent (ICDR 3-4)", "routine": "routine (referable)", "annual": "annual"}


# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``eyescreen evaluate``."""
    parser.add_argument("--data", type=Path, action="append", required=True,
                        help="labels.csv manifest or class-folder tree (repeat for several)")
    parser.add_argument("--model", type=Path, default=None,
                        help="model folder (default: the shipped models/eyescreen-dr)")
    parser.add_argument("--out", type=Path, required=True, help="folder for report.md, plots and predictions.csv")
    parser.add_argument("--split", type=Path, default=None,
                        help="split.csv written by `eyescreen train` (default: the model folder's, if any)")
    parser.add_argument("--part", default="all", choices=("all", "train", "val", "test"),
                        help="evaluate only these patients of the split (default: all photographs)")
    parser.add_argument("--operating-point", default=None, help="operating point name from the model card")
    parser.add_argument("--protocol", default="icdr-ada", help="protocol that maps probabilities to queues")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates for the 95%% CIs")
    parser.add_argument("--batch-size", type=int, default=32)


def run(args: argparse.Namespace) -> int:
    """Evaluate and write the report; prints where it is and the headline numbers."""
    from ..core.classifier import Classifier
    from ..core.paths import default_model_dir

    model_dir = args.model or default_model_dir()
    classifier = Classifier.load(model_dir, backend="keras")
    samples, _ = load_samples(args.data, drop_quality=())
    split_file = args.split or (Path(model_dir) / "split.csv")
    if args.part != "all":
        if not split_file.is_file():
            print(f"--part {args.part} needs a split file: {split_file} does not exist")
            return 2
        samples = select_part(samples, read_split(split_file), args.part)
    if not samples:
        print("no photographs to evaluate (check --data and --part)")
        return 2
    t0 = time.time()
    result = evaluate(classifier, samples, op_name=args.operating_point, protocol=args.protocol,
                      batch_size=args.batch_size)
    report = write_report(result, args.out, n_boot=args.bootstrap,
                          title=f"{classifier.card.name} {classifier.card.version} on {args.part} photographs")
    s = result.summary(args.bootstrap)
    print(f"evaluated {len(samples)} photographs in {time.time() - t0:.0f} s -> {report}")
    print(f"referable AUC {s['referable_auc']:.3f}, urgent AUC {s['urgent_auc']:.3f}, "
          f"urgent eyes in annual: {s['urgent_in_annual']}, gated: {s['gated']}")
    return 0


# --------------------------------------------------------------------------- evaluation


@dataclass
class EvalResult:
    """Per-photograph outcomes of one evaluation (gated photographs have NaN probabilities)."""

    samples: list[Sample]
    status: list[str]
    reasons: list[tuple[str, ...]]
    p_referable: np.ndarray
    p_urgent: np.ndarray
    grade_probs: np.ndarray
    queue: list[str]
    threshold_referable: float
    threshold_urgent: float
    model: dict[str, str] = field(default_factory=dict)

    @property
    def gradable(self) -> np.ndarray:
        return np.array([s == "ok" for s in self.status])

    @property
    def true_queue(self) -> list[str]:
        return [true_queue(s) for s in self.samples]

    def subset(self, mask: np.ndarray) -> "EvalResult":
        idx = np.flatnonzero(mask)
        pick = lambda xs: [xs[i] for i in idx]  # noqa: E731 - a one-line helper used only here
        return EvalResult(pick(self.samples), pick(self.status), pick(self.reasons), self.p_referable[idx],
                          self.p_urgent[idx], self.grade_probs[idx], pick(self.queue),
                          self.threshold_referable, self.threshold_urgent, self.model)

    def summary(self, n_boot: int = 1000) -> dict[str, Any]:
        """Headline figures on the gradable photographs (and queue counts on all)."""
        ok = self.gradable
        return {
            "photographs": len(self.samples), "gated": int((~ok).sum()),
            **screening_summary(
                np.array([s.referable for s in self.samples])[ok], self.p_referable[ok],
                np.array([s.urgent for s in self.samples])[ok], self.p_urgent[ok],
                [s.patient for s, g in zip(self.samples, ok) if g],
                self.threshold_referable, self.threshold_urgent, n_boot),
            "urgent_in_annual": sum(1 for t, q in zip(self.true_queue, self.queue) if t == "urgent" and q == "annual"),
        }


def true_queue(s: Sample) -> str:
    """The queue a photograph's label implies: urgent (ICDR 3-4), routine (referable), annual."""
    return "urgent" if s.urgent else "routine" if s.referable else "annual"


def screening_summary(y_ref: np.ndarray, p_ref: np.ndarray, y_urg: np.ndarray, p_urg: np.ndarray,
                      groups: Sequence[str], t_ref: float, t_urg: float, n_boot: int = 1000) -> dict[str, Any]:
    """AUCs and sensitivity/specificity at the thresholds, each with a patient-bootstrap 95% CI.

    An eye counts as flagged referable when either threshold fires, as in
    ``core.protocol`` (an urgent eye is always referred)."""
    flag_ref = referred_array(p_ref, p_urg, t_ref, t_urg).astype(float)
    out: dict[str, Any] = {}
    for name, y, p, flagged in (("referable", y_ref, p_ref, flag_ref), ("urgent", y_urg, p_urg, p_urg >= t_urg)):
        auc, lo, hi = M.auc_ci(y, p, groups, n_boot)
        sens, spec = M.sens_spec_ci(y, np.asarray(flagged, float), 0.5, groups, n_boot)
        out.update({f"{name}_auc": auc, f"{name}_auc_ci": (lo, hi), f"{name}_sensitivity": sens,
                    f"{name}_specificity": spec})
    return out


def evaluate(classifier: Any, samples: Sequence[Sample], op_name: str | None = None,
             protocol: str = "icdr-ada", batch_size: int = 32, cache: ImageCache | None = None) -> EvalResult:
    """Gate, preprocess (cached), predict and decide every photograph."""
    from ..core.protocol import get_protocol
    from ..core.records import Queue

    card = classifier.card
    op = card.operating_points[op_name] if op_name else card.operating_point
    cache = cache or ImageCache(card.input_size)
    images, verdicts = cache.load(samples, progress=lambda i, n: print(f"  prepared {i}/{n}", flush=True))
    n = len(samples)
    p_ref, p_urg = np.full(n, np.nan), np.full(n, np.nan)
    probs = np.full((n, 5), np.nan)
    queues = [Queue.REVIEW.value] * n
    ok = [i for i, v in enumerate(verdicts) if v.status == "ok"]
    proto = get_protocol(protocol)
    for start in range(0, len(ok), batch_size):
        idx = ok[start:start + batch_size]
        for i, pred in zip(idx, classifier.predict(images[idx])):
            p_ref[i], p_urg[i], probs[i] = pred.p_referable, pred.p_urgent, pred.grade_probs
            queues[i] = proto.decide_eye(pred, op).queue.value
    return EvalResult(list(samples), [v.status for v in verdicts], [v.reasons for v in verdicts],
                      p_ref, p_urg, probs, queues, op.referable, op.urgent,
                      {"name": card.name, "version": card.version, "sha256": card.weights_sha256,
                       "operating_point": op.name, "protocol": protocol})


# --------------------------------------------------------------------------- report


def write_report(result: EvalResult, out: Path, n_boot: int = 1000, title: str = "evaluation") -> Path:
    """Write ``report.md``, the PNG plots and ``predictions.csv`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_predictions(result, out / "predictions.csv")
    ok = result.gradable
    plots = {
        "roc": plot_roc(result.subset(ok), out / "roc.png"),
        "calibration": plot_calibration(result.subset(ok), out / "calibration.png"),
        "queues": plot_confusion(result, out / "queues.png"),
    }
    text = report_markdown(result, n_boot, title, {k: v.name for k, v in plots.items()})
    path = out / "report.md"
    path.write_text(text, encoding="utf-8")
    return path


def report_markdown(result: EvalResult, n_boot: int, title: str, plots: dict[str, str]) -> str:
    """The report's text: headline table, gate counts, queue matrix, per collection."""
    s = result.summary(n_boot)
    m = result.model
    lines = [f"# Evaluation: {title}", "",
             f"Model `{m.get('name')}` {m.get('version')} (weights SHA-256 `{m.get('sha256', '')[:16]}...`), "
             f"operating point `{m.get('operating_point')}` (referable >= {result.threshold_referable:.4f}, "
             f"urgent >= {result.threshold_urgent:.4f}), protocol `{m.get('protocol')}`.", "",
             f"{s['photographs']} photographs of {len({x.patient for x in result.samples})} patients; "
             f"{s['gated']} refused by the quality gate (queue *review*, left out of AUC/sensitivity). "
             f"95% confidence intervals: {n_boot} bootstrap resamples of patients. "
             "Research and evaluation only; not for clinical use.", "",
             "## Headline (gradable photographs)", "", *_headline_table(s), "",
             f"**Urgent eyes (ICDR 3-4) placed in the annual queue: {s['urgent_in_annual']}** "
             "(the one error a screening service must not make).", "",
             f"![ROC curves]({plots['roc']})", "",
             "## Queue confusion matrix (every photograph, per eye)", "",
             "Rows: the queue the label implies; columns: the queue EyeScreen chose.", "",
             *_confusion_table(result), "", f"![Queue confusion]({plots['queues']})", "",
             "## Quality gate", "", *_gate_lines(result), "",
             "## Calibration", "",
             "Predicted probability against the observed fraction, in ten bins. Training weighted the rare "
             "classes up, so probabilities run high; the operating points, not 0.5, turn them into decisions.",
             "", f"![Calibration]({plots['calibration']})", "",
             "## Per collection", "", *_collection_table(result, n_boot), ""]
    return "\n".join(lines) + "\n"


def _headline_table(s: dict[str, Any]) -> list[str]:
    rows = ["| decision | AUC (95% CI) | sensitivity (95% CI) [n] | specificity (95% CI) [n] |",
            "|---|---|---|---|"]
    for name in ("referable", "urgent"):
        lo, hi = s[f"{name}_auc_ci"]
        rows.append(f"| {name} | {s[f'{name}_auc']:.3f} ({lo:.3f}-{hi:.3f}) | "
                    f"{s[f'{name}_sensitivity'].text()} | {s[f'{name}_specificity'].text()} |")
    return rows


def _confusion_table(result: EvalResult) -> list[str]:
    cm = M.confusion(result.true_queue, result.queue)
    head = "| true \\ predicted | " + " | ".join(M.QUEUE_ORDER) + " |"
    rows = [head, "|---" * (len(M.QUEUE_ORDER) + 1) + "|"]
    for i, name in enumerate(M.QUEUE_ORDER):
        if name == "review":
            continue  # labels never say "review"
        rows.append(f"| {TRUE_QUEUE_WORDS[name]} | " + " | ".join(str(v) for v in cm[i]) + " |")
    return rows


def _gate_lines(result: EvalResult) -> list[str]:
    from collections import Counter

    by = Counter((s.collection, st) for s, st in zip(result.samples, result.status))
    reasons = Counter(r for st, rs in zip(result.status, result.reasons) if st != "ok" for r in rs)
    lines = ["| collection | ok | ungradable | not fundus | unreadable |", "|---|---|---|---|---|"]
    for coll in sorted({s.collection for s in result.samples}):
        lines.append(f"| {coll} | {by[(coll, 'ok')]} | {by[(coll, 'ungradable')]} | "
                     f"{by[(coll, 'not_fundus')]} | {by[(coll, 'error')]} |")
    if reasons:
        lines += ["", "Reasons: " + ", ".join(f"{r} {n}" for r, n in reasons.most_common())]
    return lines


def _collection_table(result: EvalResult, n_boot: int) -> list[str]:
    rows = ["| collection | photos (gated) | referable AUC | urgent AUC | referable sens / spec | "
            "urgent sens / spec | urgent in annual |", "|---|---|---|---|---|---|---|"]
    for coll in sorted({s.collection for s in result.samples}):
        sub = result.subset(np.array([s.collection == coll for s in result.samples]))
        s = sub.summary(n_boot)
        rows.append(
            f"| {coll} | {s['photographs']} ({s['gated']}) | {_auc_text(s, 'referable')} | {_auc_text(s, 'urgent')} | "
            f"{s['referable_sensitivity'].value:.3f} / {s['referable_specificity'].value:.3f} | "
            f"{s['urgent_sensitivity'].value:.3f} / {s['urgent_specificity'].value:.3f} | {s['urgent_in_annual']} |")
    return rows


def _auc_text(s: dict[str, Any], name: str) -> str:
    lo, hi = s[f"{name}_auc_ci"]
    return f"{s[f'{name}_auc']:.3f} ({lo:.3f}-{hi:.3f})"


def write_predictions(result: EvalResult, path: Path) -> None:
    """One row per photograph: labels, gate verdict, probabilities, queues."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["key", "patient", "eye", "collection", "icdr_grade", "referable", "urgent", "status",
                    "reasons", "p_referable", "p_urgent", *[f"p_grade{g}" for g in range(5)],
                    "true_queue", "queue"])
        for i, s in enumerate(result.samples):
            w.writerow([s.key, s.patient, s.eye, s.collection, s.grade, s.referable, s.urgent, result.status[i],
                        " ".join(result.reasons[i]), _fmt(result.p_referable[i]), _fmt(result.p_urgent[i]),
                        *[_fmt(v) for v in result.grade_probs[i]], true_queue(s), result.queue[i]])


def _fmt(x: float) -> str:
    return "" if np.isnan(x) else f"{x:.5f}"


# --------------------------------------------------------------------------- plots


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_roc(result: EvalResult, path: Path) -> Path:
    """ROC curves for referable and urgent, each marked at its operating point."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    for ax, name, p, t in ((axes[0], "referable", result.p_referable, result.threshold_referable),
                           (axes[1], "urgent", result.p_urgent, result.threshold_urgent)):
        y = np.array([getattr(s, name) for s in result.samples])
        for coll in [None, *sorted({s.collection for s in result.samples})]:
            mask = np.ones(len(y), bool) if coll is None else np.array([s.collection == coll for s in result.samples])
            if y[mask].min(initial=1) == y[mask].max(initial=0):
                continue
            fpr, tpr, _ = M.roc_curve(y[mask], p[mask])
            ax.plot(fpr, tpr, lw=2 if coll is None else 1, ls="-" if coll is None else "--",
                    label=f"{coll or 'all'} (AUC {M.roc_auc(y[mask], p[mask]):.3f})")
        sens, spec = M.sens_spec(y, p, t)
        ax.plot([1 - spec], [sens], "o", color="black", label=f"operating point ({sens:.2f} / {spec:.2f})")
        ax.plot([0, 1], [0, 1], color="grey", lw=0.5)
        ax.set(title=f"{name}", xlabel="1 - specificity", ylabel="sensitivity", xlim=(0, 1), ylim=(0, 1.01))
        ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def plot_calibration(result: EvalResult, path: Path) -> Path:
    """Reliability diagram for the referable and urgent probabilities."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4.6))
    for name, p in (("referable", result.p_referable), ("urgent", result.p_urgent)):
        y = np.array([getattr(s, name) for s in result.samples])
        mean_p, frac, counts = M.calibration_bins(y, p)
        ax.plot(mean_p, frac, "o-", label=name)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.5, label="perfect")
    ax.set(xlabel="predicted probability", ylabel="observed fraction", xlim=(0, 1), ylim=(0, 1), title="calibration")
    ax.legend(loc="upper left")
    return _save(fig, path)


def plot_confusion(result: EvalResult, path: Path) -> Path:
    """Queue confusion matrix as a labelled heat map."""
    plt = _pyplot()
    cm = M.confusion(result.true_queue, result.queue)
    keep = [i for i, q in enumerate(M.QUEUE_ORDER) if q != "review"]
    cm = cm[keep]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.imshow(cm / np.maximum(cm.sum(axis=1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
    for r in range(cm.shape[0]):
        for c in range(cm.shape[1]):
            ax.text(c, r, str(cm[r, c]), ha="center", va="center", fontsize=11)
    ax.set_xticks(range(4), M.QUEUE_ORDER)
    ax.set_yticks(range(len(keep)), [M.QUEUE_ORDER[i] for i in keep])
    ax.set(xlabel="EyeScreen queue", ylabel="queue the label implies", title="queues (per eye)")
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return Path(path)
