"""The window and accounts (issue 21), with pytest-qt on a real clinic database:
the sign-in page at start hides everything, the first-admin offer and "Not now",
Switch person in two keystrokes, the lock after idle minutes, and what each
role may use greyed out."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt

from eyescreen_desktop.core.records import Patient
from eyescreen_desktop.core.roles import Role
from eyescreen_desktop.gui.access import SWITCH_SHORTCUT

ADMIN_PW = "correct horse battery"
NURSE_PW = "nurse-password-1"


def with_people(store) -> None:
    store.add_person("ada", ADMIN_PW, ["admin"])
    store.sign_in("ada", ADMIN_PW)
    store.add_person("nina", NURSE_PW, ["nurse"])
    store.add_person("cora", "coordinator-pw", ["coordinator"])
    store.sign_out()


def sign_in(qtbot, window, name: str, password: str) -> None:
    page = window.access.lock_page
    if not page.name_edit.isReadOnly():
        page.name_edit.setText(name)
    page.password_edit.setText(password)
    qtbot.mouseClick(page.unlock_button, Qt.MouseButton.LeftButton)


def test_without_accounts_the_window_works_as_before_and_not_now_stops_the_offer(qtbot, window):
    assert not window.access.accounts
    dialog = window.access.offer_first_admin()
    qtbot.waitUntil(dialog.isVisible)
    dialog.reject()                                         # "Not now"
    assert window.settings.offer_first_admin is False
    window.access.start()
    assert window.access.first_admin is dialog and not window.access.locked
    assert window.actions["settings"].isEnabled() and window.actions["open"].isEnabled()


def test_the_first_admin_created_in_the_window_starts_accounts_signed_in(qtbot, window):
    dialog = window.access.offer_first_admin()
    dialog.name_edit.setText("ada")
    dialog.password_edit.setText("short")
    dialog.again_edit.setText("short")
    dialog.accept()
    assert "10 characters" in dialog.message.text() and not window.store.has_accounts()
    dialog.password_edit.setText(ADMIN_PW)
    dialog.again_edit.setText(ADMIN_PW)
    dialog.accept()
    assert window.store.has_accounts() and window.store.person.name == "ada"
    assert "Signed in: ada (admin)" in window.access.who.text()
    assert window.actions["settings"].isEnabled() and not window.actions["open"].isEnabled()


def test_sign_in_at_start_hides_patients_and_a_nurse_gets_no_coordinator_buttons(qtbot, window):
    with_people(window.store)
    window.access.start()
    assert window.access.locked and not window.splitter.isVisible()
    assert not window.actions["open"].isEnabled() and not window.actions["find"].isEnabled()
    sign_in(qtbot, window, "nina", "wrong-password")
    assert window.access.locked and "wrong name or password" in window.access.lock_page.message.text()
    sign_in(qtbot, window, "nina", NURSE_PW)
    assert not window.access.locked and window.splitter.isVisible()
    assert window.actions["open"].isEnabled() and window.actions["slip"].isEnabled()
    assert not window.actions["settings"].isEnabled()
    assert not window.queues.may("referred") and not window.queues.may("override") and window.queues.may("printed")


def test_switch_person_takes_two_keystrokes_and_asks_the_next_persons_name(qtbot, window):
    with_people(window.store)
    window.access.start()
    sign_in(qtbot, window, "nina", NURSE_PW)
    qtbot.keyClick(window, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    assert SWITCH_SHORTCUT == "Ctrl+L"
    assert window.access.locked and window.store.person is None
    assert not window.access.lock_page.name_edit.isReadOnly()
    sign_in(qtbot, window, "cora", "coordinator-pw")
    assert window.queues.may("referred") and not window.actions["open"].isEnabled()
    assert not window.capture_panel.isEnabled()                       # a coordinator does not screen
    assert not window.tabs.isTabEnabled(window.tabs.indexOf(window.eye_check.panel))
    assert [e.action for e in window.store.audit("person:nina")][-1] == "signed out"


def test_the_window_locks_after_the_idle_minutes_and_the_same_person_unlocks(qtbot, window):
    with_people(window.store)
    window.settings.idle_lock_minutes = 10
    window.access.start()
    sign_in(qtbot, window, "nina", NURSE_PW)
    window.store.upsert_patient(Patient("P1", "Ann Example"))
    window.patient_panel.set_patient(window.store.get_patient("P1"))
    assert window.access.idle.timer.interval() == 10 * 60_000 and window.access.idle.timer.isActive()
    from PySide6.QtWidgets import QDialog

    open_dialog = QDialog(window)            # e.g. a patient's slip on show
    open_dialog.show()
    with qtbot.waitSignal(window.access.idle.idle):
        window.access.idle.timer.setInterval(1)          # ten minutes pass
        window.access.idle.timer.start()
    assert window.access.locked and not window.patient_panel.isVisible() and not open_dialog.isVisible()
    page = window.access.lock_page
    assert page.name_edit.text() == "nina" and page.name_edit.isReadOnly()
    sign_in(qtbot, window, "nina", NURSE_PW)
    assert not window.access.locked and window.patient_panel.isVisible()
    window.access.lock("again")
    qtbot.mouseClick(page.switch_button, Qt.MouseButton.LeftButton)   # someone else, from the lock page
    assert window.store.person is None and not page.name_edit.isReadOnly()
    assert page.unlock_button.text() == "&Sign in"


def test_screenshots_of_sign_in_and_lock(qtbot, window, tmp_path):
    """Grabbed every run; SCREENSHOTS_DIR=docs/images keeps them (window-sign-in.png, window-locked.png)."""
    import os

    with_people(window.store)
    window.resize(1100, 700)
    window.access.start()
    out = Path(os.environ.get("SCREENSHOTS_DIR", tmp_path))
    assert window.grab().save(str(out / "window-sign-in.png"))
    sign_in(qtbot, window, "nina", NURSE_PW)
    window.access.lock("Locked after a while without use: patient data is hidden.")
    assert window.grab().save(str(out / "window-locked.png"))


def test_a_clinic_point_an_admin_chooses_in_settings_is_applied_for_every_workstation(qtbot, window, tmp_path):
    import hashlib

    with_people(window.store)
    window.access.start()
    sign_in(qtbot, window, "ada", ADMIN_PW)
    point = tmp_path / "site-point.json"
    point.write_text('{"thresholds": "a clinic point"}')
    window.settings.site_operating_point = str(point)
    window._apply_site_point("")
    assert window.store.applied_operating_point() == hashlib.sha256(point.read_bytes()).hexdigest()
    assert window.store.audit()[-1].action == "operating point applied"


def test_an_admin_adds_resets_and_disables_people_in_the_window(qtbot, window):
    import os

    with_people(window.store)
    window.access.start()
    sign_in(qtbot, window, "nina", NURSE_PW)
    assert not window.actions["people"].isEnabled()              # a nurse manages nobody
    window.access.switch_person()
    sign_in(qtbot, window, "ada", ADMIN_PW)
    assert window.actions["people"].isEnabled()
    dialog = window.access.open_people()
    qtbot.addWidget(dialog)
    assert dialog.table.rowCount() == 3
    dialog.name_edit.setText("gary")
    dialog.roles[Role.GRADER].setChecked(True)
    dialog.roles[Role.COORDINATOR].setChecked(True)
    dialog.password_edit.setText("grader-password")
    dialog.again_edit.setText("grader-password")
    qtbot.mouseClick(dialog.add_button, Qt.MouseButton.LeftButton)
    assert dialog.message.text() == "gary added." and dialog.table.rowCount() == 4
    dialog.table.selectRow([dialog.table.item(r, 0).text() for r in range(4)].index("nina"))
    qtbot.mouseClick(dialog.disable_button, Qt.MouseButton.LeftButton)
    assert dialog.message.text() == "nina disabled."
    assert window.store.sign_in("gary", "grader-password").roles == (Role.GRADER, Role.COORDINATOR)
    if out := os.environ.get("SCREENSHOTS_DIR"):
        dialog.resize(700, 420)
        assert dialog.grab().save(str(Path(out) / "window-people.png"))


def test_choosing_a_patient_from_the_search_is_audited_as_who_viewed_whom(qtbot, window):
    with_people(window.store)
    window.access.start()
    sign_in(qtbot, window, "nina", NURSE_PW)
    window.store.upsert_patient(Patient("P777", "Ann Example"))
    panel = window.patient_panel
    panel.search_edit.setText("P777")
    with qtbot.waitSignal(panel.searched, timeout=30_000):   # the search reads the database off the GUI thread
        panel.search()
    panel.matches.itemClicked.emit(panel.matches.item(0))
    assert panel.id_edit.text() == "P777"
    viewed = window.store.audit("patient:P777")[-1]
    assert (viewed.action, viewed.user) == ("record opened", "nina")


def test_a_batch_or_camera_folder_keeps_the_person_who_started_it_after_switch_person(qtbot, window):
    with_people(window.store)
    window.access.start()
    sign_in(qtbot, window, "nina", NURSE_PW)
    sent = []
    window.engine._batchRequested.connect(sent.append)     # what the worker thread will run, and as whom
    window.batch_panel.watch(window.paths.root)              # the camera folder, started by nina
    window.engine.run_batch(lambda ctx: None)
    window.access.switch_person()
    sign_in(qtbot, window, "cora", "coordinator-pw")
    window.batch_panel._hot_pending = [window.paths.root / "new.jpg"]
    window.batch_panel._start_hot_job()                      # a new photograph arrives after the switch
    window.batch_panel.stop_watching()
    assert [request.person.name for request in sent] == ["nina", "nina"]


def test_settings_set_the_idle_minutes_and_offer_people_to_an_admin(qtbot, window):
    from eyescreen_desktop.gui.settings_dialog import SettingsDialog
    from eyescreen_desktop.gui.users_dialog import UsersDialog

    with_people(window.store)
    window.access.start()
    sign_in(qtbot, window, "ada", ADMIN_PW)
    window.open_settings()
    dialog = window.findChild(SettingsDialog)
    qtbot.waitUntil(dialog.isVisible)
    assert dialog.idle_lock.value() == 10 and dialog.people_button.isVisible()
    qtbot.mouseClick(dialog.people_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.findChild(UsersDialog) is not None)
    window.findChild(UsersDialog).reject()
    dialog.idle_lock.setValue(3)
    dialog.accept()
    assert window.settings.idle_lock_minutes == 3 and window.access.idle.timer.interval() == 3 * 60_000
