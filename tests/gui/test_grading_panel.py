"""The Grading tab end to end, keyboard only, on a real SQLite database with real
photographs: blind until commit, about three keys per eye, the grade recorded under
the grader's name and the encounter re-queued (arbitration on disagreement)."""

from __future__ import annotations

from PySide6.QtCore import Qt

from eyescreen_desktop.core.records import Eye, Patient, Queue
from eyescreen_desktop.core.store import ClinicStore
from eyescreen_desktop.gui.grading_panel import GradingPanel
from tests.core.grading_fixtures import screened


def test_a_grader_grades_blind_by_keyboard_and_disagreement_goes_to_arbitration(qtbot, tmp_path):
    with ClinicStore(tmp_path / "clinic.sqlite3") as store:
        referral = screened(store, "P003", 2, 0)          # the AI refers the right eye
        urgent = screened(store, "P006", 4, 0)
        annual = screened(store, "P001", 0, 0)            # not listed: no QA sample drawn
        panel = GradingPanel(store, grader="Dr Grey")
        qtbot.addWidget(panel)
        panel.show()
        panel.setFocus()
        assert [panel.worklist.item(i).text().split()[0] for i in range(panel.worklist.count())] == ["P006", "P003"]
        assert panel.counts.text() == "2 encounter(s) to grade"
        shown = " ".join([panel.revealed.text(), *(panel.entry[s].text() for s in (Eye.RIGHT, Eye.LEFT)),
                          *(panel.worklist.item(i).text() for i in range(panel.worklist.count()))])
        assert "ICDR 4" not in shown and "urgent" not in shown.lower() and "routine" not in shown.lower()
        assert panel.views[Eye.RIGHT].item.pixmap().width() == 1024           # the real photograph, full size
        assert panel.quality[Eye.RIGHT].text() == "Photo quality: gradable"      # the gate's verdict is shown
        # P006: right eye 4 with maculopathy (3 keys), left eye 0 with cataract (3 keys): agrees with the AI
        with qtbot.waitSignal(panel.committed) as done:
            for key in ("4", "m"):
                qtbot.keyClicks(panel, key)
            qtbot.keyClick(panel, Qt.Key.Key_Return)
            qtbot.keyClicks(panel, "0")
            qtbot.keyClicks(panel, "c")
            assert "cataract" in panel.entry[Eye.LEFT].text()
            qtbot.keyClick(panel, Qt.Key.Key_Return)
        assert done.args == [urgent]
        assert "The AI had said" in panel.revealed.text() and "ICDR 4" in panel.revealed.text()
        grades = {g.eye: g for g in store.grades(urgent)}
        assert (grades[Eye.RIGHT].icdr_grade, grades[Eye.RIGHT].maculopathy, grades[Eye.RIGHT].grader) == (
            4, "yes", "Dr Grey")
        assert grades[Eye.LEFT].findings == ("cataract",)
        assert store.encounter_grading(urgent).state == "final"
        assert panel.encounter == urgent                  # committed: stays on show until Enter
        qtbot.keyClick(panel, Qt.Key.Key_Return)
        # P003 comes up next, blind again; grading both eyes 0 disagrees with the AI's referral
        assert panel.encounter == referral and "ICDR 2" not in panel.entry[Eye.RIGHT].text()
        with qtbot.waitSignal(panel.committed):
            for keys in ("0", "0"):
                qtbot.keyClicks(panel, keys)
                qtbot.keyClick(panel, Qt.Key.Key_Return)
        assert store.encounter_grading(referral).state == "arbitration_pending"
        assert store.encounter_summary(referral).queue is Queue.ROUTINE
        assert "arbitration" in panel.revealed.text()
        assert store.audit(f"encounter:{referral}")[-1].user == "Dr Grey"
        qtbot.keyClick(panel, Qt.Key.Key_Return)
        # a different grader arbitrates; the same one would be refused
        panel.grader_edit.setText("Dr Brown")
        assert panel.encounter == referral
        with qtbot.waitSignal(panel.committed):
            for keys in ("1", "0"):
                qtbot.keyClicks(panel, keys)
                qtbot.keyClick(panel, Qt.Key.Key_Return)
        assert store.encounter_grading(referral).state == "arbitrated"
        assert store.encounter_summary(referral).queue is Queue.ANNUAL
        qtbot.keyClick(panel, Qt.Key.Key_Return)
        assert panel.counts.text() == "0 encounter(s) to grade" and annual not in store.to_grade()


def test_the_window_has_a_grading_tab_read_when_opened(qtbot, window):
    tabs = [window.tabs.tabText(i) for i in range(window.tabs.count())]
    assert tabs[-2:] == ["Grading", "Quality assurance"] and tabs[:3] == ["Screening", "Eye check", "Queues"]
    screened(window.store, "P003", 2, 0)                  # screened elsewhere meanwhile
    assert window.grading.worklist.count() == 0
    window.tabs.setCurrentWidget(window.grading)
    qtbot.waitUntil(lambda: window.grading.worklist.count() == 1)


def test_the_quality_assurance_view_shows_the_kappa_and_the_urgent_eyes_in_annual(qtbot, tmp_path):
    from eyescreen_desktop.core.grading import HumanGrade
    from eyescreen_desktop.core.qa import agreement, qa_eyes
    from eyescreen_desktop.gui.qa_view import QaView

    with ClinicStore(tmp_path / "clinic.sqlite3") as store:
        missed = screened(store, "P214", 0, 0)            # the AI says annual; the reading centre says urgent
        referral = screened(store, "P003", 2, 0)
        store.record_grades([HumanGrade(missed, Eye.RIGHT, "Centre", 3, source="import"),
                             HumanGrade(missed, Eye.LEFT, "Centre", 0, source="import"),
                             HumanGrade(referral, Eye.RIGHT, "Dr Grey", 2),
                             HumanGrade(referral, Eye.LEFT, "Dr Grey", 1)])
        view = QaView(store, site="North", n_boot=50)
        qtbot.addWidget(view)
        view.refresh()
        kappa = agreement(qa_eyes(store, "North"), "all", 50).kappa
        assert "quadratic-weighted kappa" in view.summary.text() and f"{kappa:.3f}" in view.summary.text()
        assert view.agreement.item(0, 2).text() == f"{kappa:.2f}"
        assert (view.missed.rowCount(), view.missed.item(0, 0).text()) == (1, "P214")
        assert view.confusion.item(3, 0).text() == "1"                 # grader 3, AI 0
        view.split_by.setCurrentText("grader")
        assert sorted(view.agreement.item(r, 0).text() for r in range(view.agreement.rowCount())) == [
            "Centre", "Dr Grey"]


def test_the_settings_draw_the_qa_sample_and_may_let_a_single_grader_stand(qtbot, tmp_path):
    from PySide6.QtCore import QSettings

    from eyescreen_desktop.gui.settings import Settings

    settings = Settings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    settings.qa_percent, settings.single_grader_stands = 100, True
    with ClinicStore(tmp_path / "clinic.sqlite3") as store:
        annual = screened(store, "P001", 0, 0)
        panel = GradingPanel(store, grader="Dr Grey", settings=settings)
        qtbot.addWidget(panel)
        panel.show()
        panel.setFocus()
        draw = store.qa_draws()[0]                           # drawn when the tab read its worklist
        assert (draw.rate, draw.drawn, draw.drawn_by) == (1.0, (annual,), "Dr Grey")
        assert panel.encounter == annual
        with qtbot.waitSignal(panel.committed):
            for keys in ("2", "0"):                          # the grader refers what the AI left in annual
                qtbot.keyClicks(panel, keys)
                qtbot.keyClick(panel, Qt.Key.Key_Return)
        assert store.encounter_grading(annual).state == "final"      # a single grader's decision stands
        assert store.encounter_summary(annual).queue is Queue.ROUTINE
        assert len(store.qa_draws()) == 1                    # nothing left to draw: nothing recorded


def test_the_grader_raises_the_protocols_outcome_by_keyboard_with_a_reason_and_the_document_is_rewritten(
        qtbot, tmp_path):
    from pypdf import PdfReader

    from eyescreen_desktop.core.regrading import regenerate_document

    with ClinicStore(tmp_path / "clinic.sqlite3") as store:
        review = screened(store, "P007", None, 0)          # the AI could not grade the right eye: review
        documents = tmp_path / "documents"
        issued = regenerate_document(store, review, documents, user="nurse").path   # the review slip went out
        panel = GradingPanel(store, grader="Dr Grey", documents_dir=documents)
        qtbot.addWidget(panel)
        panel.show()
        panel.setFocus()
        assert panel.encounter == review and panel.outcome.text() == ""
        qtbot.keyClicks(panel, "1")                        # grades 1 / 0: annual by the protocol
        qtbot.keyClick(panel, Qt.Key.Key_Return)
        assert panel.outcome.text() == ""                  # the left eye is still the AI's: nothing shown yet
        qtbot.keyClicks(panel, "0")
        assert f"protocol: <b>{Queue.ANNUAL.label}</b>" in panel.outcome.text()
        qtbot.keyClicks(panel, "-")                        # nothing to take back; never below the protocol
        assert "raised" not in panel.outcome.text()
        qtbot.keyClicks(panel, "+")                        # annual -> review, the reason asked for
        assert panel.reason_edit.isVisible() and panel.focusWidget() is panel.reason_edit
        assert f"raised by you to <b>{Queue.REVIEW.label}</b>" in panel.outcome.text()
        qtbot.keyClick(panel.reason_edit, Qt.Key.Key_Return)             # no reason: nothing recorded
        assert store.grades(review) == [] and "Type why" in panel.revealed.text()
        panel.setFocus()
        qtbot.keyClicks(panel, "+")                        # review -> routine
        assert f"raised by you to <b>{Queue.ROUTINE.label}</b>" in panel.outcome.text()
        with qtbot.waitSignal(panel.committed):
            qtbot.keyClicks(panel.reason_edit, "possible new vessels on the disc")
            qtbot.keyClick(panel.reason_edit, Qt.Key.Key_Return)
        state = store.encounter_grading(review)
        assert (state.graded_queue, store.encounter_summary(review).queue) == (Queue.ROUTINE, Queue.ROUTINE)
        assert store.raised_outcomes(review)[0].reason == "possible new vessels on the disc"
        # the patient's document written again as a referral slip with the graded-by line; the review slip kept
        slip = documents / "referrals" / issued.name
        words = " ".join(p.extract_text() for p in PdfReader(slip).pages).replace("\n", " ")
        assert "Graded by Dr Grey." in words and "replaces an earlier one" in words
        assert not issued.exists() and (documents / "superseded" / "review").is_dir()
        assert "written again" in panel.revealed.text() and "superseded" in panel.revealed.text()
        assert panel.encounter == review                   # the reason's Enter committed; it did not move on
        qtbot.keyClick(panel, Qt.Key.Key_Return)
        assert panel.encounter is None and panel.revealed.text() == ""


def test_the_qa_view_suggests_a_photo_quality_threshold_that_only_an_admin_applies(qtbot, tmp_path):
    from eyescreen_desktop.gui.qa_view import QaView
    from tests.core.grading_fixtures import quality_graded_clinic

    with ClinicStore(tmp_path / "clinic.sqlite3") as store:
        quality_graded_clinic(store)
        store.add_person("ada", "admin-password-1", ["admin"])
        store.sign_in("ada", "admin-password-1")
        store.add_person("nina", "nurse-password-1", ["nurse"])
        store.sign_in("nina", "nurse-password-1")
        view = QaView(store, site="North", n_boot=20)
        qtbot.addWidget(view)
        view.refresh()
        assert "suggested 0.350" in view.quality.text() and "the gate card" in view.quality.text()
        assert [a.group for a in view.monthly.rows] == ["2026-05"]          # the per-month chart's points
        assert view.monthly.rows[0].specificity.total == 25
        assert view.confusion.item(0, 0).background().color().blueF() < 0.9          # grader 0, AI 0: shaded
        assert view.confusion.item(0, 1).background().color().name() == "#ffffff"   # no eye there: white
        assert not view.grab().isNull()                                     # the chart paints
        assert not view.apply_quality.isEnabled()                       # a nurse cannot apply it
        store.sign_in("ada", "admin-password-1")
        view.refresh()
        assert view.apply_quality.isEnabled()
        view.apply_quality.setFocus()
        qtbot.keyClick(view.apply_quality, Qt.Key.Key_Space)
        assert store.applied_quality_threshold() == 0.35
        assert "0.350 (applied by an admin)" in view.quality.text() and not view.apply_quality.isEnabled()


def test_the_heat_map_is_hidden_until_the_commit_then_h_toggles_it(qtbot, tmp_path):
    from dataclasses import replace

    import numpy as np

    from tests.core.grading_fixtures import MODEL, OP, ai_result

    with ClinicStore(tmp_path / "clinic.sqlite3") as store:
        store.upsert_patient(Patient("P006"))
        enc = store.start_encounter("P006", user="nurse")
        heat = np.zeros((16, 16), np.float32)
        heat[4:8, 4:8] = 1.0                                  # where the network saw signs
        store.save_result(enc, replace(ai_result("P006", Eye.RIGHT, 3), heatmap=heat), MODEL, "icdr-ada", OP)
        store.save_result(enc, ai_result("P006", Eye.LEFT, 0), MODEL, "icdr-ada", OP)
        panel = GradingPanel(store, grader="Dr Grey")
        qtbot.addWidget(panel)
        panel.show()
        panel.setFocus()
        photo = panel.views[Eye.RIGHT].item.pixmap().toImage()
        qtbot.keyClicks(panel, "h")                           # blind first read: no heat map yet
        assert panel.views[Eye.RIGHT].heatmap is None and panel.views[Eye.RIGHT].item.pixmap().toImage() == photo
        assert "heat map" not in panel.revealed.text()
        with qtbot.waitSignal(panel.committed):
            for keys in ("3", "0"):
                qtbot.keyClicks(panel, keys)
                qtbot.keyClick(panel, Qt.Key.Key_Return)
        assert "H: the AI's heat map" in panel.revealed.text()
        qtbot.keyClicks(panel, "h")
        shown = panel.views[Eye.RIGHT].item.pixmap()
        assert panel.views[Eye.RIGHT].heatmap is not None and shown.width() == shown.height() == 768
        assert panel.views[Eye.LEFT].heatmap is None          # no map for an eye the AI did not refer
        qtbot.keyClicks(panel, "h")
        assert panel.views[Eye.RIGHT].item.pixmap().toImage() == photo
        qtbot.keyClick(panel, Qt.Key.Key_Return)              # the next encounter (none left)
        assert panel.encounter is None


def test_the_desk_says_why_eyescreen_refused_a_photograph_in_the_clinics_words():
    """The grader reads the gate's reasons in the words the window and the slip use
    (domain.vocabulary.REASON_WORDS: "blurred" is "out of focus"), not the raw codes."""
    from eyescreen_desktop.core.records import Status
    from eyescreen_desktop.gui.grading_panel import quality_words
    from tests.core.report_fixtures import not_graded

    refused = not_graded("P001_R.jpg", Eye.RIGHT, Status.UNGRADABLE, ("blurred", "small_field"))
    assert quality_words(refused) == ("Photo quality: could not be graded by EyeScreen "
                                      "(out of focus, too little of the retina visible)")


def test_the_qa_view_bootstraps_every_eyes_agreement_once_per_refresh(qtbot, tmp_path, monkeypatch):
    """The summary line and the "all" row are the same figures: one patient bootstrap
    per refresh, not one for each (nor another when the split returns to "all")."""
    from eyescreen_desktop.core.grading import HumanGrade
    from eyescreen_desktop.gui import qa_view

    calls = []
    real = qa_view.agreement
    monkeypatch.setattr(qa_view, "agreement", lambda *a, **k: calls.append(a[1:]) or real(*a, **k))
    with ClinicStore(tmp_path / "clinic.sqlite3") as store:
        referral = screened(store, "P003", 2, 0)
        store.record_grades([HumanGrade(referral, Eye.RIGHT, "Dr Grey", 2),
                             HumanGrade(referral, Eye.LEFT, "Dr Grey", 1)])
        view = qa_view.QaView(store, site="North", n_boot=20)
        qtbot.addWidget(view)
        view.refresh()
        assert calls == [("all", 20)]
        assert view.agreement.item(0, 0).text() == "all" and view.overall is not None
        view.split_by.setCurrentText("grader")
        view.split_by.setCurrentText("all")
        assert calls == [("all", 20)] and view.agreement.item(0, 0).text() == "all"


def test_opening_the_grading_and_qa_tabs_reads_the_database_off_the_gui_thread(qtbot, window, monkeypatch):
    """The sample draw (a write), the worklist and the agreement's bootstraps run on the
    background helper when a tab opens: a batch holding the database, or years of
    grades, never freeze the window; what they read is then on show."""
    import threading

    from eyescreen_desktop.core.grading import HumanGrade
    from eyescreen_desktop.gui import qa_view

    referral = screened(window.store, "P003", 2, 0)
    window.store.record_grades([HumanGrade(referral, Eye.RIGHT, "Dr Grey", 2),
                                HumanGrade(referral, Eye.LEFT, "Dr Grey", 1)])
    on_gui: dict[str, bool] = {}
    real_to_grade, real_qa_eyes = window.store.to_grade, qa_view.qa_eyes
    monkeypatch.setattr(window.store, "to_grade", lambda *a, **k: (
        on_gui.setdefault("worklist", threading.current_thread() is threading.main_thread()),
        real_to_grade(*a, **k))[1])
    monkeypatch.setattr(qa_view, "qa_eyes", lambda *a, **k: (
        on_gui.setdefault("agreement", threading.current_thread() is threading.main_thread()),
        real_qa_eyes(*a, **k))[1])
    window.tabs.setCurrentWidget(window.grading)
    qtbot.waitUntil(lambda: window.grading.counts.text() != "")
    window.tabs.setCurrentWidget(window.qa_view)
    qtbot.waitUntil(lambda: "kappa" in window.qa_view.summary.text())
    assert on_gui == {"worklist": False, "agreement": False}
