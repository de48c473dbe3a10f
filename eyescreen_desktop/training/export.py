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
    model.save(weights, include_optimizer=False)
    full = {
        "format": CARD_FORMAT,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        **card,
        "weights_file": WEIGHTS_FILE,
        "weights_sha256": sha256_file(weights),
    }
    return write_card(out_dir, full)


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
            lines += [f"## {key.replace('_', ' ').capitalize()}", "", "```json", json.dumps(value, indent=2), "```", ""]
        else:
            lines.append(f"- **{key.replace('_', ' ')}**: {value}")
    return "\n".join(lines) + "\n"
