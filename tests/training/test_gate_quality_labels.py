"""Issue 23 item 3: the gate's quality labels from more than one camera (EyeQ for
eyepacs-256, the graders' keyword remarks for odir-384, on their real labels.csv
rows) and the leave-one-camera-out report's lines."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np

from eyescreen_desktop.training.gate import (KEYWORD_QUALITY, fundus_items, part_of, remark_quality,
                                             row_quality)
from eyescreen_desktop.training.gate_eval import OUTCOMES, loco_row, loco_table
from tests.conftest import EYEPACS, SHARED, read_labels

ODIR = SHARED / "odir-384"


def test_odir_keyword_remarks_give_quality_labels_worst_remark_first():
    rows = {r["file"]: r for r in read_labels(ODIR)}
    low = rows["372_left.jpg"]                       # "low image quality,maculopathy"
    assert "low image quality" in low["keywords"] and row_quality(low) == "reject"
    dust = [r for r in rows.values() if "lens dust" in r["keywords"]]
    assert dust and {row_quality(r) for r in dust} == {"usable"}      # dust on a graded photograph: usable
    plain = next(r for r in rows.values() if r["keywords"] == "normal fundus")
    assert row_quality(plain) == "gradable"
    disease = next(r for r in rows.values() if r["keywords"] == "moderate non proliferative retinopathy")
    assert remark_quality(disease["keywords"]) == "" and row_quality(disease) == "gradable"
    # the worst remark wins when a photograph carries two
    assert remark_quality("lens dust,low image quality") == "reject"
    assert remark_quality("image offset, lens dust") == "usable"
    assert remark_quality("optic disk photographically invisible") == "reject"


def test_the_remark_counts_of_odir_384_are_what_its_readme_says():
    """110 eyes carry "lens dust" or "low image quality" (README); no other remark
    of KEYWORD_QUALITY occurs in this copy."""
    labels = Counter(remark_quality(r["keywords"]) for r in read_labels(ODIR))
    assert labels["reject"] == 1 and labels["usable"] == 109 and labels["reject"] + labels["usable"] == 110
    found = Counter(k.strip() for r in read_labels(ODIR) for k in r["keywords"].split(",")
                    if k.strip() in KEYWORD_QUALITY)
    assert found == {"lens dust": 109, "low image quality": 1}


def test_eyeq_grades_win_over_keywords_and_eyepacs_keeps_them():
    eyeq = next(r for r in read_labels(EYEPACS) if r["quality"] == "reject")
    assert row_quality(eyeq) == "reject"
    assert row_quality({"quality": "good", "keywords": "low image quality"}) == "good"


def test_every_remarked_odir_photograph_is_described_split_by_patient():
    """All 110 remarked photographs join the 600 sampled ones, each in its
    patient's part (both eyes of a patient in the same part); with 1.2.0's rule
    (keyword_labels=False) the same photographs carry no quality label."""
    items = [it for it in fundus_items(np.random.default_rng(42), 600) if it.source == "odir-384"]
    remarked = [it for it in items if it.remark]
    assert len(remarked) == 110 and {it.quality for it in remarked} == {"reject", "usable"}
    patient = {f"odir-384/{r['file']}": r["patient"] for r in read_labels(ODIR)}
    assert all(it.part == part_of(f"odir-384:{patient[it.key]}") for it in items)
    old = [it for it in fundus_items(np.random.default_rng(42), 600, keyword_labels=False)
           if it.source == "odir-384"]
    assert [it.key for it in old] == [it.key for it in items]
    assert {it.quality for it in old if it.remark} == {""}
    assert {it.quality for it in old if not it.remark} == {"gradable"}


def _metrics(by_label: dict, degraded: dict, other: dict) -> dict:
    return {"by_label": by_label, "degraded_from": degraded, "gate": {"other": other}}


def test_a_loco_line_counts_the_left_out_cameras_rejects_and_good_photographs():
    m = _metrics({"eyepacs-256": {"reject": {"graded": 20, "learned_reject": 70, "ungradable": 10},
                                  "good": {"graded": 96, "learned_reject": 4},
                                  "usable": {"graded": 8, "unfamiliar": 2}},
                  "odir-384": {"gradable": {"graded": 90, "ungradable": 10}, "usable": {"graded": 3, "ungradable": 2}},
                  "idrid": {"gradable": {"graded": 81}}},
                 {"eyepacs-256": {"graded": 1, "ungradable": 9}}, {"not_fundus": 350})
    row = loco_row(m, "eyepacs-256")
    assert row["eyepacs-256"]["rejects_caught"] == [80, 100]
    assert row["eyepacs-256"]["good_pass"] == [96, 100] and row["eyepacs-256"]["usable_pass"] == [8, 10]
    assert row["eyepacs-256"]["degraded_refused"] == [9, 10]
    assert row["meets_target"] is True                      # 80% caught at 96% good passed
    assert row["odir-384"]["good_pass"] == [90, 100] and row["odir-384"]["rejects_caught"] == [0, 0]
    assert row["other_graded"] == [0, 350]
    assert loco_row(m, "odir-384")["meets_target"] is None   # no reject among its check photographs: no verdict
    missed = _metrics({"eyepacs-256": {"reject": {"graded": 30, "learned_reject": 70}, "good": {"graded": 100}}},
                      {}, {})
    assert loco_row(missed, "eyepacs-256")["meets_target"] is False
    table = loco_table([loco_row(m, ""), row]).splitlines()
    assert len(table) == 4 and table[2].startswith("| none |")
    assert "80/100 = 80.0%" in table[3] and "odir-384 90/100 = 90.0%" in table[3]
    assert set(OUTCOMES[1:]) >= {"learned_reject", "ungradable", "unfamiliar"}


def test_a_tiny_loco_run_writes_one_line_per_fold(tmp_path):
    """``train-gate --loco`` on a small stand-in: pictures of every collection,
    part and kind with made-up features (rejects shifted in the quality
    features) and one real photograph's hand-made measures; the report has a
    fold with nothing left out then one per collection, each line counting its
    left-out camera's check photographs, and writes no gate."""
    from eyescreen_desktop.core.fundus import assess_quality, field_of_view_or_frame
    from eyescreen_desktop.core.imageio import read_image
    from eyescreen_desktop.training.gate import FUNDUS_COLLECTIONS, Item, leave_one_camera_out

    rgb = read_image(SHARED / "idrid" / "images" / "IDRiD_001.jpg", max_side=768)
    measured = assess_quality(rgb, field_of_view_or_frame(rgb), fundus_known=True)
    assert measured.status.value == "ok"
    rng = np.random.default_rng(0)
    items, desc = [], {}
    centre = {"fundus": 0.0, "external_eye": 4.0, "other": -4.0}

    def add(key: str, source: str, modality: str, part: str, quality: str = "") -> None:
        bad = quality == "reject"
        items.append(Item(key, source, modality, part, lambda: rgb, quality=quality, grade=True))
        desc[key] = {"lite": rng.normal(centre[modality], 1, 40).astype(np.float16), "kind": "",
                     "lite_q": rng.normal(3.0 if bad else 0.0, 1, 6).astype(np.float32),
                     "embedding": rng.normal(0, 1, 70).astype(np.float32),
                     "metrics": dict(measured.metrics), "reasons": (), "status": "ok"}

    for part, n in (("fit", 24), ("tune", 12), ("check", 12)):
        for coll in FUNDUS_COLLECTIONS:
            for i in range(n):
                quality = ("good", "usable", "reject")[i % 3] if coll == "eyepacs-256" else "gradable"
                add(f"{coll}/{part}{i}.jpg", coll, "fundus", part, quality)
                if i % 4 == 0:
                    add(f"degraded:blur:full_circle:{coll}/{part}{i}.jpg:1", "degraded:blur", "fundus", part, "reject")
        for i in range(n):
            add(f"external-eye/{part}{i}.jpg", "external-eye", "external_eye", part)
            add(f"other2:{part}:{i}", "other", "other", part)
    report = tmp_path / "loco.json"
    assert leave_one_camera_out(items, desc, report) == 0
    rows = json.loads(report.read_text(encoding="utf-8"))
    assert [r["left_out"] for r in rows] == ["none", *FUNDUS_COLLECTIONS]
    for r in rows:
        assert set(FUNDUS_COLLECTIONS) <= set(r) and r["other_graded"][1] == 12
        assert r["eyepacs-256"]["rejects_caught"][1] == 4 and r["eyepacs-256"]["good_pass"][1] == 4
        assert r["idrid"]["good_pass"][1] == 12 and r["idrid"]["degraded_refused"][1] == 3
        assert sum(r["eyepacs-256"][k][1] for k in ("rejects_caught", "good_pass", "usable_pass")) == \
            sum(r["gate"]["eyepacs-256"].values())            # every check photograph counted once
        assert 0 < r["thresholds"]["reject"] <= 1
    assert "meets_target" not in rows[0] and rows[2]["meets_target"] in (True, False)
    assert all(m["source"] == "eyepacs-256" for m in rows[2]["its_mistakes"])
    assert list(tmp_path.iterdir()) == [report]                 # a report, no gate files
