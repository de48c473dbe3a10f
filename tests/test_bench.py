"""``eyescreen bench``: a real (small) run writes every figure, and its helpers
do what the figures rely on. No timing is asserted: speed is checked with the
benchmark itself (docs/performance.md), not with tests on a shared machine."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from eyescreen_desktop import bench, cli
from eyescreen_desktop.core import imageio
from tests.conftest import FULLRES, FUNDUS_DR

PHOTOS = ["P001_L.jpg", "P001_R.jpg", "P003_L.jpg", "P003_R.jpg"]
CORE_KEYS = ("decode_images_per_s", "model_images_per_s", "ideal_images_per_s", "pipeline_images_per_s",
             "pipeline_vs_ideal", "baseline_images_per_s", "pipeline_vs_baseline",
             "fullres_pipeline_images_per_s", "latency_ms", "peak_rss_mb", "rss_small_batch_mb", "slip_ms",
             "preprocess_ms")
GUI_KEYS = ("window_shown_s", "model_ready_s", "max_stall_ms", "window_shown_full_s", "max_batch_stall_ms")


@pytest.fixture(scope="module")
def onnx_model(tiny_onnx_model_dir) -> Path:
    """The tiny model as the clinic gets it: with its ONNX runtime."""
    return tiny_onnx_model_dir


@pytest.fixture
def photo_folders(tmp_path) -> tuple[Path, Path]:
    images, fullres = tmp_path / "images", tmp_path / "fullres"
    images.mkdir()
    fullres.mkdir()
    for name in PHOTOS:
        shutil.copy(FUNDUS_DR / "images" / name, images / name)
    shutil.copy(FULLRES / "P001_L.jpg", fullres / "P001_L.jpg")
    return images, fullres


@pytest.mark.slow
def test_small_run_writes_every_figure(onnx_model, photo_folders, tmp_path, capsys):
    images, fullres = photo_folders
    out = tmp_path / "bench.json"
    rc = cli.main(["bench", "--images", str(images), "--fullres", str(fullres), "--model", str(onnx_model),
                   "--json", str(out), "--rss-images", "8", "--stall-images", "4", "--fullres-images", "2",
                   "--baseline-images", "3", "--encounters", "300", "--timing-scale", "0.05"])
    assert rc == 0
    report = json.loads(out.read_text())
    assert set(bench.KEYS) <= set(report)
    problems = {k: report[k] for k in CORE_KEYS + GUI_KEYS if not isinstance(report[k], (int, float))
                or report[k] < 0 or (report[k] == 0 and k not in ("max_stall_ms", "max_batch_stall_ms"))}
    assert not problems, (problems, report["notes"])
    assert report["notes"] == []
    assert report["stall_images"] == 4 and report["window_tensorflow_loaded"] is False
    assert report["full_encounters"] == 300 and report["batch_stall_images"] == 4
    d, m = report["decode_images_per_s"], report["model_images_per_s"]
    assert report["ideal_images_per_s"] == pytest.approx(1 / (1 / d + 1 / m), rel=0.01)
    assert report["pipeline_vs_ideal"] == pytest.approx(report["pipeline_images_per_s"] / report["ideal_images_per_s"],
                                                        rel=0.01)
    assert report["backend"] == "onnx" and report["pipeline_rows"] == len(PHOTOS)
    assert report["peak_rss_mb_images"] == 8 and report["rss_small_batch_mb_images"] == 2
    table = capsys.readouterr().out
    assert "pipeline / ideal" in table and "machine:" in table


def test_full_clinic_fills_every_queue_by_the_rule(tmp_path):
    from eyescreen_desktop.core.paths import data_paths
    from eyescreen_desktop.core.records import Queue
    from eyescreen_desktop.core.store import ClinicStore

    with ClinicStore.open(data_paths(tmp_path / "d").ensure()) as store:
        bench.fill_clinic(store, 200)
        counts = store.queue_counts(state=None)
        assert sum(counts.values()) == 200 and counts[Queue.URGENT] and counts[Queue.ANNUAL]
        summary = store.encounters(queue=Queue.ANNUAL)[0]
        assert summary.complete and {e.eye.value for e in summary.eyes} == {"R", "L"}


def test_copies_are_distinct_files_with_the_same_pixels(tmp_path):
    sources = [str(FUNDUS_DR / "images" / n) for n in PHOTOS[:2]]
    copies = bench.distinct_copies(sources, 5, tmp_path)
    hashes = {hashlib.sha256(p.read_bytes()).hexdigest() for p in copies}
    assert len(hashes) == 5 and len({p.name for p in copies}) == 5
    np.testing.assert_array_equal(imageio.read_image(copies[2]), imageio.read_image(Path(sources[0])))
    assert [p.name for p in copies[:3]] == ["R0000_P001_L.jpg", "R0000_P001_R.jpg", "R0001_P001_L.jpg"]


def test_ratios_are_derived_from_the_same_run():
    report = {"decode_images_per_s": 100.0, "model_images_per_s": 300.0, "pipeline_images_per_s": 60.0,
              "baseline_images_per_s": 15.0, "fullres_pipeline_images_per_s": 30.0,
              "peak_rss_mb": 500.0, "rss_small_batch_mb": 480.0}
    bench.derive_ratios(report)
    assert report["ideal_images_per_s"] == 75.0
    assert report["pipeline_vs_ideal"] == 0.8
    assert report["pipeline_vs_baseline"] == 4.0
    assert report["fullres_vs_pipeline"] == 0.5
    assert report["rss_growth_mb"] == 20.0 and report["memory_flat"] is True
    missing = {"decode_images_per_s": 100.0}
    bench.derive_ratios(missing)
    assert missing.get("ideal_images_per_s") is None and missing["pipeline_vs_ideal"] is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc sampling is Linux only")
def test_tree_memory_counts_children():
    import subprocess

    child = subprocess.Popen([sys.executable, "-c", "import numpy, time; a = numpy.ones(25_000_000); "
                              "print('ready', flush=True); time.sleep(30)"], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        child_mb = bench.tree_rss_mb(child.pid)
        assert child_mb > 150
        assert bench.tree_rss_mb(os.getpid()) >= child_mb + bench._rss_kb(os.getpid()) / 1024 - 5
    finally:
        child.kill()
        child.wait()


def test_missing_model_is_a_usage_error(photo_folders, tmp_path, capsys):
    images, fullres = photo_folders
    rc = cli.main(["bench", "--images", str(images), "--fullres", str(fullres), "--model", str(tmp_path / "none")])
    assert rc == 2
    assert "pass --model" in capsys.readouterr().err


def test_table_says_n_a_for_what_was_not_measured():
    table = bench.format_table({**{k: None for k in bench.KEYS}, "pipeline_vs_ideal": 0.91, "notes": ["x: why"]})
    assert "0.91" in table and "n/a" in table and "note: x: why" in table


def test_repeated_rounds_give_the_median_of_per_round_ratios():
    report = {}
    decode = [{"decode_images_per_s": d} for d in (100.0, 50.0, 100.0)]
    model = [{"model_images_per_s": m} for m in (300.0, 150.0, 300.0)]
    pipeline = [{"pipeline_images_per_s": p} for p in (60.0, 36.0, 66.0)]  # round 2 ran under load
    bench._ratios_per_round(report, [decode, model, pipeline])
    assert report["runs"]["pipeline_vs_ideal"] == [0.8, 0.96, 0.88]
    assert report["pipeline_vs_ideal"] == 0.88
