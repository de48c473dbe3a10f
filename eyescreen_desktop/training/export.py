"""Save a trained Keras model as an EyeScreen model folder: weights + model card.

The card (``model_card.json``) records the SHA-256 of the weights so the
classifier can refuse a changed file; ``model_card.md`` is the same content
for people.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from ..core.classifier import CARD_FILE, CARD_FORMAT, sha256_file

WEIGHTS_FILE = "model.keras"


def save_model(model: Any, out_dir: Path, card: dict[str, Any]) -> Path:
    """Write ``model.keras`` (no optimizer state) and the card; return the card path.

    ``card`` holds at least name, version, input_size, preprocessing and
    operating_points; format, weights file, hash and date are filled in here.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / WEIGHTS_FILE
    if getattr(model, "optimizer", None) is not None:    # compiled: Keras 3 ignores include_optimizer
        model = _without_optimizer(model)
    model.save(weights)
    full = {
        "format": CARD_FORMAT,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        **card,
        "weights_file": WEIGHTS_FILE,
        "weights_sha256": sha256_file(weights),
    }
    return write_card(out_dir, full)


def _without_optimizer(model: Any) -> Any:
    """The same layers and outputs, uncompiled: a fine-tuned model is saved in the
    middle of its training and its AdamW moments would more than double the file."""
    import keras

    return keras.Model(model.inputs, model.output, name=model.name)


def write_card(out_dir: Path, card: dict[str, Any]) -> Path:
    """Write the JSON card and its Markdown rendering."""
    path = Path(out_dir) / CARD_FILE
    path.write_text(json.dumps(card, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    (Path(out_dir) / "model_card.md").write_text(card_markdown(card), encoding="utf-8")
    return path


def card_markdown(card: dict[str, Any]) -> str:
    """A readable rendering of the card for people (the JSON stays authoritative)."""
    lines = [f"# Model card: {card.get('name')} {card.get('version')}", ""]
    if card.get("intended_use"):
        lines += ["## Intended use", "", str(card["intended_use"]), ""]
    for key, value in card.items():
        if key in ("intended_use",):
            continue
        if isinstance(value, (dict, list)):
            title = key.replace("_", " ").capitalize()
            render = _SECTIONS.get(key, _json_section)
            lines += [*([""] if lines[-1] else []), f"## {title}", "", *render(value), ""]
        else:
            lines.append(f"- **{key.replace('_', ' ')}**: {value}")
    return "\n".join(lines) + "\n"


def _json_section(value: Any) -> list[str]:
    return ["```json", json.dumps(value, indent=2), "```"]


def _text_items(value: Any) -> list[str]:
    """A dict of sentences (data sources, base) as a bullet list."""
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        return _json_section(value)
    return [f"- **{k}**: {v}" for k, v in value.items()]


def _operating_points(value: Any) -> list[str]:
    """Thresholds as a table: one row per named operating point."""
    try:
        mac = any("maculopathy" in op for op in value.values())
        rows = [f"| {name} | {op['referable']:.4f} | {op['urgent']:.4f} |"
                + (f" {op['maculopathy']:.4f} |" if mac else "") for name, op in value.items()]
    except (AttributeError, KeyError, TypeError, ValueError):
        return _json_section(value)
    if mac:
        return ["| operating point | referable >= | urgent >= | maculopathy >= |", "|---|---|---|---|", *rows]
    return ["| operating point | referable >= | urgent >= |", "|---|---|---|", *rows]


def _validation(value: Any) -> list[str]:
    """Headline validation metrics as a table (written by ``training.train``), then the rest as JSON."""
    def rate(key: str) -> str:
        r = value[key]
        return f"{r['value']:.3f} ({r['ci95'][0]:.3f}-{r['ci95'][1]:.3f}) [{r['n'][0]}/{r['n'][1]}]"

    try:
        lines = ["| decision | AUC (95% CI) | sensitivity | specificity |", "|---|---|---|---|"]
        for name in ("referable", "urgent"):
            lo, hi = value[f"{name}_auc_ci"]
            lines.append(f"| {name} | {value[f'{name}_auc']:.3f} ({lo:.3f}-{hi:.3f}) | {rate(f'{name}_sensitivity')} "
                         f"| {rate(f'{name}_specificity')} |")
    except (KeyError, TypeError, ValueError, IndexError):
        return _json_section(value)
    mac = value.get("maculopathy_auc")
    lines += ["", f"Urgent eyes that would wait in annual: {value.get('urgent_in_annual')}; "
              f"{value.get('photographs')} photographs of {value.get('patients')} patients"
              + (f"; maculopathy AUC {mac:.3f} on the labelled eyes." if mac is not None else "."), ""]
    per = value.get("per_collection", {})
    if per:
        lines += ["| collection | photos | referable AUC (95% CI by patient) | urgent AUC | maculopathy AUC "
                  "| referable sens / spec | urgent sens / spec | urgent in annual |", "|---|---|---|---|---|---|---|---|"]
        for coll, m in per.items():
            ci = m.get("referable_auc_ci95") or [float("nan"), float("nan")]
            mac_c = m.get("maculopathy_auc")
            lines.append(f"| {coll} | {m.get('photographs')} | {m.get('referable_auc', float('nan')):.3f} "
                         f"({ci[0]:.3f}-{ci[1]:.3f}) | {m.get('urgent_auc', float('nan')):.3f} "
                         f"| {'-' if mac_c is None else f'{mac_c:.3f}'} "
                         f"| {m.get('referable_sensitivity', float('nan')):.3f}"
                         f" / {m.get('referable_specificity', float('nan')):.3f} "
                         f"| {m.get('urgent_sensitivity', float('nan')):.3f} / {m.get('urgent_specificity', float('nan')):.3f}"
                         f" | {m.get('urgent_in_annual')} |")
    return lines


def _worst_camera(value: Any) -> list[str]:
    """How the default operating point was chosen on every collection, and what each one gets."""
    def rate(r: dict[str, Any]) -> str:
        return f"{r['value']:.2f} ({r['ci95'][0]:.2f}-{r['ci95'][1]:.2f})"

    try:
        t = value["thresholds"]
        lines = [f"Default chosen by: {value['rule']}; referable >= {t['referable']:.4f}, urgent >= "
                 f"{t['urgent']:.4f}. Chosen on: " + ", ".join(f"{k} {v}" for k, v in value["chosen_on"].items())
                 + f". {value['split']}."
                 + (f" Photographs screened through the product's path with {value['gate'].get('name')} "
                    f"{value['gate'].get('version')} in front." if value.get("gate") else ""), "",
                 "| collection (held out) | graded (gated) | referable AUC (95% CI) | referable sens | referable spec "
                 "| urgent sens | urgent in annual (previous default) | specificity cost |", "|---" * 8 + "|"]
        for name, m in value["per_collection"].items():
            auc = m["referable_auc"]
            lines.append(f"| {name} ({m['held_out']}) | {m['photographs'] - m['gated']} ({m['gated']}) | "
                         f"{auc[0]:.3f} ({auc[1]:.3f}-{auc[2]:.3f}) | {rate(m['referable_sensitivity'])} | "
                         f"{rate(m['referable_specificity'])} | {rate(m['urgent_sensitivity'])} | "
                         f"{m['urgent_in_annual']} ({m['previous_default']['urgent_in_annual']}) | "
                         f"-{m['specificity_cost']:.2f} |")
    except (KeyError, TypeError, ValueError, IndexError):
        return _json_section(value)
    return lines


_SECTIONS = {
    "worst_camera": _worst_camera,
    "operating_points": _operating_points,
    "validation": _validation,
    "data_sources": _text_items,
    "base": _text_items,
}
