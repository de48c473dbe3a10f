"""A face selfie, a close-up of one eye, a fundus photograph and a picture with
no eye, dropped together into one folder: each takes its own path through
screening, the CLI's results.csv, the database (schema 4: modality, p_checkup)
and the patients' documents. Real pictures from ../shared/datasets and
scikit-image; the shipped grader, gate and eye-check model."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import pytest
from pypdf import PdfReader

from eyescreen_desktop.cli import main
from eyescreen_desktop.core.classifier import Classifier
from eyescreen_desktop.core.paths import default_model_dir
from eyescreen_desktop.core.records import Eye, Queue, Status
from eyescreen_desktop.core.screening import Screener, ScreenItem
from tests.conftest import FUNDUS_DR, SHARED


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    """fundus P001_L, a cataract close-up, the astronaut selfie and a rocket (no eye)."""
    import shutil

    from skimage import data, io

    folder = tmp_path_factory.mktemp("mixed")
    shutil.copy(FUNDUS_DR / "images" / "P001_L.jpg", folder / "P001_L.jpg")
    shutil.copy(SHARED / "external-eye" / "images" / "cataract_cataract_0611.jpg", folder / "closeup_R.jpg")
    io.imsave(folder / "selfie.png", data.astronaut(), check_contrast=False)
    io.imsave(folder / "rocket.png", data.rocket(), check_contrast=False)
    return folder


def test_each_picture_takes_its_own_path(mixed):
    screener = Screener(Classifier.load(default_model_dir(), backend="onnx", threads=1))
    results = {Path(r.path).name: r for r in screener.screen(
        ScreenItem(p, Eye.RIGHT if p.stem.endswith("_R") else Eye.UNKNOWN) for p in sorted(mixed.iterdir()))}
    fundus, close, selfie, rocket = (results[n] for n in ("P001_L.jpg", "closeup_R.jpg", "selfie.png", "rocket.png"))
    assert fundus.modality == "fundus" and fundus.grade is not None and fundus.p_checkup is None
    assert close.modality == "external_eye" and close.eye is Eye.RIGHT and close.grade is None
    assert close.queue is Queue.ROUTINE and close.decision.finding == "possible cataract" and close.p_checkup > 0.9
    assert selfie.modality == "external_eye" and selfie.eye is Eye.UNKNOWN and selfie.p_checkup is not None
    assert selfie.grade is None and selfie.queue in (Queue.ROUTINE, Queue.REVIEW)   # never annual in a DR protocol
    assert rocket.modality == "other" and rocket.status is Status.NOT_FUNDUS and rocket.p_checkup is None
    assert screener.model_info(close).name == "eyescreen-external"
    assert screener.model_info(fundus).name == "eyescreen-dr"


def test_eyescreen_screen_on_a_mixed_folder(mixed, tmp_path, capsys):
    out, data_dir = tmp_path / "out", tmp_path / "data"
    assert main(["screen", str(mixed), "--out", str(out), "--data-dir", str(data_dir)]) == 0
    assert "2 external-eye photograph(s) had the eye check" in capsys.readouterr().out
    with open(out / "results.csv", newline="", encoding="utf-8") as f:
        rows = {r["file"]: r for r in csv.DictReader(f)}
    assert rows["P001_L.jpg"]["modality"] == "fundus" and rows["P001_L.jpg"]["p_checkup"] == ""
    close = rows["closeup_R.jpg"]
    assert (close["modality"], close["queue"], close["grade"], close["model"]) == \
        ("external_eye", "routine", "", "eyescreen-external")
    assert float(close["p_checkup"]) > 0.9 and close["finding"] == "possible cataract"
    assert rows["selfie.png"]["modality"] == "external_eye" and rows["selfie.png"]["grade"] == ""
    assert rows["rocket.png"]["status"] == "not_fundus"
    # the database carries them too (schema 4)
    db = sqlite3.connect(data_dir / "clinic.sqlite3")
    stored = dict(db.execute("SELECT model_name || ':' || modality, p_checkup FROM results").fetchall())
    db.close()
    assert stored["eyescreen-external:external_eye"] is not None and stored["eyescreen-dr:fundus"] is None
    # the referral slip of the close-up says what it is, and no ICDR grade
    slip = next((out / "referrals").glob("closeup*.pdf"))
    text = " ".join(" ".join((p.extract_text() or "") for p in PdfReader(str(slip)).pages).split())
    assert "Possible cataract" in text and "Probability that an eye check-up is needed" in text
    assert "ICDR grade" not in text


def test_schema_4_upgrades_an_older_database_and_keeps_p_checkup(tmp_path):
    """A schema-3 file gains modality (fundus for every old row) and p_checkup; an
    external-eye result saved and read back keeps both."""
    from eyescreen_desktop.core import store as store_mod
    from eyescreen_desktop.core.protocol import get_protocol
    from eyescreen_desktop.core.records import EyeResult, ModelInfo, Patient
    from eyescreen_desktop.core.store import ClinicStore

    path = tmp_path / "clinic.sqlite3"
    raw = sqlite3.connect(path)
    raw.create_function("eyescreen_search_text", 3, lambda *a: " ".join(str(x or "") for x in a))
    for script in store_mod.schema.MIGRATIONS[:3]:
        raw.executescript(script)
    raw.execute("PRAGMA user_version = 3")
    raw.commit()
    raw.close()
    with ClinicStore(path) as s:
        assert s.schema_version == store_mod.schema.SCHEMA_VERSION >= 4   # 5: the gate column (issue 9)
        s.upsert_patient(Patient("P9"))
        enc = s.start_encounter("P9", protocol="icdr-ada")
        result = EyeResult(str(SHARED / "external-eye" / "images" / "cataract_cataract_0611.jpg"), Eye.RIGHT,
                           Status.OK, sha256="ab" * 32, modality="external_eye", p_checkup=0.97,
                           decision=get_protocol("icdr-ada").decide_external_eye(True, "possible cataract"))
        s.save_result(enc, result, ModelInfo("eyescreen-external", "1.0.0", "cd" * 32), "icdr-ada", copy=False)
        back = s.encounter_summary(enc)
        eye = back.eyes[0]
        assert (eye.modality, eye.p_checkup, eye.grade) == ("external_eye", 0.97, None)
        assert back.queue is Queue.ROUTINE
