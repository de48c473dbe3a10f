"""Measure the quality gate against human quality labels.

Runs the same read -> find_field_of_view -> assess_quality path as the
screening engine on

* every eyepacs-256 photograph with an EyeQ quality grade (good / usable /
  reject), reporting the confusion matrix against the gate's status, the
  sensitivity for rejects (reject -> not OK) and the pass rate of good and usable
  photographs, separately for two halves split by patient (``tune`` = even
  patient id, ``check`` = odd) so a threshold tuned on one half can be checked on
  the other;
* every fundus-dr photograph (all gradable: graded by ophthalmologists), where
  nearly all should pass.

Usage::

    .venv/bin/python scripts/quality_agreement.py [--limit N] [--metrics-csv FILE] [--max-side 1024]

The numbers it prints are the ones quoted in docs/quality-gate.md.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eyescreen_desktop.core import imageio  # noqa: E402 - imported after the sys.path / environment set-up above
from eyescreen_desktop.core.fundus import assess_quality, find_field_of_view  # noqa: E402 - imported after the sys.path / environment set-up above

DATASETS = ROOT.parent / "shared" / "datasets"
LABELS = ("good", "usable", "reject")
STATUSES = ("ok", "ungradable", "not_fundus", "error")


def gate(path: Path, max_side: int) -> tuple[str, tuple[str, ...], dict[str, float]]:
    """The gate's status, reasons and metrics for one file (errors included)."""
    try:
        rgb = imageio.read_image(path, max_side=max_side)
    except imageio.ImageReadError as exc:
        return "error", (str(exc),), {}
    report = assess_quality(rgb, find_field_of_view(rgb))
    return report.status.value, report.reasons, report.metrics


def run_collection(folder: Path, max_side: int, limit: int | None, labelled_only: bool) -> list[dict]:
    """One result row per photograph of a collection."""
    with open(folder / "labels.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if labelled_only:
        rows = [r for r in rows if r.get("quality")]
    if limit:
        rows = rows[:limit]
    out = []
    for r in rows:
        status, reasons, metrics = gate(folder / "images" / r["file"], max_side)
        half = "tune" if int("".join(ch for ch in r["patient"] if ch.isdigit()) or 0) % 2 == 0 else "check"
        out.append({"collection": folder.name, "file": r["file"], "half": half,
                    "quality": r.get("quality", ""), "status": status,
                    "reasons": ";".join(reasons), **metrics})
    return out


def confusion(rows: list[dict]) -> str:
    """Quality label x gate status table, with reject sensitivity and pass rates."""
    counts = Counter((r["quality"], r["status"]) for r in rows)
    lines = ["| label \\ gate | " + " | ".join(STATUSES) + " | n |", "|---" * (len(STATUSES) + 2) + "|"]
    for label in LABELS:
        n = sum(counts[(label, s)] for s in STATUSES)
        lines.append(f"| {label} | " + " | ".join(str(counts[(label, s)]) for s in STATUSES) + f" | {n} |")
    lines.append("")
    rejects = [r for r in rows if r["quality"] == "reject"]
    if rejects:
        caught = sum(r["status"] != "ok" for r in rejects)
        lines.append(f"- reject sensitivity (reject -> not ok): {caught}/{len(rejects)} = {caught / len(rejects):.1%}")
    for label in ("good", "usable"):
        sel = [r for r in rows if r["quality"] == label]
        if sel:
            ok = sum(r["status"] == "ok" for r in sel)
            lines.append(f"- {label} pass rate: {ok}/{len(sel)} = {ok / len(sel):.1%}")
    good_usable = [r for r in rows if r["quality"] in ("good", "usable")]
    if good_usable and rejects:
        ok = sum(r["status"] == "ok" for r in good_usable)
        caught = sum(r["status"] != "ok" for r in rejects)
        lines.append(f"- good+usable pass rate: {ok}/{len(good_usable)} = {ok / len(good_usable):.1%}; "
                     f"balanced accuracy {(ok / len(good_usable) + caught / len(rejects)) / 2:.1%}")
    return "\n".join(lines)


def reason_counts(rows: list[dict]) -> str:
    """How often each reason code fired, per label."""
    lines = []
    for label in sorted({r["quality"] for r in rows}):
        c = Counter(code for r in rows if r["quality"] == label for code in r["reasons"].split(";") if code)
        lines.append(f"- {label or 'all'}: " + (", ".join(f"{k} {v}" for k, v in c.most_common()) or "none"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the agreement report (markdown) and optionally write every metric to a CSV."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="first N photographs of each collection")
    parser.add_argument("--max-side", type=int, default=1024, help="decode size hint, as the engine uses")
    parser.add_argument("--metrics-csv", type=Path, default=None, help="write per-photograph metrics here")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    eyepacs = run_collection(DATASETS / "eyepacs-256", args.max_side, args.limit, labelled_only=True)
    fundus_dr = run_collection(DATASETS / "fundus-dr", args.max_side, args.limit, labelled_only=False)
    seconds = time.perf_counter() - t0

    print(f"# Quality gate agreement ({len(eyepacs) + len(fundus_dr)} photographs, {seconds:.0f} s)\n")
    print("## eyepacs-256 vs EyeQ quality labels, all\n")
    print(confusion(eyepacs))
    for half in ("tune", "check"):
        print(f"\n## eyepacs-256, {half} half (patients split by id parity)\n")
        print(confusion([r for r in eyepacs if r["half"] == half]))
    print("\n## Reasons given (eyepacs-256)\n")
    print(reason_counts(eyepacs))
    ok = sum(r["status"] == "ok" for r in fundus_dr)
    print(f"\n## fundus-dr (all gradable)\n\n- pass rate: {ok}/{len(fundus_dr)} = {ok / max(len(fundus_dr), 1):.1%}")
    print(reason_counts([{**r, "quality": ""} for r in fundus_dr]))
    for r in fundus_dr:
        if r["status"] != "ok":
            print(f"  - {r['file']}: {r['status']} {r['reasons']}")

    if args.metrics_csv:
        keys = list(dict.fromkeys(k for r in eyepacs + fundus_dr for k in r))
        with open(args.metrics_csv, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(eyepacs + fundus_dr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
