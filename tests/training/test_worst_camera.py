"""The worst-camera split: never a training patient, never one patient on both sides,
urgent patients on both sides, the same halves every run."""

from __future__ import annotations

from pathlib import Path

from eyescreen_desktop.core.calibration import LabelledEye
from eyescreen_desktop.core.paths import default_model_dir, shared_datasets_dir
from eyescreen_desktop.core.records import Eye
from eyescreen_desktop.training.worst_camera import collections, halves


def _eyes() -> list[LabelledEye]:
    out = []
    for i in range(40):
        for side in (Eye.LEFT, Eye.RIGHT):
            urgent = i % 10 == 0
            out.append(LabelledEye(Path(f"p{i}_{side.value}.jpg"), f"x:p{i}", side, urgent or i % 3 == 0,
                                   urgent, "x"))
    return out


def test_halves_split_by_patient_stratified_and_reproducibly():
    eyes = _eyes()
    a, b = halves(eyes, 42)
    assert {e.patient for e in a}.isdisjoint({e.patient for e in b}) and len(a) + len(b) == len(eyes)
    assert abs(len(a) - len(b)) <= 4
    assert any(e.urgent for e in a) and any(e.urgent for e in b)
    assert halves(eyes, 42) == (a, b) and halves(eyes, 7) != (a, b)


def test_no_training_patient_is_calibrated_or_reported_on():
    parts = collections(shared_datasets_dir(), default_model_dir() / "split.csv")
    with open(default_model_dir() / "split.csv") as f:
        train = {line.split(",")[0] for line in f if line.rstrip().endswith(",train")}
    used = {e.key for p in parts.values() for side in ("calibrate", "report") for e in p[side]}
    assert used and not used & train
    with open(default_model_dir() / "split.csv") as f:
        val = {line.split(",")[0] for line in f if line.rstrip().endswith(",val")}
    fundus_val = {k for k in val if k.startswith("fundus-dr/")}
    assert {e.key for e in parts["fundus-dr"]["report"]} == fundus_val    # its validation patients
    assert parts["fundus-dr"]["held_out"] == "validation patients"
