"""The gate's verdict on record: modality and gate version in the database
(schema 4), in results.csv and on the slip; cached results of another gate are
judged again. Real SQLite files, the shipped grader and gate, real photographs."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import shutil
import sqlite3
from pathlib import Path

import pytest
from pypdf import PdfReader

from eyescreen_desktop.core import store as store_mod
from eyescreen_desktop.core.batch import run_batch
from eyescreen_desktop.core.classifier import Classifier
from eyescreen_desktop.core.gate import Gate
from eyescreen_desktop.core.paths import DataPaths
from eyescreen_desktop.core.records import (Eye, EyeDecision, EyeResult, ModelInfo, OperatingPoint, Patient,
                                           QualityReport, Queue, Status)
from eyescreen_desktop.core.reports.layout import gate_text
from eyescreen_desktop.core.store import ClinicStore
from tests.conftest import SHARED

MODEL = ModelInfo("tiny", "0.0.1", "a" * 64)
OP = OperatingPoint("default", referable=0.5, urgent=0.3)
GRADER = Path(__file__).resolve().parents[2] / "models" / "eyescreen-dr"


def _front_of_eye(path: Path, sha: str) -> EyeResult:
    q = QualityReport(Status.NOT_FUNDUS, ("external_eye",), "Photograph of the front of the eye: ...",
                      {"p_external_eye": 0.99}, "external_eye", "eyescreen-gate 1.0.0")
    return EyeResult(str(path), Eye.LEFT, Status.NOT_FUNDUS, q.advice, sha, q, None,
                     EyeDecision(Queue.REVIEW, "ungradable", "not a fundus photograph"),
                     modality="external_eye", gate="eyescreen-gate 1.0.0")


def _saved(store: ClinicStore, tmp_path: Path, result_of) -> tuple[str, EyeResult]:
    path = tmp_path / "P1_L.jpg"
    path.write_bytes(b"front of the eye")
    sha = hashlib.sha256(b"front of the eye").hexdigest()
    result = result_of(path, sha)
    store.upsert_patient(Patient("P1", "Name"))
    enc = store.start_encounter("P1", started_at=dt.datetime(2024, 5, 1, 9, 30))
    store.save_result(enc, result, MODEL, "icdr-ada", OP, user="nurse")
    return sha, result


def test_modality_and_gate_are_stored_and_read_back(tmp_path):
    with ClinicStore.open(DataPaths(tmp_path / "data")) as s:
        sha, original = _saved(s, tmp_path, _front_of_eye)
        back = s.result_for(sha, MODEL.sha256, "icdr-ada")
        assert back == original and back.modality == "external_eye" and back.quality.modality == "external_eye"
        assert back.gate == "eyescreen-gate 1.0.0" and back.grade is None
        row = sqlite3.connect(s.path).execute("SELECT modality, gate FROM results").fetchone()
        assert row == ("external_eye", "eyescreen-gate 1.0.0")


def test_a_result_of_another_gate_or_of_none_is_not_reused(tmp_path):
    with ClinicStore.open(DataPaths(tmp_path / "data")) as s:
        sha, _ = _saved(s, tmp_path, _front_of_eye)
        assert s.result_for(sha, MODEL.sha256, "icdr-ada", gate="eyescreen-gate 1.0.0") is not None
        assert s.result_for(sha, MODEL.sha256, "icdr-ada", gate="eyescreen-gate 2.0.0") is None
        assert s.result_for(sha, MODEL.sha256, "icdr-ada", gate="") is None


def test_a_version_3_database_gains_modality_and_gate_with_safe_defaults(tmp_path):
    data = DataPaths(tmp_path / "data")
    data.database.parent.mkdir(parents=True, exist_ok=True)
    raw = sqlite3.connect(data.database)
    raw.create_function("eyescreen_search_text", 3, lambda *a: " ".join(str(x or "") for x in a))
    raw.executescript("\n".join(store_mod.schema.MIGRATIONS[:3]) + "\nPRAGMA user_version = 3;")
    raw.close()
    with ClinicStore.open(data) as s:
        assert s.schema_version == store_mod.schema.SCHEMA_VERSION >= 4
        cols = {r[1]: r[4] for r in sqlite3.connect(s.path).execute("PRAGMA table_info(results)")}
        assert cols["modality"] == "'fundus'" and cols["gate"] == "''"
    assert data.database.with_name(f"{data.database.name}.schema3.bak").is_file()


def test_the_slip_names_the_gate():
    class Summary:
        eyes = (EyeResult("a", Eye.LEFT, Status.OK, gate="eyescreen-gate 1.0.0"),
                EyeResult("b", Eye.RIGHT, Status.OK, gate="eyescreen-gate 1.0.0"))
    assert gate_text(Summary) == "eyescreen-gate 1.0.0"
    Summary.eyes = (EyeResult("a", Eye.LEFT, Status.OK),)
    assert gate_text(Summary) == "hand-made checks only"


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory) -> Path:
    """A fundus photograph, a photograph of the front of an eye and a picture of a rocket."""
    import cv2
    import skimage.data

    folder = tmp_path_factory.mktemp("mixed")
    shutil.copy(SHARED / "fundus-dr" / "images" / "P001_L.jpg", folder / "P1_L.jpg")
    with open(SHARED / "external-eye" / "labels.csv", newline="") as f:
        ext = next(csv.DictReader(f))["file"]
    shutil.copy(SHARED / "external-eye" / "images" / ext, folder / "P2_L.jpg")
    cv2.imwrite(str(folder / "P3_L.jpg"), cv2.cvtColor(skimage.data.rocket(), cv2.COLOR_RGB2BGR))
    return folder


def test_results_csv_and_the_slip_carry_modality_and_gate(tmp_path, mixed_folder):
    report = run_batch([mixed_folder], tmp_path / "out", model=Classifier.load(GRADER, backend="onnx"),
                       data_dir=tmp_path / "data", pdf=True)
    rows = {r["file"]: r for r in csv.DictReader(open(report.results_csv, newline="", encoding="utf-8-sig"))}
    by_name = {Path(k).name: v for k, v in rows.items()}
    assert by_name["P1_L.jpg"]["modality"] == "fundus" and by_name["P1_L.jpg"]["status"] == "ok"
    assert by_name["P2_L.jpg"]["modality"] == "external_eye" and by_name["P2_L.jpg"]["grade"] == ""
    assert by_name["P2_L.jpg"]["status"] != "ok" or by_name["P2_L.jpg"]["p_checkup"] != ""   # eye check, no grade
    assert by_name["P3_L.jpg"]["modality"] == "other" and by_name["P3_L.jpg"]["status"] == "not_fundus"
    shipped = Gate.load().version          # the shipped gate's "name version"
    assert {r["gate"] for r in rows.values()} == {shipped}
    slips = sorted(Path(report.out_dir).rglob("*.pdf"))
    texts = [" ".join(p.extract_text() for p in PdfReader(str(s)).pages) for s in slips]
    assert texts and any(shipped in t for t in texts)
