"""A clinic database with real photographs from ../shared, screened results written
as the engine writes them (one per eye), for the grading tests."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

from eyescreen_desktop.core.records import (
    Eye,
    EyeDecision,
    EyeResult,
    ModelInfo,
    OperatingPoint,
    Patient,
    Prediction,
    QualityReport,
    Queue,
    Status,
)
from eyescreen_desktop.core.store import ClinicStore
from eyescreen_desktop.domain.grades import is_referable, is_urgent
from tests.conftest import FUNDUS_DR

MODEL = ModelInfo("tiny", "0.0.1", "a" * 64)
OP = OperatingPoint("default", referable=0.5, urgent=0.3)
VISIT = dt.datetime(2026, 5, 4, 9, 30)
# the AI's queue for a bare grade, from the domain's cut-offs (no maculopathy, default point)
QUEUE_OF_GRADE = {g: Queue.URGENT if is_urgent(g) else Queue.ROUTINE if is_referable(g) else Queue.ANNUAL
                  for g in range(5)}


def real_photo(patient: str, eye: Eye) -> tuple[Path, str]:
    """A fundus-dr photograph and the SHA-256 of its bytes."""
    path = FUNDUS_DR / "images" / f"{patient}_{eye.value}.jpg"
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def ai_result(patient: str, eye: Eye, grade: int | None) -> EyeResult:
    """What the AI said about a real photograph: ICDR ``grade``, or ungradable (None)."""
    path, sha = real_photo(patient, eye)
    if grade is None:
        q = QualityReport(Status.UNGRADABLE, ("blurred",), "Out of focus: retake", {"sharpness": 0.05})
        return EyeResult(str(path), eye, Status.UNGRADABLE, q.advice, sha, q, None,
                         EyeDecision(Queue.REVIEW, "ungradable", "could not be graded (blurred)"),
                         width=1024, height=685)
    probs = tuple(0.6 if g == grade else 0.1 for g in range(5))
    return EyeResult(
        path=str(path), eye=eye, status=Status.OK, sha256=sha,
        quality=QualityReport(Status.OK, (), "", {"sharpness": 0.5}),
        prediction=Prediction(probs, p_referable=sum(probs[2:]), p_urgent=sum(probs[3:])),
        decision=EyeDecision(QUEUE_OF_GRADE[grade], f"ICDR {grade}", "words", grade), width=1024, height=685)


def screened(store: ClinicStore, patient: str, right: int | None, left: int | None = None,
             started: dt.datetime = VISIT, eyes: tuple[Eye, ...] = (Eye.RIGHT, Eye.LEFT)) -> str:
    """One encounter of ``patient`` with the AI's grade for each of ``eyes``."""
    store.upsert_patient(Patient(patient, f"Name {patient}"), user="nurse")
    encounter = store.start_encounter(patient, started_at=started, user="nurse")
    for eye in eyes:
        store.save_result(encounter, ai_result(patient, eye, right if eye is Eye.RIGHT else left), MODEL,
                          "icdr-ada", OP, user="nurse")
    return encounter


QUALITY_PATIENTS = ("P001", "P003", "P004", "P006", "P007", "P008", "P009", "P010", "P011", "P014", "P015", "P016",
                    "P017", "P018", "P019")


def screened_with_p_reject(store: ClinicStore, patient: str, p_right: float, p_left: float) -> str:
    """An annual encounter whose real photographs the gate scored ``p_right`` / ``p_left`` (p_reject)."""
    from dataclasses import replace

    from eyescreen_desktop.core.gate import QUALITY_PROBABILITY

    enc = screened(store, patient, 0, 0)
    for eye, p in ((Eye.RIGHT, p_right), (Eye.LEFT, p_left)):
        r = ai_result(patient, eye, 0)
        r = replace(r, quality=replace(r.quality, metrics={**r.quality.metrics, QUALITY_PROBABILITY: p}))
        store.save_result(enc, r, MODEL, "icdr-ada", OP, user="nurse")
    return enc


def quality_graded_clinic(store: ClinicStore) -> None:
    """15 encounters a reading centre graded: the right eye of the first five ungradable
    (the gate scored them 0.35-0.39, under the card's threshold), every other eye gradable (<= 0.28)."""
    from eyescreen_desktop.core.grading import HumanGrade

    grades = []
    for i, patient in enumerate(QUALITY_PATIENTS):
        bad = i < 5
        enc = screened_with_p_reject(store, patient, 0.35 + 0.01 * i if bad else 0.02 * i, 0.05)
        grades += [HumanGrade(enc, Eye.RIGHT, "Centre", None if bad else 0, source="import"),
                   HumanGrade(enc, Eye.LEFT, "Centre", 0, source="import")]
    store.record_grades(grades, user="clerk")
