"""The batch behind ``eyescreen screen``, in-process: patient/eye mapping, results.csv,
the database it fills, resuming an interrupted batch, result reuse, PDFs."""

from __future__ import annotations

import csv
import shutil
import sqlite3
from pathlib import Path

import pytest
from pypdf import PdfReader

from eyescreen_desktop.core import batch as batch_mod
from eyescreen_desktop.core import batch_cli
from eyescreen_desktop.core.batch import (
    BatchUsageError,
    batch_key,
    plan_files,
    read_patients_csv,
    run_batch,
    safe_file_name,
)
from eyescreen_desktop.core.classifier import Classifier, ModelError
from eyescreen_desktop.core.records import Eye, Queue, Status
from eyescreen_desktop.domain.eyes import NO_PATIENT_ID
from tests.core.screen_inputs import IMAGES, make_bad_inputs, model_with_thresholds

REQUIRED = ["file", "patient_id", "eye", "status", "queue", "grade", "p_referable", "p_urgent", "p_maculopathy",
            "p_quality_reject", "message", "due_date", "finding", "quality_reasons", "model_version"]


@pytest.fixture(scope="module")
def annual_model(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model with thresholds it never reaches: graded eyes go to annual."""
    return model_with_thresholds(tiny_model_dir, tmp_path_factory.mktemp("m") / "annual", 0.99, 0.99)


@pytest.fixture(scope="module")
def annual_classifier(annual_model) -> Classifier:
    return Classifier.load(annual_model, backend="keras")


def touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def db_count(data: Path, sql: str) -> int:
    con = sqlite3.connect(data / "clinic.sqlite3")
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


def photo_folder(root: Path, names: dict[str, str]) -> Path:
    """``names``: target name -> source photograph name in fundus-dr."""
    root.mkdir(parents=True, exist_ok=True)
    for target, source in names.items():
        (root / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(IMAGES / source, root / target)
    return root


TWO_PATIENTS = {"P001_L.jpg": "P001_L.jpg", "P001_R.jpg": "P001_R.jpg",
                "P003_L.jpg": "P003_L.jpg", "P003_R.jpg": "P003_R.jpg"}


# ---------------------------------------------------------------------- planning


def test_patient_and_eye_come_from_names_then_folders_then_the_file(tmp_path):
    touch(tmp_path, "P1_L.jpg", "p2_od.JPG", "P3_Left.png", "ab_cd_os.tif", "P5/a.jpg", "P5/right.jpg",
          "P6/P6_R.jpg", "scan.jpg", "x.jpg", "x.png", "notes.txt", ".hidden.jpg")
    planned = {f.file: (f.patient_id, f.eye) for f in plan_files([tmp_path])}
    assert planned == {
        "P1_L.jpg": ("P1", Eye.LEFT), "p2_od.JPG": ("p2", Eye.RIGHT), "P3_Left.png": ("P3", Eye.LEFT),
        "ab_cd_os.tif": ("ab_cd", Eye.LEFT), "P5/a.jpg": ("P5", Eye.UNKNOWN), "P5/right.jpg": ("P5", Eye.RIGHT),
        "P6/P6_R.jpg": ("P6", Eye.RIGHT), "scan.jpg": (NO_PATIENT_ID, Eye.UNKNOWN),
        "x.jpg": (NO_PATIENT_ID, Eye.UNKNOWN), "x.png": (NO_PATIENT_ID, Eye.UNKNOWN),
    }


def test_the_batch_reads_a_file_name_like_the_window(tmp_path):
    """``P001-R.jpg`` is patient P001's right eye for the batch and the camera folder,
    as it is in the window (issue 20: the batch once made it a patient "P001-R")."""
    from eyescreen_desktop.domain.eyes import eye_from_name
    from eyescreen_desktop.gui.batch_jobs import file_patient

    touch(tmp_path, "P001-R.jpg", "P001-L.jpg", "P002 OD.jpg", "A-17-os.png")
    planned = {f.file: (f.patient_id, f.eye) for f in plan_files([tmp_path])}
    assert planned == {"P001-R.jpg": ("P001", Eye.RIGHT), "P001-L.jpg": ("P001", Eye.LEFT),
                       "P002 OD.jpg": ("P002", Eye.RIGHT), "A-17-os.png": ("A-17", Eye.LEFT)}
    assert all(eye_from_name(Path(name)) is eye for name, (_, eye) in planned.items())
    assert file_patient(tmp_path, tmp_path / "P001-R.jpg") == ("P001-R.jpg", "P001", Eye.RIGHT)


def test_patient_list_wins_and_is_read_the_way_spreadsheets_save_it(tmp_path):
    touch(tmp_path, "visit/img1.jpg", "img2.jpg", "P9_R.jpg")
    listing = tmp_path / "patients.csv"
    listing.write_text("\ufefffile;patient_id;name;birth_date;sex;eye\n"
                       "visit/img1.jpg;A-17;Zoë Åberg;1956-03-21;F;OS\n"
                       ".\\img2.jpg;A-17;Zoë Åberg;1956-03-21;F;right\n", encoding="utf-8")
    listed = read_patients_csv(listing)
    assert listed["img2.jpg"].patient.name == "Zoë Åberg" and listed["img2.jpg"].eye is Eye.RIGHT
    planned = {f.file: (f.patient_id, f.eye) for f in plan_files([tmp_path], listed)}
    assert planned == {"visit/img1.jpg": ("A-17", Eye.LEFT), "img2.jpg": ("A-17", Eye.RIGHT),
                       "P9_R.jpg": ("P9", Eye.RIGHT)}


def test_a_bad_patient_list_is_a_usage_error_naming_the_problem(tmp_path):
    bad = tmp_path / "p.csv"
    bad.write_text("filename,id\nx.jpg,1\n")
    with pytest.raises(BatchUsageError, match="no column file, patient_id"):
        read_patients_csv(bad)
    bad.write_text("file,patient_id,name,birth_date\nx.jpg,1,Ann,21/03/1956\n")
    with pytest.raises(BatchUsageError, match="line 2: birth_date '21/03/1956'"):
        read_patients_csv(bad)
    with pytest.raises(BatchUsageError, match="cannot read"):
        read_patients_csv(tmp_path / "missing.csv")


def test_batch_key_names_inputs_protocol_and_model(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert batch_key([a, b], "icdr-ada", "m1") == batch_key([b, a], "icdr-ada", "m1")
    assert len({batch_key([a], "icdr-ada", "m1"), batch_key([a], "nhs-dess", "m1"),
                batch_key([a], "icdr-ada", "m2"), batch_key([b], "icdr-ada", "m1")}) == 4
    assert safe_file_name("A/17 Zoë") == "A_17_Zoë" and safe_file_name("..") == "patient"


# ---------------------------------------------------------------------- running


def test_a_batch_fills_the_csv_and_the_clinic_database(tmp_path, annual_classifier):
    folder = photo_folder(tmp_path / "in", TWO_PATIENTS)
    expected_bad = make_bad_inputs(tmp_path / "bad")
    for name in ("zero.jpg", "letter.jpg", "blurred.jpg"):
        shutil.move(tmp_path / "bad" / name, folder / name)
    data = tmp_path / "data"
    report = run_batch([folder], tmp_path / "out", model=annual_classifier, data_dir=data, pdf=False)
    rows = read_csv(tmp_path / "out" / "results.csv")
    assert list(rows[0])[:11] == REQUIRED[:11] and set(REQUIRED) <= set(rows[0])
    assert sorted(r["file"] for r in rows) == sorted([*TWO_PATIENTS, "zero.jpg", "letter.jpg", "blurred.jpg"])
    by_file = {r["file"]: r for r in rows}
    for name in ("zero.jpg", "letter.jpg", "blurred.jpg"):
        r = by_file[name]
        assert (r["status"], r["queue"], r["grade"], r["p_referable"]) == (expected_bad[name], "review", "", "")
        assert r["patient_id"] == NO_PATIENT_ID and r["message"]   # filed to no patient named after the file
    for name in TWO_PATIENTS:
        r = by_file[name]
        assert (r["status"], r["queue"], r["eye"], r["model_version"]) == ("ok", "annual", name[5], "0.0.1")
        assert r["grade"] in {"0", "1"} and 0 <= float(r["p_referable"]) <= 1
    assert report.queue_counts == {Queue.URGENT: 0, Queue.ROUTINE: 0, Queue.REVIEW: 0, Queue.ANNUAL: 2}
    assert report.status_counts == {Status.OK: 4, Status.ERROR: 1, Status.NOT_FUNDUS: 1, Status.UNGRADABLE: 1}
    assert {f for f, _ in report.rejected} == {"zero.jpg", "letter.jpg", "blurred.jpg"}
    assert db_count(data, "SELECT COUNT(*) FROM encounters") == 3    # 2 patients, 1 group with no patient ID
    assert db_count(data, "SELECT COUNT(*) FROM queue_state WHERE state = 'open'") == 3
    stored = [p for p in (data / "images").rglob("*") if p.is_file()]
    assert len(stored) == 6   # every readable file is kept; the zero-byte one cannot be


def test_an_interrupted_batch_resumes_without_losing_or_repeating(tmp_path, annual_classifier):
    folder = photo_folder(tmp_path / "in", {**TWO_PATIENTS, "P004_L.jpg": "P004_L.jpg",
                                            "P004_R.jpg": "P004_R.jpg"})
    data, out = tmp_path / "data", tmp_path / "out"

    def crash_after_three(done, total, file):
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch([folder], out, model=annual_classifier, data_dir=data, pdf=False, progress=crash_after_three,
                  batch_size=2)
    assert db_count(data, "SELECT COUNT(*) FROM batch_files") == 3
    report = run_batch([folder], out, model=annual_classifier, data_dir=data, pdf=False, batch_size=2)
    assert report.resumed and report.screened == 3 and report.files == 6
    assert db_count(data, "SELECT COUNT(*) FROM batch_files") == 6
    assert db_count(data, "SELECT COUNT(*) FROM results") == 6
    assert db_count(data, "SELECT COUNT(*) FROM encounters") == 3
    assert db_count(data, "SELECT COUNT(*) FROM images") == 6
    assert len(read_csv(out / "results.csv")) == 6
    assert db_count(data, "SELECT COUNT(*) FROM audit_log WHERE action = 'batch resumed'") == 1


def test_a_finished_batch_run_again_only_rewrites_outputs_and_adds_new_files(tmp_path, annual_model,
                                                                             monkeypatch):
    folder = photo_folder(tmp_path / "in", TWO_PATIENTS)
    data, out = tmp_path / "data", tmp_path / "out"
    first = run_batch([folder], out, model=annual_model, data_dir=data, pdf=False)
    assert first.screened == 4 and not first.resumed
    (out / "results.csv").unlink()

    def no_loading(*a, **k):
        raise AssertionError("the model was loaded although nothing was left to screen")

    with monkeypatch.context() as m:
        m.setattr(Classifier, "load", no_loading)
        again = run_batch([folder], out, model=annual_model, data_dir=data, pdf=False)
    assert again.screened == 0 and len(read_csv(out / "results.csv")) == 4
    shutil.copy(IMAGES / "P004_R.jpg", folder / "P001_OD.jpg")   # a late photograph of a known patient
    third = run_batch([folder], out, model=annual_model, data_dir=data, pdf=False)
    assert third.screened == 1 and len(read_csv(out / "results.csv")) == 5
    assert db_count(data, "SELECT COUNT(*) FROM encounters") == 2
    p001 = next(s for s in third.encounters if s.patient.patient_id == "P001")
    assert sorted(e.eye.value for e in p001.all_photos) == ["L", "R", "R"]
    assert sorted(e.eye.value for e in p001.eyes) == ["L", "R"]  # the later right photograph is current


def test_the_same_photo_is_recognised_in_a_batch_and_across_batches(tmp_path, annual_classifier, monkeypatch):
    folder = photo_folder(tmp_path / "in", {"P001_L.jpg": "P001_L.jpg", "P001_L copy.jpg": "P001_L.jpg"})
    data = tmp_path / "data"
    run_batch([folder], tmp_path / "out", model=annual_classifier, data_dir=data, pdf=False)
    rows = read_csv(tmp_path / "out" / "results.csv")
    assert len(rows) == 2 and rows[1]["message"] == "(identical to P001_L copy.jpg)"
    assert db_count(data, "SELECT COUNT(*) FROM images") == 1

    def no_decoding(*a, **k):
        raise AssertionError("decoded a photograph whose result was on record")

    monkeypatch.setattr("eyescreen_desktop.core.screening.read_image_with_hash", no_decoding)
    other = photo_folder(tmp_path / "in2", {"P001_L.jpg": "P001_L.jpg"})
    report = run_batch([other], tmp_path / "out2", model=annual_classifier, data_dir=data, pdf=False)
    assert report.status_counts == {Status.OK: 1}
    assert db_count(data, "SELECT COUNT(*) FROM images") == 1
    assert db_count(data, "SELECT COUNT(*) FROM encounters") == 2   # one patient, one visit a day (issue 24)


def test_usage_errors_are_raised_before_anything_is_written(tmp_path, tiny_model_dir):
    data = tmp_path / "data"
    with pytest.raises(BatchUsageError, match="no such file or folder"):
        run_batch([tmp_path / "nope"], tmp_path / "out", model=tiny_model_dir, data_dir=data)
    folder = photo_folder(tmp_path / "in", {"P001_L.jpg": "P001_L.jpg"})
    with pytest.raises(BatchUsageError, match="unknown protocol"):
        run_batch([folder], tmp_path / "out", model=tiny_model_dir, data_dir=data, protocol="etdrs")
    with pytest.raises(ModelError, match="no model card"):
        run_batch([folder], tmp_path / "out", model=tmp_path, data_dir=data)
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    weights = broken / "model.keras"
    weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ModelError, match="do not match"):
        run_batch([folder], tmp_path / "out", model=broken, data_dir=data)
    assert not (data / "clinic.sqlite3").exists() and not (tmp_path / "out").exists()


def test_every_patient_gets_a_document_named_by_patient_and_encounter(tmp_path, annual_classifier):
    folder = photo_folder(tmp_path / "in", {"P001_L.jpg": "P001_L.jpg", "P001_R.jpg": "P001_R.jpg"})
    make_bad_inputs(tmp_path / "bad")
    shutil.move(tmp_path / "bad" / "letter.jpg", folder / "Q7_L.jpg")
    listing = tmp_path / "patients.csv"
    listing.write_text("file,patient_id,name,birth_date\nQ7_L.jpg,Q7,Ann Example,1950-01-02\n")
    report = run_batch([folder], tmp_path / "out", patients_csv=listing, model=annual_classifier,
                       data_dir=tmp_path / "data", pdf=True)
    ids = {s.patient.patient_id: s.encounter_id for s in report.encounters}
    out = tmp_path / "out"
    review_slip = out / "review" / f"Q7_{ids['Q7'][:12]}.pdf"
    letter = out / "letters" / f"P001_{ids['P001'][:12]}.pdf"
    assert sorted(report.documents) == sorted([review_slip, letter]) and report.referral_pdfs == []
    assert report.pdf_error == "" and not list(out.glob("referrals/*.pdf"))
    slip = " ".join(page.extract_text() for page in PdfReader(review_slip).pages)
    slip = " ".join(slip.split())
    assert "Ann Example" in slip and "Q7" in slip and "examine in person" in slip and "What to do" in slip
    words = " ".join(page.extract_text() for page in PdfReader(letter).pages)
    assert "NO REFERRAL NEEDED" in words and "not a diagnosis" in words and "eyesight changes" in words
    summary = " ".join(page.extract_text() for page in PdfReader(out / "summary.pdf").pages)
    assert "Q7" in summary and "P001" in summary


def test_the_one_screen_summary_counts_queues_and_rejections(tmp_path, annual_classifier):
    folder = photo_folder(tmp_path / "in", {"P001_L.jpg": "P001_L.jpg", "P001_R.jpg": "P001_R.jpg"})
    make_bad_inputs(folder / "bad")
    report = run_batch([folder], tmp_path / "out", model=annual_classifier, data_dir=tmp_path / "d", pdf=False)
    text = batch_cli.format_summary(report, max_rejected=3)
    assert "11 file(s) of 2 patient(s)" in text    # bad/folder.jpg is a folder, not a file
    assert "annual 1" in text and "review 1" in text
    assert "Files rejected (9)" in text and "unreadable 4" in text and "... and 6 more" in text
    assert len(text.splitlines()) <= 24


def test_the_gui_can_pass_its_open_store(tmp_path, annual_classifier):
    from eyescreen_desktop.core.store import ClinicStore

    folder = photo_folder(tmp_path / "in", {"P001_L.jpg": "P001_L.jpg", "P001_R.jpg": "P001_R.jpg"})
    with ClinicStore(tmp_path / "gui.sqlite3") as store:
        report = run_batch([folder], tmp_path / "out", model=annual_classifier, store=store, pdf=False)
        assert [s.queue for s in store.encounters()] == [Queue.ANNUAL]   # still open, holds the batch
        assert store.encounter_summary(report.encounters[0].encounter_id).patient.patient_id == "P001"
    assert not (tmp_path / "data").exists()


def test_slips_of_a_batch_show_heat_maps_kept_in_the_database(tmp_path, tiny_model_dir):
    """With PDFs the batch computes heat maps, stores them with the results (so a
    slip printed later from the queues has them too) and puts them on the slip."""
    import dataclasses
    import io

    from eyescreen_desktop.core.paths import DataPaths
    from eyescreen_desktop.core.reports import slip_pdf_bytes
    from eyescreen_desktop.core.store import ClinicStore

    referring = Classifier.load(model_with_thresholds(tiny_model_dir, tmp_path / "m", 0.0, 0.0), backend="keras")
    folder = photo_folder(tmp_path / "in", {"P001_L.jpg": "P001_L.jpg", "P001_R.jpg": "P001_R.jpg"})
    run_batch([folder], tmp_path / "out", model=referring, data_dir=tmp_path / "data", pdf=True)
    assert db_count(tmp_path / "data", "SELECT COUNT(*) FROM results WHERE heatmap IS NOT NULL") == 2

    with ClinicStore.open(DataPaths(tmp_path / "data")) as store:
        summary = store.encounters(heatmaps=True)[0]
        listed = store.encounters()[0]  # queue views: heat maps stay in the database
    assert all(e.heatmap is not None for e in summary.eyes)
    assert all(e.heatmap is None for e in listed.eyes)
    plain = dataclasses.replace(summary, eyes=tuple(dataclasses.replace(e, heatmap=None) for e in summary.eyes))
    images = lambda pdf: sum(len(p.images) for p in PdfReader(pdf).pages)  # noqa: E731 - a one-line helper used only here
    (slip,) = (tmp_path / "out" / "referrals").glob("P001_*.pdf")
    assert images(slip) == images(io.BytesIO(slip_pdf_bytes(plain))) + 2

    run_batch([folder], tmp_path / "out2", model=referring, data_dir=tmp_path / "nopdf", pdf=False)
    assert db_count(tmp_path / "nopdf", "SELECT COUNT(*) FROM results WHERE heatmap IS NOT NULL") == 0


def test_a_failure_to_save_a_result_stops_the_batch_with_that_error(tmp_path, annual_classifier, monkeypatch):
    """Results are committed on a writer thread; its failure must reach the caller."""
    from eyescreen_desktop.core.store import ClinicStore

    photo_folder(tmp_path / "in", {**TWO_PATIENTS, "P004_L.jpg": "P004_L.jpg"})
    original, calls = ClinicStore.record_batch_file, []

    def disk_full_on_the_second(self, *args, **kwargs):
        calls.append(args[1])
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ClinicStore, "record_batch_file", disk_full_on_the_second)
    with pytest.raises(OSError, match="No space left"):
        run_batch([tmp_path / "in"], tmp_path / "out", model=annual_classifier, data_dir=tmp_path / "data",
                  pdf=False, batch_size=1)
    assert len(calls) == 2  # nothing saved after the failure
    assert db_count(tmp_path / "data", "SELECT COUNT(*) FROM batch_files") == 1


# ---------------------------------------------------------------------- issue 12: the rules of a screening day


def test_a_patient_with_one_eye_in_the_batch_is_reviewed_not_recalled(tmp_path, annual_classifier):
    folder = photo_folder(tmp_path / "in", {"P001_L.jpg": "P001_L.jpg", "P001_R.jpg": "P001_R.jpg",
                                            "P003_R.jpg": "P003_R.jpg"})
    report = run_batch([folder], tmp_path / "out", model=annual_classifier, data_dir=tmp_path / "d", pdf=True)
    rows = {r["file"]: r for r in read_csv(tmp_path / "out" / "results.csv")}
    assert (rows["P003_R.jpg"]["queue"], rows["P003_R.jpg"]["patient_queue"]) == ("annual", "review")
    assert rows["P001_R.jpg"]["patient_queue"] == rows["P001_L.jpg"]["patient_queue"] == "annual"
    one_eyed = next(s for s in report.encounters if s.patient.patient_id == "P003")
    assert one_eyed.queue is Queue.REVIEW and one_eyed.queue_note == "other eye not photographed"
    (slip,) = (tmp_path / "out" / "review").glob("P003_*.pdf")
    assert "Other eye not photographed" in " ".join(page.extract_text() for page in PdfReader(slip).pages)


def test_a_batch_queues_by_the_current_photo_of_each_eye(tmp_path, annual_classifier):
    """The same rule as the desk: a later photograph of an eye replaces the earlier."""
    folder = photo_folder(tmp_path / "in", {"P001_L.jpg": "P001_L.jpg", "P001_R.jpg": "P001_R.jpg"})
    make_bad_inputs(tmp_path / "bad")
    shutil.copy(tmp_path / "bad" / "blurred.jpg", folder / "P001_OD.jpg")   # sorted first: then retaken
    report = run_batch([folder], tmp_path / "out", model=annual_classifier, data_dir=tmp_path / "d", pdf=False)
    (p001,) = report.encounters
    assert [Path(e.path).name for e in p001.retaken] == ["P001_OD.jpg"]
    assert p001.queue is Queue.ANNUAL
    assert [file for file, _ in report.rejected] == ["P001_OD.jpg"]        # still listed as rejected


@pytest.mark.parametrize("phase", ["screening", "queueing", "csv", "pdf"])
def test_cancel_is_checked_in_every_phase_and_keeps_what_was_done(tmp_path, annual_classifier, monkeypatch, phase):
    folder = photo_folder(tmp_path / "in", {f"{p}_{e}.jpg": f"{p}_{e}.jpg" for p in ("P001", "P003", "P004")
                                            for e in "LR"})
    stop = {"now": False}
    if phase == "screening":
        progress = lambda done, total, file: stop.update(now=done >= 2)  # noqa: E731 - a one-line helper used only here
    else:
        progress = None
        hooks = {"queueing": "queue_batch_encounters", "csv": "write_results_csv", "pdf": "_write_pdfs"}
        real = getattr(batch_mod, hooks[phase])

        def arm(*args, **kwargs):
            stop["now"] = True
            return real(*args, **kwargs)
        monkeypatch.setattr(batch_mod, hooks[phase], arm)
    with pytest.raises(batch_mod.BatchCancelled):
        run_batch([folder], tmp_path / "out", model=annual_classifier, data_dir=tmp_path / "d", pdf=True,
                  progress=progress, cancelled=lambda: stop["now"])
    results = db_count(tmp_path / "d", "SELECT COUNT(*) FROM results")
    queued = db_count(tmp_path / "d", "SELECT COUNT(DISTINCT encounter_id) FROM queue_state")
    screened = db_count(tmp_path / "d", "SELECT COUNT(DISTINCT encounter_id) FROM results")
    assert results == (2 if phase == "screening" else 6) and queued == screened   # every result in a queue
    if phase in ("screening", "queueing"):
        assert not (tmp_path / "out" / "results.csv").exists()
    if phase == "pdf":
        assert not (tmp_path / "out" / "summary.pdf").exists() and (tmp_path / "out" / "results.csv").exists()
        assert len(list((tmp_path / "out").glob("*/*.pdf"))) < 3              # stopped between documents


def test_rejected_means_the_same_in_the_batch_summary_and_in_eyescreen_report(tmp_path, annual_classifier):
    from eyescreen_desktop.core.export_cli import rejected_files
    from eyescreen_desktop.core.paths import DataPaths
    from eyescreen_desktop.core.store import ClinicStore

    folder = photo_folder(tmp_path / "in", {"P001_L.jpg": "P001_L.jpg", "P001_R.jpg": "P001_R.jpg"})
    make_bad_inputs(folder / "bad")
    report = run_batch([folder], tmp_path / "out", model=annual_classifier, data_dir=tmp_path / "d", pdf=False)
    with ClinicStore.open(DataPaths(tmp_path / "d")) as store:
        from_report = rejected_files(store.encounters())
    assert sorted(Path(r.path).name for _, r in report.rejected) == sorted(Path(r.path).name for r in from_report)
    assert {r.status for r in from_report} == {Status.ERROR, Status.NOT_FUNDUS, Status.UNGRADABLE}


# ---------------------------------------------------------------------- issue 24 item 11: names without an ID


def test_a_folder_named_like_a_photograph_is_searched_not_screened(tmp_path, annual_classifier):
    """``folder.jpg/`` is a folder: its photographs are screened like any sub-folder's
    and the folder itself is neither a file in results.csv nor a patient."""
    folder = photo_folder(tmp_path / "in", {"P001_R.jpg": "P001_R.jpg", "folder.jpg/P003_L.jpg": "P003_L.jpg",
                                            "folder.jpg/P003_R.jpg": "P003_R.jpg"})
    data = tmp_path / "data"
    report = run_batch([folder], tmp_path / "out", model=annual_classifier, data_dir=data, pdf=False)
    rows = {r["file"]: r for r in read_csv(tmp_path / "out" / "results.csv")}
    assert sorted(rows) == ["P001_R.jpg", "folder.jpg/P003_L.jpg", "folder.jpg/P003_R.jpg"]
    assert all(r["status"] == "ok" for r in rows.values()), rows
    assert rows["folder.jpg/P003_R.jpg"]["patient_id"] == "P003" and report.files == 3
    assert db_count(data, "SELECT COUNT(*) FROM patients") == 2
    assert db_count(data, "SELECT COUNT(*) FROM patients WHERE patient_id LIKE 'folder%'") == 0
    # the folder given itself, as the only input, is searched too
    assert [f.file for f in plan_files([folder / "folder.jpg"])] == ["P003_L.jpg", "P003_R.jpg"]


def test_photographs_without_a_patient_id_are_grouped_not_made_patients(tmp_path, annual_classifier):
    """``IMG_0001.jpg`` and ``selfie.jpg`` are still screened (a grade, an eye check) but
    go under one heading, "no patient ID in the file name", with what to do: in
    results.csv, the summary PDF, the printed summary and the database (one review
    group, no patient named after a file)."""
    import cv2
    from skimage import data as skdata

    from eyescreen_desktop.gui.batch_jobs import file_patient

    folder = photo_folder(tmp_path / "in", {"P001_L.jpg": "P001_L.jpg", "P001_R.jpg": "P001_R.jpg",
                                            "IMG_0001.jpg": "P003_R.jpg"})
    cv2.imwrite(str(folder / "selfie.jpg"), cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR))
    data, out = tmp_path / "data", tmp_path / "out"
    report = run_batch([folder], out, model=annual_classifier, data_dir=data, pdf=True)

    rows = {r["file"]: r for r in read_csv(out / "results.csv")}
    assert rows["IMG_0001.jpg"]["patient_id"] == NO_PATIENT_ID == rows["selfie.jpg"]["patient_id"]
    assert rows["IMG_0001.jpg"]["status"] == "ok" and rows["IMG_0001.jpg"]["grade"] != ""
    assert rows["selfie.jpg"]["modality"] == "external_eye" and rows["selfie.jpg"]["p_checkup"] != ""
    assert rows["P001_R.jpg"]["patient_id"] == "P001"

    con = sqlite3.connect(data / "clinic.sqlite3")
    try:
        patients = {r[0] for r in con.execute("SELECT patient_id FROM patients")}
        grouped = con.execute("SELECT COUNT(*) FROM results r JOIN encounters e USING (encounter_id) "
                              "WHERE e.patient_id = ?", (NO_PATIENT_ID,)).fetchone()[0]
        group_queue = con.execute("SELECT q.queue FROM queue_state q JOIN encounters e USING (encounter_id) "
                                  "WHERE e.patient_id = ?", (NO_PATIENT_ID,)).fetchall()
    finally:
        con.close()
    assert patients == {"P001", NO_PATIENT_ID}      # no patient "IMG_0001" or "selfie"
    assert grouped == 2 and group_queue == [("review",)]   # one group staff see in review, both files in it

    assert [s.patient.patient_id for s in report.encounters] == ["P001"] and report.patients == 1
    assert sorted(f for f, _ in report.unidentified) == ["IMG_0001.jpg", "selfie.jpg"]
    assert [p.name for p in report.documents] == [f"P001_{report.encounters[0].encounter_id[:12]}.pdf"]

    summary = " ".join(" ".join(page.extract_text() for page in PdfReader(out / "summary.pdf").pages).split())
    assert "No patient ID in the file name (2)" in summary
    assert "IMG_0001.jpg" in summary and "selfie.jpg" in summary and "PATIENTID_R.jpg" in summary
    assert "1 patients" in summary

    printed = batch_cli.format_summary(report)
    assert "4 file(s) of 1 patient(s)" in printed
    assert "No patient ID in the file name (2 file(s))" in printed and "PATIENTID_R.jpg" in printed
    assert "  IMG_0001.jpg" in printed and "  selfie.jpg" in printed

    # the camera folder files them the same way
    assert file_patient(folder, folder / "IMG_0001.jpg") == ("IMG_0001.jpg", NO_PATIENT_ID, Eye.UNKNOWN)


def test_the_group_without_a_patient_id_is_never_recalled_as_annual(tmp_path, annual_classifier):
    """A healthy eye check stands alone under the eye-check protocol (annual), but
    the group "no patient ID in the file name" is nobody to recall: it stays in
    review until staff put each photograph with its patient."""
    import cv2
    from skimage import data as skdata

    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "selfie.jpg"), cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR))
    data = tmp_path / "data"
    report = run_batch([folder], tmp_path / "out", model=annual_classifier, data_dir=data, pdf=False,
                       protocol="eye-check")
    row = read_csv(tmp_path / "out" / "results.csv")[0]
    assert (row["patient_id"], row["modality"], row["queue"]) == (NO_PATIENT_ID, "external_eye", "annual")
    assert row["patient_queue"] == "review" and report.encounters == []
    assert db_count(data, "SELECT COUNT(*) FROM queue_state WHERE queue = 'review'") == 1
    assert db_count(data, "SELECT COUNT(*) FROM queue_state WHERE queue = 'annual'") == 0


def test_photographs_without_a_patient_id_on_either_clinic_database(tmp_path, annual_classifier, database_url):
    """The same grouping on SQLite and PostgreSQL: one review group holding both
    photographs without an ID, no patient named after a file, and a second batch the
    same day adds to that group rather than making another."""
    from eyescreen_desktop.core.paths import DataPaths
    from eyescreen_desktop.core.store import ClinicStore

    first = photo_folder(tmp_path / "a", {"P001_R.jpg": "P001_R.jpg", "IMG_0001.jpg": "P003_R.jpg"})
    second = photo_folder(tmp_path / "b", {"scan.jpg": "P004_L.jpg"})
    with ClinicStore.open(DataPaths(tmp_path / "data"), database_url) as store:
        run_batch([first], tmp_path / "out-a", model=annual_classifier, store=store, pdf=False)
        report = run_batch([second], tmp_path / "out-b", model=annual_classifier, store=store, pdf=False)
        assert store.get_patient("IMG_0001") is None and store.get_patient("scan") is None
        group = [s for s in store.encounters() if s.patient.patient_id == NO_PATIENT_ID]
        assert len(group) == 1 and group[0].queue is Queue.REVIEW and len(group[0].eyes) == 2
        assert group[0].queue_note                    # staff see why it is in review
    assert [f for f, _ in report.unidentified] == ["scan.jpg"] and report.encounters == []
