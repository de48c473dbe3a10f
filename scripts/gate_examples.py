"""Draw docs/images/gate-examples.png: what the learned gate refuses, and why.

Every tile is a picture screened through the product's own path
(``Screener.screen_array`` with the shipped grader and gate), captioned with
the verdict (green graded, red refused, blue: not graded, sent to the
external-eye check of its own issue): real external-eye photographs, pictures that are not eyes, EyeQ
"reject" photographs of patients the gate was not fitted on, synthetic
degradations of a good photograph, a too-small picture, and (green) camera
frame formats that must pass.

    .venv/bin/python scripts/gate_examples.py [--out docs/images/gate-examples.png]
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from eyescreen_desktop.core.classifier import Classifier  # noqa: E402 - imported after the sys.path / environment set-up above
from eyescreen_desktop.core.fundus import field_of_view_or_frame  # noqa: E402 - imported after the sys.path / environment set-up above
from eyescreen_desktop.core.imageio import read_image  # noqa: E402 - imported after the sys.path / environment set-up above
from eyescreen_desktop.core.records import Status  # noqa: E402 - imported after the sys.path / environment set-up above
from eyescreen_desktop.core.screening import Screener  # noqa: E402 - imported after the sys.path / environment set-up above
from eyescreen_desktop.training import frames as F  # noqa: E402 - imported after the sys.path / environment set-up above
from eyescreen_desktop.training.gate import DATASETS, part_of  # noqa: E402 - imported after the sys.path / environment set-up above

TILE = 240


def pictures(rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """(caption, RGB) of every example."""
    good = read_image(DATASETS / "fundus-dr" / "images" / "P001_L.jpg", max_side=768)
    fov = field_of_view_or_frame(good)
    out: list[tuple[str, np.ndarray]] = []
    for name in ("clipped_width", "rectangular", "cast_green", "text"):
        out.append((f"frame: {name}", F.camera_frame(good, fov, rng, name, side=1200)[0]))
    with open(DATASETS / "external-eye" / "labels.csv", newline="") as f:
        ext = [r for r in csv.DictReader(f) if part_of(r["file"]) == "check"]
    for r in ext[:3]:
        out.append((f"external-eye ({r['label']})", read_image(DATASETS / "external-eye" / "images" / r["file"])))
    import skimage.data as sk
    out += [("skimage astronaut", sk.astronaut()), ("rendered document", F.document(rng)),
            ("round object on black", F.round_object(rng)), ("app screen", F.screen(rng))]
    with open(DATASETS / "eyepacs-256" / "labels.csv", newline="") as f:
        rej = [r for r in csv.DictReader(f) if r["quality"] == "reject" and part_of(f"eyepacs-256:{r['patient']}") == "check"]
    for r in rej[:6]:
        out.append((f"EyeQ reject {r['file']}", read_image(DATASETS / "eyepacs-256" / "images" / r["file"])))
    for kind, (fn, _) in F.DEGRADATIONS.items():
        out.append((f"synthetic: {kind}", fn(F.full_circle(good, fov, rng), rng)))
    out.append(("24x16 px picture", cv2.resize(good, (24, 16), interpolation=cv2.INTER_AREA)))
    return out


def caption(result) -> tuple[str, str, tuple[int, int, int]]:
    """Two lines and a colour (green graded, red refused)."""
    if result.modality != "fundus" and result.status is Status.OK:   # the eye check's record
        finding = result.decision.finding if result.decision else result.message
        return f"no ICDR grade: {result.modality}", f"eye check: {finding}"[:38], (40, 90, 200)
    if result.status is Status.OK:
        return f"GRADED ({result.modality})", f"ICDR {result.grade}, {result.queue.value}", (40, 160, 40)
    reasons = ",".join(result.quality.reasons) if result.quality else result.status.value
    return f"{result.status.value}: {reasons}", result.message[:38], (200, 40, 40)


def tile(rgb: np.ndarray, title: str, result) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = TILE / max(h, w)
    small = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))),
                       interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_NEAREST)
    canvas = np.full((TILE + 62, TILE, 3), 255, np.uint8)
    y, x = (TILE - small.shape[0]) // 2, (TILE - small.shape[1]) // 2
    canvas[y:y + small.shape[0], x:x + small.shape[1]] = small
    line1, line2, colour = caption(result)
    cv2.rectangle(canvas, (0, 0), (TILE - 1, TILE + 61), colour, 3)
    for i, (text, col) in enumerate(((title, (0, 0, 0)), (line1, colour), (line2, (60, 60, 60)))):
        cv2.putText(canvas, text[:40], (5, TILE + 16 + 18 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.42, col, 1,
                    cv2.LINE_AA)
    return canvas


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "gate-examples.png")
    args = p.parse_args(argv)
    screener = Screener(Classifier.load(REPO / "models" / "eyescreen-dr"))
    tiles = []
    for title, rgb in pictures(np.random.default_rng(7)):
        result = screener.screen_array(np.ascontiguousarray(rgb[..., :3]), name=title)
        print(f"{title:32s} {result.status.value:11s} {result.modality:12s} "
              f"{','.join(result.quality.reasons) if result.quality else ''}")
        tiles.append(tile(rgb[..., :3], title, result))
    cols = 6
    while len(tiles) % cols:
        tiles.append(np.full_like(tiles[0], 255))
    sheet = np.vstack([np.hstack(tiles[i:i + cols]) for i in range(0, len(tiles), cols)])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(f"wrote {args.out} ({screener.gate.version if screener.gate else 'no gate'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
