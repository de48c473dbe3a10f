"""Compare training runs on their (shared) validation patients as a Markdown table.

``python -m eyescreen_desktop.training.compare RUN_FOLDER [RUN_FOLDER ...]``
reads each run's ``training.json`` and prints one row per run (all validation
photographs) and one per run and collection, at each run's default operating
point; runs made with
the same data, validation fraction and seed have the same validation patients
(checked: the table refuses runs whose ``split.csv`` validation sides differ).
This is how the recipe table in docs/training.md is made.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

from .data import read_split

HEADER = ("| run | recipe | input | referable AUC (95% CI) | urgent AUC (95% CI) | maculopathy AUC "
          "| referable sens / spec | urgent sens / spec | urgent eyes in annual | training time |")
COLLECTION_HEADER = ("| run | collection | photos | referable AUC (95% CI by patient) | urgent AUC | maculopathy AUC "
                     "| referable sens / spec | urgent sens / spec | urgent eyes in annual |")


def row(name: str, run: dict[str, Any]) -> str:
    """One table row from a run's training.json: every validation photograph."""
    v = run["validation"]
    recipe = run["config"]["recipe"]
    return (f"| {name} | {recipe['name']}{' (fine-tuned)' if recipe['fine_tune'] else ' (frozen base)'} "
            f"| {recipe['input_size']} px | {_ci(v, 'referable_auc')} | {_ci(v, 'urgent_auc')} "
            f"| {_num(v.get('maculopathy_auc'))} "
            f"| {_rate(v['referable_sensitivity'])} / {_rate(v['referable_specificity'])} "
            f"| {_rate(v['urgent_sensitivity'])} / {_rate(v['urgent_specificity'])} | {v['urgent_in_annual']} "
            f"| {run['minutes']:.0f} min |")


def collection_rows(name: str, run: dict[str, Any]) -> list[str]:
    """One row per collection at the run's default operating point."""
    rows = []
    for coll, m in run["validation"].get("per_collection", {}).items():
        ci = m.get("referable_auc_ci95")
        auc = f"{m['referable_auc']:.3f}" + (f" ({ci[0]:.3f}-{ci[1]:.3f})" if ci else "")
        rows.append(f"| {name} | {coll} | {m['photographs']} | {auc} | {m['urgent_auc']:.3f} "
                    f"| {_num(m.get('maculopathy_auc'))} "
                    f"| {m['referable_sensitivity']:.2f} / {m['referable_specificity']:.2f} "
                    f"| {m['urgent_sensitivity']:.2f} / {m.get('urgent_specificity', float('nan')):.2f} "
                    f"| {m['urgent_in_annual']} |")
    return rows


def _ci(v: dict[str, Any], key: str) -> str:
    lo, hi = v[f"{key}_ci"]
    return f"{v[key]:.3f} ({lo:.3f}-{hi:.3f})"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _rate(r: dict[str, Any]) -> str:
    return f"{r['value']:.2f}"


def table(folders: Sequence[Path]) -> str:
    """The Markdown table for these run folders (same validation patients required)."""
    sides = []
    for f in folders:
        split = read_split(Path(f) / "split.csv")
        sides.append(frozenset(k for k, part in split.items() if part == "val"))
    if len(set(sides)) > 1:
        raise SystemExit("these runs were validated on different patients; compare runs with the same "
                         "--data, --val-fraction and --seed")
    runs = [(Path(f).name, json.loads((Path(f) / "training.json").read_text())) for f in folders]
    lines = [HEADER, _rule(HEADER), *(row(n, r) for n, r in runs), "",
             COLLECTION_HEADER, _rule(COLLECTION_HEADER), *(x for n, r in runs for x in collection_rows(n, r))]
    return "\n".join(lines)


def _rule(header: str) -> str:
    return "|" + "---|" * (header.count("|") - 1)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="folders written by `eyescreen train`")
    print(table(parser.parse_args(argv).runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
