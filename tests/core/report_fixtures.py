"""Builders of encounters for the report tests: real photographs from
../shared/datasets/fundus-dr (read in place, never copied), probabilities and
decisions from the real protocol table."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path

import numpy as np
import pypdf
import pytest

from eyescreen_desktop.core.protocol import get_protocol, patient_queue
from eyescreen_desktop.core.records import (
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
from tests.conftest import FUNDUS_DR

IMAGES = FUNDUS_DR / "images"
PROTOCOL = get_protocol("icdr-ada")
OP = OperatingPoint("validation-2025-01", referable=0.42, urgent=0.31, maculopathy=0.5)
MODEL = ModelInfo("eyescreen-dr", "1.2.0", "9f2c4e1ab37d" + "5c08e6f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70")
START = dt.datetime(2025, 3, 12, 9, 30)
HEALTHY = (0.90, 0.07, 0.02, 0.008, 0.002)
MODERATE = (0.10, 0.15, 0.60, 0.10, 0.05)
SEVERE = (0.02, 0.04, 0.12, 0.27, 0.55)
BLURRED_ADVICE = "Out of focus: clean the lens and retake; dilate the pupil if it persists"
NAMES = ("Zoë Ñúñez", "Łukasz Żółć", "Ελένη Παπαδοπούλου", "Иван Петров")
HOSTILE = ("<b>bold</b>", "&amp;", "</para>", "<font size=99>", "<br/>", "A & B <i>")


def photo(name: str) -> Path:
    """A real photograph of ../shared, failing loudly when the datasets are missing."""
    path = IMAGES / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: tests need ../shared/datasets beside the checkout")
    return path


def blob_heatmap(size: int = 64, cx: float = 0.6, cy: float = 0.4) -> np.ndarray:
    """A heat map with one hot spot (fractions of the side)."""
    y, x = np.mgrid[0:size, 0:size] / size
    return np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * 0.08 ** 2)).astype(np.float32)


def graded(file: str, eye: Eye, probs: tuple[float, ...], heatmap: np.ndarray | None = None,
           p_mac: float | None = None) -> EyeResult:
    """A graded eye, decided by the real protocol."""
    p = Prediction(probs, p_referable=sum(probs[2:]), p_urgent=sum(probs[3:]), p_maculopathy=p_mac)
    return EyeResult(path=str(photo(file)), eye=eye, status=Status.OK, sha256="ab" * 32,
                     quality=QualityReport(Status.OK), prediction=p, decision=PROTOCOL.decide_eye(p, OP),
                     heatmap=heatmap)


def not_graded(file: str | Path, eye: Eye, status: Status = Status.UNGRADABLE,
               reasons: tuple[str, ...] = ("blurred",), advice: str = BLURRED_ADVICE,
               message: str = "") -> EyeResult:
    """An eye the quality gate or the reader turned away."""
    path = str(photo(file)) if isinstance(file, str) and "/" not in file else str(file)
    return EyeResult(path=path, eye=eye, status=status, message=message,
                     quality=QualityReport(status, reasons, advice) if status is not Status.ERROR else None,
                     decision=PROTOCOL.decide_unreadable(status, reasons))


def encounter(patient: Patient, eyes: tuple[EyeResult, ...], n: int = 1, minutes: int = 0,
              **changes) -> EncounterSummary:
    """An encounter whose queue, due date and action come from the protocol."""
    queue = patient_queue(eyes)
    start = START + dt.timedelta(minutes=minutes)
    summary = EncounterSummary(f"enc-{n:04d}-7f3a", patient, start, eyes, queue,
                               PROTOCOL.due_date(queue, start.date()), PROTOCOL.action(queue), PROTOCOL.name,
                               OP, MODEL)
    return dataclasses.replace(summary, **changes) if changes else summary


def urgent_with_ungradable_eye(name: str = "Ελένη Παπαδοπούλου", patient_id: str = "MRN-004211",
                               heatmap: bool = True) -> EncounterSummary:
    """Right eye proliferative DR (heat map), left eye out of focus."""
    right = graded("P031_R.jpg", Eye.RIGHT, SEVERE, blob_heatmap() if heatmap else None, p_mac=0.71)
    left = not_graded("P031_L.jpg", Eye.LEFT)
    return encounter(Patient(patient_id, name, dt.date(1958, 7, 3), "F", "type 2", 14), (right, left))


def mixed_batch() -> tuple[list[EncounterSummary], list[EyeResult]]:
    """Patients in every queue, listed in no particular order, plus rejected files."""
    encounters = [
        encounter(Patient("ANN-1", "Margaret Osei", dt.date(1962, 6, 18), "F"),
                  (graded("P001_R.jpg", Eye.RIGHT, HEALTHY), graded("P001_L.jpg", Eye.LEFT, HEALTHY)), 1, 0),
        encounter(Patient("ROU-1", NAMES[0], dt.date(1971, 11, 30), "F"),
                  (graded("P004_R.jpg", Eye.RIGHT, MODERATE), graded("P004_L.jpg", Eye.LEFT, HEALTHY)), 2, 5),
        encounter(Patient("URG-2", NAMES[3], dt.date(1949, 1, 21), "M"),
                  (graded("P053_R.jpg", Eye.RIGHT, SEVERE), graded("P053_L.jpg", Eye.LEFT, SEVERE)), 3, 10),
        encounter(Patient("REV-1", "Amira Haddad", dt.date(1980, 2, 14), "F"),
                  (not_graded("P007_R.jpg", Eye.RIGHT, reasons=("dark",), advice="Too dark: dilate the pupil"),
                   graded("P007_L.jpg", Eye.LEFT, HEALTHY)), 4, 15),
        dataclasses.replace(urgent_with_ungradable_eye(patient_id="URG-1"), encounter_id="enc-0005-7f3a",
                            started_at=START - dt.timedelta(days=3),
                            due_date=(START - dt.timedelta(days=3)).date() + dt.timedelta(days=14)),
    ]
    rejected = [
        not_graded("/camera/IMG_0042.JPG", Eye.UNKNOWN, Status.NOT_FUNDUS, ("not_fundus",),
                   "This is not a fundus photograph: check the file and take a photograph of the retina"),
        not_graded("/camera/IMG_0043.JPG", Eye.UNKNOWN, Status.ERROR, (), "",
                   message="IMG_0043.JPG is truncated: copy it from the camera again"),
    ]
    return encounters, rejected


def pdf_text(path: Path) -> str:
    """All text of a PDF with runs of white space folded to one space."""
    reader = pypdf.PdfReader(str(path))
    return " ".join(" ".join(page.extract_text() or "" for page in reader.pages).split())


def page_texts(path: Path) -> list[str]:
    """Text of each page, white space folded."""
    return [" ".join((p.extract_text() or "").split()) for p in pypdf.PdfReader(str(path)).pages]


def image_count(path: Path) -> int:
    """Raster images (XObjects) embedded across the PDF's pages."""
    return sum(len(p.images) for p in pypdf.PdfReader(str(path)).pages)


def embedded_fonts(path: Path) -> set[str]:
    """Base names of the TrueType fonts embedded in the PDF (subset prefix removed)."""
    names: set[str] = set()
    for page in pypdf.PdfReader(str(path)).pages:
        fonts = page["/Resources"].get_object().get("/Font", {})
        for ref in fonts.values():
            font = ref.get_object()
            descriptor = font.get("/FontDescriptor")
            if descriptor is not None and "/FontFile2" in descriptor.get_object():
                names.add(re.sub(r"^[A-Z]{6}\+", "", str(font["/BaseFont"]).lstrip("/")))
    return names
