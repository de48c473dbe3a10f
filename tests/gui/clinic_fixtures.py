"""A real clinic database filled with a few patients, for the queue, slip and batch tests.

Kept out of tests/gui/conftest.py on purpose (another engineer owns that file);
test modules import the fixtures they need from here.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from eyescreen_desktop.core.paths import data_paths
from eyescreen_desktop.core.protocol import get_protocol, patient_queue
from eyescreen_desktop.core.records import (
    Eye,
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

TODAY = dt.date(2026, 3, 16)
MODEL = ModelInfo("tiny-test-model", "0.0.1", "ab" * 32)
OP = OperatingPoint("default", referable=0.5, urgent=0.3)
PROTOCOL = get_protocol("icdr-ada")


def graded_eye(eye: Eye, grade: int) -> EyeResult:
    """An eye graded ``grade`` with confidence, decided by the real protocol."""
    probs = [0.02] * 5
    probs[grade] = 0.92
    prediction = Prediction(tuple(probs), sum(probs[2:]), sum(probs[3:]))
    return EyeResult(f"/camera/{eye.value}.jpg", eye, Status.OK, quality=QualityReport(Status.OK),
                     prediction=prediction, decision=PROTOCOL.decide_eye(prediction, OP))


def ungradable_eye(eye: Eye) -> EyeResult:
    """An eye the quality gate refused (blurred): review, with advice."""
    quality = QualityReport(Status.UNGRADABLE, ("blurred",), "Retake the photograph after dilation.", {})
    return EyeResult(f"/camera/{eye.value}.jpg", eye, Status.UNGRADABLE, message=quality.advice,
                     quality=quality, decision=PROTOCOL.decide_unreadable(Status.UNGRADABLE, ("blurred",)))


def add_encounter(store: ClinicStore, patient_id: str, name: str, eyes: tuple[EyeResult, ...],
                  started: dt.datetime) -> str:
    """Register the patient, save the eyes' results and queue the encounter, as the
    engine does; returns the encounter ID."""
    store.upsert_patient(Patient(patient_id, name, dt.date(1960, 5, 4), "F"), user="test")
    encounter_id = store.start_encounter(patient_id, started, PROTOCOL.name, user="test")
    for result in eyes:
        store.save_result(encounter_id, result, MODEL, PROTOCOL.name, OP, user="test")
    queue = patient_queue(eyes)
    store.finish_encounter(encounter_id, queue, PROTOCOL.due_date(queue, started.date()), user="test")
    return encounter_id


# patient ID, name, (right grade, left grade) or None for an ungradable right eye, days before TODAY
PATIENTS: tuple[tuple[str, str, tuple[int, int] | None, int], ...] = (
    ("P001", "Zoë Ñúñez", (3, 1), 20),           # urgent, 14 days -> overdue by 6
    ("P002", "Иван Петров", (4, 0), 5),          # urgent, due in 9 days
    ("P003", "Łukasz Żółć", (2, 2), 30),         # routine
    ("P004", "Ελένη Παπαδοπούλου", (0, 0), 2),   # annual
    ("P005", "John Smith", (1, 0), 40),          # annual
    ("P006", "Mary Jones", None, 3),             # review (ungradable right eye), overdue by 3
    ("P007", "Ahmed Khan", (3, 3), 1),           # urgent, due in 13 days
)


def fill(store: ClinicStore) -> dict[str, str]:
    """The patients above in the store; returns patient ID -> encounter ID."""
    ids = {}
    for patient_id, name, grades, days_ago in PATIENTS:
        started = dt.datetime.combine(TODAY - dt.timedelta(days=days_ago), dt.time(9, 30))
        if grades is None:
            eyes = (ungradable_eye(Eye.RIGHT), graded_eye(Eye.LEFT, 0))
        else:
            eyes = (graded_eye(Eye.RIGHT, grades[0]), graded_eye(Eye.LEFT, grades[1]))
        ids[patient_id] = add_encounter(store, patient_id, name, eyes, started)
    return ids


@pytest.fixture
def store(tmp_path: Path):
    """An empty clinic database (a real SQLite file) under tmp_path."""
    with ClinicStore.open(data_paths(tmp_path / "data")) as clinic:
        yield clinic


@pytest.fixture
def filled_store(store: ClinicStore) -> tuple[ClinicStore, dict[str, str]]:
    """The clinic database with the patients of PATIENTS, and their encounter IDs."""
    return store, fill(store)


EXPECTED_OPEN = {Queue.URGENT: 3, Queue.ROUTINE: 1, Queue.ANNUAL: 2, Queue.REVIEW: 1}
