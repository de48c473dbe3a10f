"""Settings > calibration > "From this clinic's grades" (issue 22, item 7): the site point of
``calibrate --from-database`` suggested in the window from its own store's graded eyes
(re-screened on the worker by the shipped model), shown in the clinic's words; below the
minimum it says how many more eyes it needs; only an admin applies it, audited."""

from __future__ import annotations

import json
import os

import pytest

from eyescreen_desktop.core.classifier import read_card
from eyescreen_desktop.core.grading import HumanGrade
from eyescreen_desktop.core.records import Eye
from tests.conftest import FUNDUS_DR, read_labels
from tests.core.grading_fixtures import screened
from tests.gui.test_calibration_settings import MODEL, WAIT_MS, window  # noqa: F401 - the window fixture

pytestmark = pytest.mark.skipif(not (MODEL / "model.onnx").is_file(), reason="no shipped model")


def _grade_clinic(store) -> int:
    """16 real fundus-dr patients of every grade screened and graded by a reading centre
    (half the annual ones from a 50% QA sample); returns the referable eyes."""
    rows = {(r["patient"], r["eye"]): int(r["icdr_grade"]) for r in read_labels(FUNDUS_DR)}
    patients = sorted({p for p, _ in rows if (p, "L") in rows and (p, "R") in rows})
    by_worst: dict[int, list[str]] = {}
    for p in patients:
        by_worst.setdefault(max(rows[(p, "R")], rows[(p, "L")]), []).append(p)
    chosen = [p for g in range(5) for p in by_worst.get(g, [])[:4]][:16]
    grades = []
    for p in chosen:
        enc = screened(store, p, min(rows[(p, "R")], 1), min(rows[(p, "L")], 1))
        grades += [HumanGrade(enc, Eye(side), "Centre", rows[(p, side)], source="import") for side in "RL"]
    store.draw_qa_sample(0.5, seed=1)
    store.record_grades(grades)
    return sum(rows[(p, s)] >= 2 for p in chosen for s in "RL")


def _dialog(qtbot, window, tmp_path):  # noqa: F811 - pytest fixture passed by name, shadowing the imported one
    from eyescreen_desktop.gui.settings_dialog import SettingsDialog

    settings = SettingsDialog(window.settings, window.engine.card, window, engine=window.engine,
                              calibration_folder=tmp_path / "calibration", store=window.store)
    qtbot.addWidget(settings)
    dialog = settings.site_operating_point.open_calibration()
    assert dialog.from_database.isEnabled()
    dialog.min_graded, dialog.min_referable = 20, 5      # 32 graded eyes here; the clinic default is 100 and 30
    return settings, dialog


def test_the_clinics_grades_suggest_a_point_an_admin_applies_audited(qtbot, window, tmp_path):  # noqa: F811 - pytest fixture passed by name, shadowing the imported one
    referable = _grade_clinic(window.store)
    settings, dialog = _dialog(qtbot, window, tmp_path)
    with qtbot.waitSignal(window.engine.batchDone, timeout=WAIT_MS):
        assert dialog.start_from_database() is not None
    text = dialog.result.toPlainText()
    c = dialog.suggestion
    assert c is not None and dialog.use_button.isEnabled(), dialog.status.text()
    assert f"referable threshold {c.thresholds.referable:.4f}" in text and f"{c.thresholds.urgent:.4f}" in text
    assert f"rests on 32 eyes your graders confirmed ({referable} referable)" in text
    sens = c.overall.referable_sensitivity
    assert f"Referable eyes found (sensitivity): {sens.value:.0%} (95% CI {sens.low:.0%} to {sens.high:.0%})" in text
    assert "Other eyes cleared (specificity)" in text and "95% CI" in text.split("specificity")[-1]
    assert f"Expected referral rate: {c.site['expected_referral_rate']:.0%}" in text
    assert not (tmp_path / "calibration").exists()                       # a suggestion writes nothing
    dialog.resize(780, 720)
    qtbot.waitUntil(lambda: dialog.status.height() >= dialog.status.heightForWidth(dialog.status.width()))
    if os.environ.get("EYESCREEN_SCREENSHOTS"):
        dialog.grab().save(os.environ["EYESCREEN_SCREENSHOTS"])

    dialog.use_button.click()
    op_path = dialog.result_path
    saved = json.loads(op_path.read_text())
    assert saved["site"]["source"] == "clinic database" and saved["site"]["graded_eyes"] == 32
    assert saved["model"]["weights_sha256"] == read_card(MODEL).weights_sha256 and op_path.with_suffix(".pdf").is_file()
    assert settings.site_operating_point.path == str(op_path)
    settings.accept()                                                   # Settings' OK: the existing apply path
    window._apply_site_point("")
    assert [a.action for a in window.store.audit("site:clinic")] == ["site calibrated"]
    from eyescreen_desktop.core.classifier import sha256_file

    assert window.store.applied_operating_point() == sha256_file(op_path)


def test_below_the_minimum_it_says_how_many_more_eyes_and_offers_nothing(qtbot, window, tmp_path):  # noqa: F811 - pytest fixture passed by name, shadowing the imported one
    store = window.store
    enc = screened(store, "P001", 2, 0)
    store.record_grades([HumanGrade(enc, Eye.RIGHT, "Dr A", 3, source="import"),
                         HumanGrade(enc, Eye.LEFT, "Dr A", 0, source="import")])
    _settings, dialog = _dialog(qtbot, window, tmp_path)
    dialog.min_graded, dialog.min_referable = 100, 30
    with qtbot.waitSignal(window.engine.failed, timeout=WAIT_MS):
        dialog.start_from_database()
    said = dialog.status.text()
    assert "98 more graded eye(s) (has 2, needs 100)" in said and "29 more referable eye(s) (has 1, needs 30)" in said
    assert not dialog.use_button.isEnabled() and dialog.suggestion is None and dialog.from_database.isEnabled()
    assert not (tmp_path / "calibration").exists()


def test_with_accounts_a_nurse_sees_the_suggestion_but_cannot_apply_it(qtbot, window, tmp_path):  # noqa: F811 - pytest fixture passed by name, shadowing the imported one
    store = window.store
    _grade_clinic(store)
    store.add_person("ada", "admin-password-1", ["admin"])
    store.sign_in("ada", "admin-password-1")
    store.add_person("nina", "nurse-password-1", ["nurse"])
    store.sign_in("nina", "nurse-password-1")
    _settings, dialog = _dialog(qtbot, window, tmp_path)
    with qtbot.waitSignal(window.engine.batchDone, timeout=WAIT_MS):
        assert dialog.start_from_database() is not None
    assert dialog.suggestion is not None and "Suggested from this clinic's grades" in dialog.result.toPlainText()
    assert not dialog.use_button.isEnabled() and "Only an admin can apply it" in dialog.status.text()
    assert dialog.apply_suggestion() is None and "Not applied" in dialog.status.text()
    assert not (tmp_path / "calibration").exists() and store.audit("site:clinic") == []
    assert store.applied_operating_point() is None


def test_a_site_point_for_other_weights_is_withdrawn_visibly_when_the_model_loads(qtbot, data_dir, tmp_path):
    """A new model installed: the window says at once, not only at the next screening,
    that the clinic's point belongs to other weights and is not used."""
    import gc

    from PySide6.QtCore import QCoreApplication, QEvent

    from eyescreen_desktop.core.calibration import OP_FORMAT
    from eyescreen_desktop.gui.app import build_window

    other = tmp_path / "north-old-model.json"
    other.write_text(json.dumps({"format": OP_FORMAT, "name": "north-old-model",
                                 "thresholds": {"referable": 0.1, "urgent": 0.05},
                                 "model": {"name": "x", "version": "9", "weights_sha256": "0" * 64}}))
    win, store = build_window(data_dir, dialogs=False)
    win.settings.site_operating_point = str(other)
    said: list[tuple[str, str, str]] = []
    win.messages.shown.connect(lambda *args: said.append(args))
    win.show()
    try:
        with qtbot.waitSignal(win.engine.modelReady, timeout=WAIT_MS):
            win.start(MODEL)
        qtbot.waitUntil(lambda: any(t == "Clinic's operating point withdrawn" for _, t, _ in said))
        level, _title, text = next(m for m in said if m[1] == "Clinic's operating point withdrawn")
        assert level == "warning" and "north-old-model" in text and "calibrate again with this model" in text
        assert "withdrawn" in win.model_status.text()
    finally:
        win.close()
        assert win.engine.stop()
        win.deleteLater()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        gc.collect()
        store.close()
