"""Site calibration: the rule on hand-made numbers, then the whole path on real
photographs with the shipped model (ONNX): labels CSV -> screening -> thresholds ->
OP.json + report PDF read back -> ``eyescreen screen --operating-point``, refused
for other weights; and the result cache keyed on thresholds, not names."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pypdf import PdfReader

from eyescreen_desktop import cli
from eyescreen_desktop.core import calibration as C
from eyescreen_desktop.core.calibrate_cli import run_calibration
from eyescreen_desktop.core.calibration_report import write_calibration_report
from eyescreen_desktop.core.classifier import read_card
from eyescreen_desktop.core.paths import default_model_dir
from eyescreen_desktop.core.records import Eye, OperatingPoint
from tests.conftest import FUNDUS_DR, read_labels

MODEL = default_model_dir()
needs_model = pytest.mark.skipif(not (MODEL / "model_card.json").is_file(), reason="no shipped model")


def _eye(collection: str, patient: str, referable: bool, urgent: bool, p_ref: float, p_urg: float,
         status: str = "ok") -> C.ScreenedEye:
    labelled = C.LabelledEye(Path(f"{patient}.jpg"), f"{collection}:{patient}", Eye.UNKNOWN, referable, urgent,
                             collection)
    return C.ScreenedEye(labelled, status, p_ref, p_urg)


# ---------------------------------------------------------------------- the rule, by hand


def _two_cameras() -> list[C.ScreenedEye]:
    """Camera A ranks well at high probabilities; camera B's probabilities run low."""
    a = [_eye("A", f"a{i}", True, False, 0.5 + i / 100, 0.01) for i in range(10)]
    a += [_eye("A", f"n{i}", False, False, 0.2 + i / 100, 0.01) for i in range(10)]
    a += [_eye("A", "u1", True, True, 0.9, 0.8)]
    b = [_eye("B", f"b{i}", True, False, 0.2 + i / 100, 0.01) for i in range(10)]
    b += [_eye("B", f"m{i}", False, False, 0.01 + i / 1000, 0.001) for i in range(10)]
    b += [_eye("B", "u2", True, True, 0.05, 0.02)]     # an urgent eye both heads underrate
    b += [_eye("B", "gated", True, True, math.nan, math.nan, status="ungradable")]
    return a + b


def test_worst_collection_sets_each_threshold_and_no_urgent_eye_is_left_in_annual():
    eyes = _two_cameras()
    t = C.choose_thresholds(eyes, C.Rule(0.90, 0.97))
    # urgent: A alone would allow 0.8; B's only urgent eye sits at 0.02, so B wins
    assert t.urgent == pytest.approx(0.02, abs=1e-6)
    # referable: 10 of B's 11 referable eyes score >= 0.20 (u2 at 0.05 is the 11th); u2 is
    # caught by the urgent threshold, so the referable threshold need not fall to 0.05
    assert t.referable == pytest.approx(0.20, abs=1e-6)
    for f in C.figures_by_collection(eyes, t, n_boot=50):
        assert f.referable_sensitivity.value >= 0.90 and f.urgent_in_annual == 0
    # the gated photograph is counted, but not calibrated on
    b = C.figures([e for e in eyes if e.eye.collection == "B"], t, n_boot=50, collection="B")
    assert b.gated == 1 and b.photographs == 22 and b.urgent_eyes == 1


def test_an_urgent_eye_both_thresholds_miss_pulls_the_referable_threshold_down():
    eyes = _two_cameras() + [_eye("B", "u3", True, True, 0.9, 0.5)]
    t = C.choose_thresholds(eyes, C.Rule(0.90, 0.5))      # half of B's urgent eyes suffice: u3 at 0.5
    assert t.urgent == pytest.approx(0.5, abs=1e-6)
    assert t.referable == pytest.approx(0.05, abs=1e-6)   # u2 (0.05, 0.02) must go at least to routine
    assert all(f.urgent_in_annual == 0 for f in C.figures_by_collection(eyes, t, n_boot=20))


def test_a_missed_urgent_eye_lowers_whichever_threshold_refers_fewer_healthy_eyes():
    # u (urgent) has a low p(referable) but a fair p(urgent): lowering the referable threshold
    # to 0.03 would refer every healthy eye; lowering the urgent one to 0.3 refers none of them
    eyes = [_eye("A", f"r{i}", True, False, 0.6 + i / 100, 0.1) for i in range(10)]
    eyes += [_eye("A", f"h{i}", False, False, 0.05 + i / 100, 0.05) for i in range(20)]
    eyes += [_eye("A", "v", True, True, 0.8, 0.9), _eye("A", "w", True, True, 0.7, 0.85),
             _eye("A", "u", True, True, 0.03, 0.3)]
    t = C.choose_thresholds(eyes, C.Rule(0.90, 0.6))
    assert t.referable > 0.05 and t.urgent == pytest.approx(0.3, abs=1e-6)
    f = C.figures(eyes, t, n_boot=20, collection="A")
    assert f.urgent_in_annual == 0 and f.referable_specificity.value == 1.0
    # maculopathy flags an eye on its own: an urgent eye it already refers needs no lower threshold
    a = C._arrays(eyes)
    flagged = a["p_ref"] == 0.03
    t2 = C.thresholds_from_arrays(a["y_ref"], a["p_ref"], a["y_urg"], a["p_urg"], a["collection"],
                                  C.Rule(0.90, 0.6), also_flagged=flagged)
    assert t2.urgent > 0.3


def test_the_cost_of_the_worst_collection_is_reported_per_collection():
    eyes = _two_cameras()
    t = C.choose_thresholds(eyes)
    a = C.figures([e for e in eyes if e.eye.collection == "A"], t, n_boot=20, collection="A")
    # on its own, camera A keeps every normal eye out of referral; camera B's point refers them all
    assert a.own_specificity == 1.0 and a.referable_specificity.value == 0.0
    assert a.specificity_cost == pytest.approx(1.0)


def test_curves_have_patient_bootstrap_bands_around_the_point_estimate():
    eyes = _two_cameras()
    t = C.choose_thresholds(eyes)
    c = C.curve(eyes, "referable", t, n_points=30, n_boot=100)
    assert len(c.thresholds) == len(c.sensitivity) == len(c.specificity)
    assert np.all(np.diff(c.sensitivity) <= 1e-12)          # a higher threshold never finds more
    lo, hi = c.specificity_band
    inside = (lo <= c.specificity + 1e-9) & (c.specificity <= hi + 1e-9)
    assert inside.mean() > 0.9 and np.any(hi - lo > 0)


def test_too_few_eyes_are_refused_and_thin_collections_warned():
    eyes = _two_cameras()
    with pytest.raises(C.CalibrationError, match="at least 100"):
        C.check_size(eyes)
    warnings = C.check_size(eyes, min_eyes=20)
    assert any(w.startswith("A: only 11 referable") for w in warnings)
    assert any("urgent eyes" in w for w in warnings)


def test_labels_need_a_file_and_a_grade(tmp_path):
    bad = tmp_path / "site.csv"
    bad.write_text("file,patient\nx.jpg,1\n")
    with pytest.raises(C.CalibrationError, match="icdr_grade"):
        C.read_labels(bad)
    missing = tmp_path / "labels.csv"
    missing.write_text("file,icdr_grade\nnot-here.jpg,2\n")
    with pytest.raises(C.CalibrationError, match="line 2: photograph not-here.jpg not found"):
        C.read_labels(missing)


# ---------------------------------------------------------------------- real photographs


def _labels_csv(folder: Path, n_per_grade: int = 5) -> Path:
    """A clinic's labels file: ~25 real fundus-dr photographs of every grade (absolute paths)."""
    rows = read_labels(FUNDUS_DR)
    picked = [r for g in "01234" for r in [r for r in rows if r["icdr_grade"] == g][:n_per_grade]]
    path = folder / "site-a" / "labels.csv"
    path.parent.mkdir(parents=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "patient", "eye", "icdr_grade", "referable"])
        for r in picked:
            w.writerow([FUNDUS_DR / "images" / r["file"], r["patient"], r["eye"], r["icdr_grade"], r["referable"]])
    return path


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("calibrate")
    labels = _labels_csv(folder)
    c = run_calibration([labels], MODEL, name="site-a-2026", min_eyes=20, backend="onnx")
    return folder, labels, c


@needs_model
def test_calibration_screens_real_photographs_and_meets_its_rule(calibrated):
    _, labels, c = calibrated
    assert [s.collection for s in c.sources] == ["site-a"]
    f = c.per_collection[0]
    src = c.sources[0]
    assert src.photographs == f.photographs == 25 and src.gradable == 25 - f.gated
    assert src.urgent == f.urgent_eyes and 0 < src.urgent <= 10    # 10 listed; the gate may refuse some
    assert f.referable_sensitivity.value >= 0.90 and f.urgent_in_annual == 0
    assert f.referable_auc[1] <= f.referable_auc[0] <= f.referable_auc[2]
    assert c.model["weights_sha256"] == read_card(MODEL).weights_sha256
    assert any("gradable eyes" in w for w in c.warnings)    # 25 < 100: cautioned, not refused


@needs_model
def test_operating_point_file_and_report_say_what_the_point_rests_on(calibrated, tmp_path):
    _, labels, c = calibrated
    op_file = C.write_operating_point(c, tmp_path / "op.json")
    d = json.loads(op_file.read_text())
    assert d["format"] == C.OP_FORMAT and d["thresholds"]["referable"] == c.thresholds.referable
    assert d["model"]["name"] == "eyescreen-dr" and len(d["model"]["weights_sha256"]) == 64
    assert d["data"][0]["photographs"] == 25 and d["data"][0]["labels"] == str(labels.resolve())
    assert "worst collection wins" in d["rule"]["text"] and d["created"].startswith("20")
    # the model's maculopathy threshold travels with the clinic's point (clinics rarely grade it),
    # also into points written before the model had that output
    card = read_card(MODEL)
    if "maculopathy" in card.outputs:
        assert d["thresholds"]["maculopathy"] == card.operating_point.maculopathy
        assert c.operating_point.maculopathy == card.operating_point.maculopathy
    d["thresholds"].pop("maculopathy", None)
    (tmp_path / "older.json").write_text(json.dumps(d))
    older = C.load_operating_point(tmp_path / "older.json", card)
    assert older.operating_point.maculopathy == card.operating_point.maculopathy
    pdf = write_calibration_report(c, tmp_path / "op.pdf")
    reader = PdfReader(pdf)
    text = " ".join(p.extract_text() for p in reader.pages)
    assert f"Referable threshold: {c.thresholds.referable:.4f}" in text
    assert "site-a" in text and "eyescreen-dr" in text and "worst collection wins" in text
    # the curves are vector graphics: their titles, axes and chosen thresholds are text in the PDF
    assert "referable: eyes flagged at each threshold" in text and "urgent threshold (p" in text
    assert f"chosen {c.thresholds.referable:.4f}" in text and f"chosen {c.thresholds.urgent:.4f}" in text
    assert len(reader.pages[0].images) == 1                      # the logo; no curve bitmap


@needs_model
def test_cli_calibrates_then_screens_with_the_point_and_refuses_other_weights(calibrated, tmp_path, capsys):
    _, labels, c = calibrated
    op = tmp_path / "clinic.json"
    assert cli.main(["calibrate", "--data", str(labels), "--out", str(op), "--min-eyes", "20"]) == 0
    assert op.is_file() and op.with_suffix(".pdf").is_file()
    assert "referable threshold" in capsys.readouterr().out
    photos = tmp_path / "in"
    photos.mkdir()
    for name in ("P001_L.jpg", "P001_R.jpg"):
        (photos / name).symlink_to(FUNDUS_DR / "images" / name)
    out = tmp_path / "out"
    assert cli.main(["screen", str(photos), "--out", str(out), "--operating-point", str(op), "--no-pdf",
                     "--data-dir", str(tmp_path / "data")]) == 0
    assert len(list(csv.DictReader(open(out / "results.csv")))) == 2
    tampered = json.loads(op.read_text())
    tampered["model"]["weights_sha256"] = "0" * 64
    other = tmp_path / "other.json"
    other.write_text(json.dumps(tampered))
    assert cli.main(["screen", str(photos), "--out", str(out), "--operating-point", str(other), "--no-pdf",
                     "--data-dir", str(tmp_path / "data")]) == 2
    assert "calibrate again with this model" in capsys.readouterr().err


def test_too_few_photographs_are_refused_before_the_model_loads(tmp_path, capsys):
    labels = _labels_csv(tmp_path, n_per_grade=2)
    assert cli.main(["calibrate", "--data", str(labels), "--out", str(tmp_path / "op.json"),
                     "--model", str(tmp_path / "no-model")]) == 2
    assert "at least 100 graded eyes" in capsys.readouterr().err


def test_calibration_path_imports_no_tensorflow_or_qt():
    code = ("import sys\nimport eyescreen_desktop.core.calibrate_cli, eyescreen_desktop.core.calibration_report\n"
            "from eyescreen_desktop.core import calibration\n"
            "print('\\n'.join(sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    loaded = set(out.stdout.split())
    assert "tensorflow" not in loaded and "keras" not in loaded
    assert not any(m.startswith(("PySide6", "eyescreen_desktop.training")) for m in loaded)


def test_result_cache_keys_on_thresholds_not_the_name(tmp_path):
    from dataclasses import replace

    from eyescreen_desktop.core.records import ModelInfo, Patient
    from eyescreen_desktop.core.store import ClinicStore
    from tests.gui.clinic_fixtures import graded_eye

    with ClinicStore(tmp_path / "clinic.sqlite3") as store:
        store.upsert_patient(Patient("C1"))
        eid = store.start_encounter("C1", None, "icdr-ada")
        result = replace(graded_eye(Eye.LEFT, 2), sha256="cd" * 32)
        info = ModelInfo("m", "1", "f" * 64)
        store.save_result(eid, result, info, "icdr-ada", OperatingPoint("clinic", 0.2, 0.05), copy=False)
        lookup = lambda op: store.result_for(result.sha256, info.sha256, "icdr-ada", op)  # noqa: E731 - a one-line helper used only here
        assert lookup(OperatingPoint("renamed", 0.2, 0.05)) is not None      # same thresholds, new name
        assert lookup(OperatingPoint("clinic", 0.1, 0.05)) is None           # recalibrated: screen again
        assert lookup("clinic") is not None                                  # by name, as before


def test_two_labels_files_of_one_name_are_refused(tmp_path, capsys):
    first = _labels_csv(tmp_path / "a", n_per_grade=1)
    second = _labels_csv(tmp_path / "b", n_per_grade=1)             # both .../site-a/labels.csv
    assert cli.main(["calibrate", "--data", str(first), "--data", str(second), "--out", str(tmp_path / "o.json")]) == 2
    assert "share a collection name" in capsys.readouterr().err


@needs_model
def test_a_folder_batch_follows_the_thresholds_not_the_points_name(tmp_path):
    from eyescreen_desktop.core.batch import run_batch

    photos = tmp_path / "in"
    photos.mkdir()
    for name in ("P001_L.jpg", "P001_R.jpg"):
        (photos / name).symlink_to(FUNDUS_DR / "images" / name)
    common = dict(model=MODEL, data_dir=tmp_path / "data", pdf=False)
    strict = OperatingPoint("clinic", referable=0.0, urgent=0.0)         # everything referred, urgently
    first = run_batch([photos], tmp_path / "a", operating_point=strict, **common)
    assert first.screened == 2 and {e.queue.value for e in first.encounters} == {"urgent"}
    renamed = run_batch([photos], tmp_path / "b", operating_point=OperatingPoint("renamed", 0.0, 0.0), **common)
    assert renamed.screened == 0                                       # same thresholds: on record already
    lax = run_batch([photos], tmp_path / "c", operating_point=OperatingPoint("clinic", 1.0, 1.0), **common)
    assert lax.screened == 2 and {e.queue.value for e in lax.encounters} == {"annual"}
    stored = lax.encounters[0].operating_point
    assert (stored.referable, stored.urgent) == (1.0, 1.0)
