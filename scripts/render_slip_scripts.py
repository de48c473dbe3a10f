"""Render the top of a referral slip for a patient name in each script the clinic meets
(Latin, Greek, Cyrillic, Chinese, Japanese, Korean, Devanagari, Tamil, Arabic, Hebrew)
and put them side by side in one PNG for the docs (issue 24, item 6).

The slips are the real layout, fonts and shaping (core/reports/scripts.py); the
photographs come from ../shared/datasets and the probabilities are made up, as in
render_report_samples.py. Rendered with pdfium (pypdfium2), so no poppler is needed.

Usage: .venv/bin/python scripts/render_slip_scripts.py [--out docs/images/slip-scripts.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pypdfium2 as pdfium
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

from render_report_samples import encounter, graded  # noqa: E402 - the scripts folder is put on sys.path first

from eyescreen_desktop.core import reports  # noqa: E402 - after the scripts folder is on sys.path
from eyescreen_desktop.core.records import Eye, Patient  # noqa: E402 - after the scripts folder is on sys.path

NAMES = (
    ("Latin", "Zoë Ñúñez-Łukasz"), ("Greek", "Ελένη Παπαδοπούλου"), ("Cyrillic", "Наталья Иванова"),
    ("Chinese", "王芳 Wang Fang"), ("Japanese", "山田 さくら"), ("Korean", "김민준"),
    ("Devanagari", "प्रिया शर्मा"), ("Tamil", "கார்த்திக் ராஜா"), ("Arabic", "محمد علي"),
    ("Hebrew", "דוד כהן"),
)
SCALE = 1.6           # pdfium render scale (1 = 72 dpi)
CROP = (0.04, 0.127, 0.66, 0.211)   # the patient block: left, top, right, bottom as fractions of the page


def slip_image(script: str, name: str, n: int) -> Image.Image:
    """The patient block of a routine referral slip for ``name``, labelled with its script."""
    eyes = (graded("P004_R.jpg", Eye.RIGHT, (0.10, 0.15, 0.60, 0.10, 0.05)),
            graded("P004_L.jpg", Eye.LEFT, (0.90, 0.07, 0.02, 0.008, 0.002)))
    summary = encounter(n, Patient(f"MRN-{n:04d}", name), eyes)
    page = pdfium.PdfDocument(reports.slip_pdf_bytes(summary))[0]
    image = page.render(scale=SCALE).to_pil().convert("RGB")
    w, h = image.size
    crop = image.crop((int(CROP[0] * w), int(CROP[1] * h), int(CROP[2] * w), int(CROP[3] * h)))
    ImageDraw.Draw(crop).text((crop.width - 110, 16), script, fill=(90, 90, 90))
    return crop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "slip-scripts.png")
    args = parser.parse_args()
    tiles = [slip_image(script, name, i + 1) for i, (script, name) in enumerate(NAMES)]
    cols, rows = 2, (len(tiles) + 1) // 2
    w, h = tiles[0].size
    sheet = Image.new("RGB", (cols * w, rows * h), "white")
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % cols) * w, (i // cols) * h))
        ImageDraw.Draw(sheet).rectangle(((i % cols) * w, (i // cols) * h, (i % cols + 1) * w - 1,
                                         (i // cols + 1) * h - 1), outline=(200, 200, 200))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    print(f"wrote {args.out} ({sheet.width}x{sheet.height})")


if __name__ == "__main__":
    main()
