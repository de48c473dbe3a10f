"""Issue 22: the agreement report suggests a photo-quality threshold for the clinic's
camera from the grader's ungradable calls; only an admin applies it (audited), and
screening then judges photographs at it (results say so)."""

from __future__ import annotations

import csv
import datetime as dt
import shutil

import pytest

from eyescreen_desktop.core.classifier import Classifier
from eyescreen_desktop.core.gate import card_reject_threshold
from eyescreen_desktop.core.paths import data_paths
from eyescreen_desktop.core.qa import qa_eyes, quality_suggestions
from eyescreen_desktop.core.quality_threshold import QualityEye, suggest_quality_threshold
from eyescreen_desktop.core.store import ClinicStore, FixedClock, RoleRefused
from tests.conftest import FUNDUS_DR
from tests.core.grading_fixtures import quality_graded_clinic
from tests.core.screen_inputs import model_with_thresholds

NOW = dt.datetime(2026, 5, 6, 12, 0, tzinfo=dt.UTC)


def test_the_suggestion_follows_the_graders_ungradable_calls_and_waits_for_enough_eyes():
    # the grader could not read the eyes the gate scored 0.30-0.45: the card's 0.49 passes them all
    eyes = ([QualityEye(0.30 + 0.03 * i, True) for i in range(6)]
            + [QualityEye(0.01 * i, False) for i in range(25)])
    s = suggest_quality_threshold(eyes, current=0.49, camera="Topcon NW400")
    assert s.threshold == pytest.approx(0.30) and s.agreement_suggested == (1.0, 1.0)
    assert s.agreement_now == (0.0, 1.0)
    assert "suggested 0.300 (now 0.490)" in s.words() and "An admin applies it" in s.words()
    few = suggest_quality_threshold(eyes[:3] + eyes[6:], current=0.49)
    assert few.threshold is None and "needs 2 more ungradable" in few.words()


@pytest.fixture
def store(tmp_path, database_url):
    with ClinicStore(database_url, image_store=tmp_path / "images", clock=FixedClock(NOW)) as s:
        yield s


def test_the_qa_report_suggests_from_the_database_and_only_an_admin_applies_it(store, tmp_path):
    quality_graded_clinic(store)
    eyes = qa_eyes(store, "North", camera_of=lambda r: "1024x685")
    assert sum(e.p_quality_reject is not None for e in eyes) == 30
    (suggestion,) = quality_suggestions(eyes, card_reject_threshold())
    assert suggestion.camera == "1024x685" and suggestion.threshold == pytest.approx(0.35)
    from pypdf import PdfReader

    from eyescreen_desktop.core.qa_report import export_qa
    pdf, _csv, _summary = export_qa(store, tmp_path / "qa", "North", n_boot=20)
    words = " ".join(p.extract_text() for p in PdfReader(pdf).pages).replace("\n", " ")
    assert "Suggested photo-quality threshold" in words and "suggested 0.350" in words
    store.add_person("ada", "admin-password-1", ["admin"])
    store.sign_in("ada", "admin-password-1")
    store.add_person("nina", "nurse-password-1", ["nurse"])
    store.sign_in("nina", "nurse-password-1")
    with pytest.raises(RoleRefused, match="admin"):
        store.apply_quality_threshold(suggestion.threshold)
    assert store.applied_quality_threshold() is None
    store.sign_in("ada", "admin-password-1")
    store.apply_quality_threshold(suggestion.threshold)
    assert store.applied_quality_threshold() == pytest.approx(0.35)
    entry = store.audit("gate:reject")[-1]
    assert (entry.action, entry.user, entry.details["threshold"], entry.details["before"]) == (
        "photo-quality threshold applied", "ada", pytest.approx(0.35), None)


def test_screening_judges_photographs_at_the_applied_threshold(tmp_path, tiny_model_dir):
    from eyescreen_desktop.core.batch import run_batch

    classifier = Classifier.load(model_with_thresholds(tiny_model_dir, tmp_path / "annual", 0.99, 0.99),
                                 backend="keras")
    data = tmp_path / "data"

    def screen(out: str, patient: str) -> dict[str, str]:   # the same photograph, a new batch and patient
        folder = tmp_path / f"in-{out}"
        folder.mkdir()
        shutil.copy(FUNDUS_DR / "images" / "P001_R.jpg", folder / f"{patient}_R.jpg")
        run_batch([folder], tmp_path / out, model=classifier, data_dir=data, pdf=False)
        with open(tmp_path / out / "results.csv", newline="", encoding="utf-8") as f:
            return next(iter(csv.DictReader(f)))

    before = screen("default", "P001")
    assert before["status"] == "ok" and "site photo-quality threshold" not in before["gate"]
    p_reject = float(before["p_quality_reject"])
    with ClinicStore.open(data_paths(data)) as s:
        s.apply_quality_threshold(round(p_reject * 0.5, 4))          # stricter than this photograph
    after = screen("site", "P901")
    assert after["status"] == "ungradable" and "site photo-quality threshold" in after["gate"]
