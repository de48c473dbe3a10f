"""Issue 24, item 8: a 1024x700 screen, at 100% and at 150% scaling.

tests/gui/small_screen.py runs a screening day in a fresh process on an
offscreen screen of that size (Qt's offscreen platform takes the screen from a
config file; QT_SCALE_FACTOR must be set before Qt starts): a patient search, a
photograph of unknown side, a selfie eye check, the queues, the batch tab, the
patient's document and the settings. The window must never grow past the
screen, and no visible button or label may be cut. Screenshots go to
$EYESCREEN_SCREENSHOTS (docs/images for the docs), else to the test's folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from eyescreen_desktop.core.paths import default_model_dir

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("scale, prefix", [("1", "small-screen"), ("1.5", "small-screen-150")])
def test_a_screening_day_fits_a_1024x700_screen(tmp_path, scale, prefix):
    physical = (round(1024 * float(scale)), round(700 * float(scale)))   # 1024x700 logical pixels
    config = tmp_path / "screen.json"
    config.write_text(json.dumps({"synchronousWindowSystemEvents": False, "windowFrameMargins": False,
                                  "screens": [{"name": "small", "x": 0, "y": 0, "width": physical[0],
                                               "height": physical[1], "logicalDpi": 96, "logicalBaseDpi": 96,
                                               "dpr": 1}]}))
    out = Path(os.environ.get("EYESCREEN_SCREENSHOTS", tmp_path))
    env = {**os.environ, "QT_QPA_PLATFORM": f"offscreen:configfile={config}", "QT_SCALE_FACTOR": scale}
    done = subprocess.run([sys.executable, "-m", "tests.gui.small_screen", str(out), str(default_model_dir()),
                           prefix], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / f"{prefix}-report.json").read_text())
    assert report["first_launch"][0] <= 1024 and report["first_launch"][1] <= 700   # starts within the screen
    assert set(report["steps"]) >= {"search", "side-unknown", "eye-check", "queues", "document", "settings"}
    for step, seen in report["steps"].items():
        width, height = seen["window"]
        assert width <= 1024 and height <= 700, (step, seen["window"])       # never widened by its content
        shown_w, shown_h = seen["shown"]
        assert shown_w <= 1024 and shown_h <= 700, (step, seen["shown"])     # dialogs fit the screen too
        assert seen["cut_buttons"] == [], (step, seen["cut_buttons"])        # "Open visi", "nge queu"
        assert seen["cut_labels"] == [], (step, seen["cut_labels"])          # words overlapping in a card
        assert (out / f"{prefix}-{step}.png").stat().st_size > 10_000
