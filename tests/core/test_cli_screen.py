"""``eyescreen screen`` end to end: through ``cli.main`` on real photographs mixed
with bad inputs, usage errors, and through a subprocess killed with SIGKILL
mid-batch and run again."""

from __future__ import annotations

import csv
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from eyescreen_desktop import cli
from tests.core.fault_injection import stopping_env
from eyescreen_desktop.domain.eyes import NO_PATIENT_ID
from tests.core.screen_inputs import NOT_A_FILE, copy_photos, make_bad_inputs, model_with_thresholds, real_photos

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def annual_model(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny test model whose thresholds it never reaches, so graded eyes land in
    annual and "nothing unusable in annual" is a real check."""
    return model_with_thresholds(tiny_model_dir, tmp_path_factory.mktemp("cli") / "annual", 0.99, 0.99)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def files_under(folder: Path) -> set[str]:
    """Every image-like file below ``folder`` (a folder named like an image is searched, not listed)."""
    suffixes = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".dcm"}
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")
            if p.suffix.lower() in suffixes and not p.is_dir()}


def test_screen_accounts_for_every_file_and_never_puts_a_bad_one_in_annual(tmp_path, annual_model, capsys):
    folder = tmp_path / "clinic day"
    copy_photos(real_photos(8), folder)
    expected_bad = make_bad_inputs(folder)
    out, data = tmp_path / "out", tmp_path / "data"
    rc = cli.main(["screen", str(folder), "--out", str(out), "--model", str(annual_model), "--data-dir", str(data)])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    rows = read_csv(out / "results.csv")
    assert sorted(r["file"] for r in rows) == sorted(files_under(folder)) and len(rows) == 17
    assert NOT_A_FILE not in {r["file"] for r in rows}
    for r in rows:
        if r["file"] in expected_bad:
            assert r["status"] == expected_bad[r["file"]], r
            assert (r["queue"], r["patient_queue"], r["grade"]) == ("review", "review", ""), r
            assert r["message"] and r["patient_id"] == NO_PATIENT_ID, r   # no patient named after the file
        else:
            assert (r["status"], r["queue"]) == ("ok", "annual"), r
            assert r["eye"] == r["file"][5] and r["patient_id"] == r["file"][:4]
        assert r["status"] == "ok" or r["queue"] != "annual"
    assert not list(out.glob("review/*.pdf"))   # the bad files name no patient: no review slip for nobody
    letters = sorted(p.stem.rsplit("_", 1)[0] for p in (out / "letters").glob("*.pdf"))
    assert letters == sorted({r["patient_id"] for r in rows if r["patient_queue"] == "annual"}) and len(letters) == 4
    assert not list(out.glob("referrals/*.pdf"))  # nobody referred
    assert (out / "summary.pdf").stat().st_size > 1000
    assert "Patients per queue:" in printed.out and "annual 4" in printed.out and "review 0" in printed.out
    assert "Files rejected (9)" in printed.out and "Traceback" not in printed.err
    assert "No patient ID in the file name (9 file(s))" in printed.out


def test_usage_errors_exit_non_zero_with_one_line(tmp_path, tiny_model_dir, capsys):
    rc = cli.main(["screen", str(tmp_path / "missing"), "--out", str(tmp_path / "o"), "--model", str(tiny_model_dir)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "no such file or folder" in err
    (tmp_path / "in").mkdir()
    rc = cli.main(["screen", str(tmp_path / "in"), "--out", str(tmp_path / "o"), "--model", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 3 and err.count("\n") == 1 and "no model card" in err
    with pytest.raises(SystemExit) as exc:
        cli.main(["screen", str(tmp_path / "in"), "--out", str(tmp_path / "o"), "--protocol", "etdrs"])
    assert exc.value.code == 2


def _committed(db: Path) -> int:
    """Files of the batch committed so far (0 while the database is being created)."""
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return con.execute("SELECT COUNT(*) FROM batch_files").fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:  # schema not there yet
        return 0


def test_kill_9_mid_batch_then_the_same_command_finishes_it_exactly_once(tmp_path, tiny_onnx_model_dir):
    photos = real_photos(16)   # the batch stops at an exact commit: a few more than that point suffice
    folder = tmp_path / "in"
    copy_photos(photos, folder)
    out, data = tmp_path / "out", tmp_path / "data"
    db = data / "clinic.sqlite3"
    cmd = [sys.executable, "-m", "eyescreen_desktop", "screen", str(folder), "--out", str(out),
           "--model", str(tiny_onnx_model_dir), "--data-dir", str(data), "--no-pdf"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    before = 3   # the power goes right after the third photograph is committed
    with open(tmp_path / "first.log", "wb") as log:
        proc = subprocess.run(cmd, cwd=ROOT, env=stopping_env(env, tmp_path / "hook", before, "kill"), stdout=log,
                              stderr=subprocess.STDOUT, timeout=300)
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "first.log").read_text(errors="replace")
    assert _committed(db) == before

    rerun = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"{len(photos) - before} screened now" in rerun.stdout
    assert f"{before} already on record" in rerun.stdout

    rows = read_csv(out / "results.csv")
    assert sorted(r["file"] for r in rows) == sorted(p.name for p in photos)
    assert {r["status"] for r in rows} <= {"ok", "ungradable"}   # a few real photographs are blurred
    con = sqlite3.connect(db)
    count = lambda sql: con.execute(sql).fetchone()[0]  # noqa: E731 - a one-line helper used only here
    patients = {p.name.split("_")[0] for p in photos}
    assert count("SELECT COUNT(*) FROM batch_files") == len(photos)
    assert count("SELECT COUNT(*) FROM results") == len(photos)
    assert count("SELECT COUNT(*) FROM images") == len(photos)
    assert count("SELECT COUNT(*) FROM encounters") == len(patients)
    assert count("SELECT COUNT(*) FROM queue_state") == len(patients)
    assert count("SELECT MAX(n) FROM (SELECT COUNT(*) AS n FROM results GROUP BY encounter_image_id)") == 1
    assert count("SELECT COUNT(*) FROM batches WHERE finished_at IS NOT NULL") == 1
    con.close()
