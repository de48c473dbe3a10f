"""Render sample eye-check slips (PDF, and PNG via pdftoppm) for docs/images.

    .venv/bin/python scripts/render_eye_check_slip.py [OUT_DIR]

A close-up with conjunctivitis from the held-out pictures and scikit-image's
astronaut as a selfie, checked with the shipped external-eye model.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

from eyescreen_desktop.core import external_eye as X
from eyescreen_desktop.core.imageio import read_image
from eyescreen_desktop.core.paths import project_root, shared_datasets_dir
from eyescreen_desktop.core.records import Patient
from eyescreen_desktop.core.reports.eye_check import write_eye_check_slip


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/images")
    out.mkdir(parents=True, exist_ok=True)
    from skimage import data

    model = X.ExternalEyeModel.load(project_root() / "models" / "eyescreen-external")
    when = dt.datetime(2026, 11, 28, 10, 5)
    close_up = read_image(shared_datasets_dir() / "external-eye" / "images" / "conjunctivitis_conjunctivitis_0068.jpg")
    for name, rgb, who in (("eye-check-slip", close_up, Patient("PH-0042", "Sam Example")),
                           ("eye-check-slip-selfie", data.astronaut(), Patient("PH-0043", "Astronaut Example"))):
        pdf = write_eye_check_slip(X.check_photo(rgb, model), out / f"{name}.pdf", who, model.info, when)
        subprocess.run(["pdftoppm", "-png", "-r", "60", "-singlefile", str(pdf), str(out / name)], check=True)
        pdf.unlink()
        print(out / f"{name}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
