"""Render a sample referral slip and a sample batch summary to PNG for the docs.

The slip is an urgent patient whose right eye shows severe retinopathy (with a
heat map) and whose left eye could not be graded; the summary is a small batch
with every queue and a few rejected files. Photographs are read from
../shared/datasets/fundus-dr (never copied into the repo); the probabilities and
heat map are made up for the picture, the layout is the real one.

Usage: .venv/bin/python scripts/render_report_samples.py [--out docs/images] [--page-size A4|Letter]
Needs ``pdftoppm`` (Debian/Ubuntu: apt-get install poppler-utils).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eyescreen_desktop.core import reports  # noqa: E402 - imported after the sys.path / environment set-up above
from eyescreen_desktop.core.paths import shared_datasets_dir  # noqa: E402 - imported after the sys.path / environment set-up above
from eyescreen_desktop.core.protocol import get_protocol, patient_queue  # noqa: E402 - imported after the sys.path / environment set-up above
from eyescreen_desktop.core.records import (  # noqa: E402 - imported after the sys.path / environment set-up above
    EncounterSummary,
    Eye,
    EyeResult,
    ModelInfo,
    OperatingPoint,
    Patient,
    Prediction,
    QualityReport,
    Status,
)

IMAGES = shared_datasets_dir() / "fundus-dr" / "images"
OP = OperatingPoint("validation-2025-01", referable=0.42, urgent=0.31, maculopathy=0.5)
MODEL = ModelInfo("eyescreen-dr", "1.2.0", "9f2c4e1ab37d5c08e6f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70")
PROTOCOL = get_protocol("icdr-ada")
START = dt.datetime(2025, 3, 12, 9, 30)


def blobs(size: int = 64, spots: tuple[tuple[float, float, float], ...] = ((0.35, 0.4, 0.08),)) -> np.ndarray:
    """A made-up heat map: Gaussian spots (x, y, sigma as fractions of the side)."""
    y, x = np.mgrid[0:size, 0:size] / size
    heat = sum(np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * s * s)) for cx, cy, s in spots)
    return (heat / heat.max()).astype(np.float32)


def graded(file: str, eye: Eye, probs: tuple[float, ...], heat: np.ndarray | None = None,
           p_mac: float | None = None) -> EyeResult:
    """An eye graded by the (pretend) model and decided by the protocol."""
    p = Prediction(probs, p_referable=sum(probs[2:]), p_urgent=sum(probs[3:]), p_maculopathy=p_mac)
    return EyeResult(path=str(IMAGES / file), eye=eye, status=Status.OK, quality=QualityReport(Status.OK),
                     prediction=p, decision=PROTOCOL.decide_eye(p, OP), heatmap=heat)


def ungradable(file: str, eye: Eye, reasons: tuple[str, ...], advice: str,
               status: Status = Status.UNGRADABLE, message: str = "") -> EyeResult:
    """An eye the quality gate turned away."""
    return EyeResult(path=str(IMAGES / file), eye=eye, status=status, message=message,
                     quality=QualityReport(status, reasons, advice),
                     decision=PROTOCOL.decide_unreadable(status, reasons))


def encounter(n: int, patient: Patient, eyes: tuple[EyeResult, ...], minutes: int = 0,
              override: str = "") -> EncounterSummary:
    """An encounter whose queue and due date come from the protocol."""
    queue = patient_queue(eyes)
    start = START + dt.timedelta(minutes=minutes)
    return EncounterSummary(f"enc-2025-03-12-{n:04d}", patient, start, eyes, queue,
                            PROTOCOL.due_date(queue, start.date()), PROTOCOL.action(queue), PROTOCOL.name, OP,
                            MODEL, override_reason=override)


def sample_slip_summary() -> EncounterSummary:
    """Urgent right eye with a heat map; left eye out of focus."""
    right = graded("P031_R.jpg", Eye.RIGHT, (0.02, 0.04, 0.12, 0.27, 0.55),
                   blobs(spots=((0.62, 0.42, 0.07), (0.40, 0.62, 0.09), (0.55, 0.70, 0.05))), p_mac=0.71)
    left = ungradable("P031_L.jpg", Eye.LEFT, ("blurred",),
                      "Out of focus: clean the lens and retake; dilate the pupil if it persists")
    patient = Patient("MRN-004211", "Ελένη Παπαδοπούλου", dt.date(1958, 7, 3), "F", "type 2", 14)
    return encounter(1, patient, (right, left))


def sample_batch() -> tuple[list[EncounterSummary], list[EyeResult]]:
    """A small batch with every queue and a few rejected files."""
    healthy = (0.90, 0.07, 0.02, 0.008, 0.002)
    moderate = (0.10, 0.15, 0.60, 0.10, 0.05)
    people = [
        (Patient("MRN-004211", "Ελένη Παπαδοπούλου", dt.date(1958, 7, 3), "F"), None),
        (Patient("MRN-003977", "Иван Петров", dt.date(1949, 1, 21), "M"),
         (graded("P053_R.jpg", Eye.RIGHT, (0.01, 0.02, 0.07, 0.30, 0.60)),
          graded("P053_L.jpg", Eye.LEFT, (0.02, 0.05, 0.20, 0.40, 0.33)))),
        (Patient("MRN-004502", "Zoë Ñúñez", dt.date(1971, 11, 30), "F"),
         (graded("P004_R.jpg", Eye.RIGHT, moderate), graded("P004_L.jpg", Eye.LEFT, healthy))),
        (Patient("MRN-004603", "Łukasz Żółć", dt.date(1966, 4, 9), "M"),
         (graded("P006_R.jpg", Eye.RIGHT, healthy), graded("P006_L.jpg", Eye.LEFT, moderate, p_mac=0.8))),
        (Patient("MRN-004710", "Amira Haddad", dt.date(1980, 2, 14), "F"),
         (ungradable("P007_R.jpg", Eye.RIGHT, ("dark", "small_field"),
                     "Too dark: dilate the pupil and retake, or refer for an in-person examination"),
          graded("P007_L.jpg", Eye.LEFT, healthy))),
        (Patient("MRN-004800", "Tom <b>O'Neil</b> & Sons", dt.date(1955, 9, 1), "M"),
         (graded("P001_R.jpg", Eye.RIGHT, healthy), graded("P001_L.jpg", Eye.LEFT, healthy))),
        (Patient("MRN-004801", "Margaret Osei", dt.date(1962, 6, 18), "F"),
         (graded("P003_R.jpg", Eye.RIGHT, healthy), graded("P003_L.jpg", Eye.LEFT, healthy))),
    ]
    encounters = []
    for i, (patient, eyes) in enumerate(people):
        encounters.append(sample_slip_summary() if eyes is None else encounter(i + 1, patient, eyes, 7 * i))
    rejected = [
        ungradable("camera-card/IMG_0042.JPG", Eye.UNKNOWN, ("not_fundus",),
                   "This is not a fundus photograph: check the file and take a photograph of the retina",
                   Status.NOT_FUNDUS),
        EyeResult(path=str(IMAGES.parent / "camera-card" / "IMG_0043.JPG"), eye=Eye.UNKNOWN, status=Status.ERROR,
                  message="IMG_0043.JPG is truncated (the copy from the camera stopped early): copy it again"),
    ]
    return encounters, rejected


def render(pdf: Path, png: Path, dpi: int) -> None:
    """First page of ``pdf`` to ``png`` with pdftoppm."""
    stem = png.with_suffix("")
    subprocess.run(["pdftoppm", "-png", "-r", str(dpi), "-f", "1", "-l", "1", "-singlefile", str(pdf), str(stem)],
                   check=True)


def main(argv: list[str] | None = None) -> int:
    """Write the sample PDFs to a temporary folder and render their first pages."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--page-size", default="A4")
    parser.add_argument("--dpi", type=int, default=110)
    args = parser.parse_args(argv)
    if shutil.which("pdftoppm") is None:
        print("pdftoppm not found: apt-get install poppler-utils", file=sys.stderr)
        return 2
    settings = reports.SlipSettings(clinic_name="Riverside Diabetes Centre \u2013 Eye Screening",
                                    clinic_address="12 Harbour Road, Riverside RV1 2AB\nTel. 01234 567 890",
                                    page_size=args.page_size)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        slip = reports.write_referral_slip(sample_slip_summary(), Path(tmp) / "slip.pdf", settings)
        t1 = time.perf_counter()
        encounters, rejected = sample_batch()
        summary = reports.write_batch_summary(encounters, rejected, Path(tmp) / "summary.pdf", settings)
        print(f"slip {1000 * (t1 - t0):.0f} ms (first, includes font loading)")
        render(slip, args.out / "slip-sample.png", args.dpi)
        render(summary, args.out / "summary-sample.png", args.dpi)
    print(f"wrote {args.out / 'slip-sample.png'} and {args.out / 'summary-sample.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
