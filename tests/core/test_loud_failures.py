"""Failures are said, never swallowed (issue 20, defect 7): slips that failed make
``eyescreen screen`` exit non-zero; a broken reports package is not "not available";
a patient list naming a photograph twice is refused with both line numbers; a damaged
gate or eye-check model refuses to grade, saying which and what to do."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from eyescreen_desktop import cli
from eyescreen_desktop.core import screening
from eyescreen_desktop.core.batch import BatchUsageError, read_patients_csv
from eyescreen_desktop.core.classifier import Classifier, ModelError
from eyescreen_desktop.core.external_eye import EXTERNAL_MODEL_ENV, default_external_model, default_external_model_dir
from eyescreen_desktop.core.gate import default_gate_dir
from eyescreen_desktop.core.paths import default_model_dir
from tests.core.screen_inputs import IMAGES


@pytest.fixture
def two_photos(tmp_path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("P001_L.jpg", "P001_R.jpg"):
        shutil.copy(IMAGES / name, folder / name)
    return folder


def _screen(folder: Path, tmp_path: Path, model: Path) -> int:
    return cli.main(["screen", str(folder), "--out", str(tmp_path / "out"), "--model", str(model),
                     "--data-dir", str(tmp_path / "data")])


def test_screen_exits_non_zero_when_documents_failed(two_photos, tmp_path, tiny_model_dir, monkeypatch, capsys):
    from eyescreen_desktop.core import reports

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(reports, "write_patient_document", disk_full)
    rc = _screen(two_photos, tmp_path, tiny_model_dir)
    out = capsys.readouterr().out
    assert rc == 1 and "PDF(s) could not be written" in out and "No space left on device" in out
    assert (tmp_path / "out" / "results.csv").exists()      # the screening itself is kept


def test_a_broken_reports_package_is_not_called_missing(two_photos, tmp_path, tiny_model_dir, monkeypatch, capsys):
    import eyescreen_desktop.core as core

    monkeypatch.delattr(core, "reports")
    monkeypatch.setitem(sys.modules, "eyescreen_desktop.core.reports", None)   # its import fails
    rc = _screen(two_photos, tmp_path, tiny_model_dir)
    out = capsys.readouterr().out
    assert rc != 0 and "not available in this installation" not in out
    assert "failed to load" in out and "reinstall EyeScreen" in out


def test_a_photograph_listed_twice_is_refused_with_both_lines(tmp_path):
    listing = tmp_path / "patients.csv"
    listing.write_text("file,patient_id,name,birth_date,eye\n"
                       "a.jpg,P1,Ann,1950-01-01,R\n"
                       "b.jpg,P1,Ann,1950-01-01,L\n"
                       "./a.jpg,P2,Bob,1960-01-01,R\n", encoding="utf-8")
    with pytest.raises(BatchUsageError, match=r"names ./a.jpg twice \(lines 2 and 4\)"):
        read_patients_csv(listing)


def _damaged_copy(source: Path, dest: Path, name: str) -> Path:
    shutil.copytree(source, dest)
    target = dest / name
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    return dest


@pytest.fixture
def grader():
    return Classifier.load(default_model_dir(), backend="onnx", threads=1)


def test_a_damaged_gate_refuses_to_grade(tmp_path, monkeypatch, grader):
    damaged = _damaged_copy(default_gate_dir(), tmp_path / "gate", "modality.onnx")
    monkeypatch.setattr("eyescreen_desktop.core.gate.default_gate_dir", lambda: damaged)
    screening.default_gate.cache_clear()
    try:
        with pytest.raises(ModelError, match=r"learned gate in .*gate is damaged, so no photograph is graded"):
            screening.Screener(grader)
    finally:
        screening.default_gate.cache_clear()


def test_a_damaged_eye_check_model_refuses_to_grade(tmp_path, monkeypatch, grader, two_photos, capsys):
    damaged = _damaged_copy(default_external_model_dir(), tmp_path / "external", "model.onnx")
    monkeypatch.setenv(EXTERNAL_MODEL_ENV, str(damaged))
    default_external_model.cache_clear()
    try:
        with pytest.raises(ModelError, match=r"eye-check model in .*external is damaged"):
            screening.Screener(grader)
        assert _screen(two_photos, tmp_path, default_model_dir()) == 3     # the command says so and stops
        assert "eye-check model" in capsys.readouterr().err
    finally:
        default_external_model.cache_clear()
