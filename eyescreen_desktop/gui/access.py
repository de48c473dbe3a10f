"""Who is at the workstation (issue 21): sign-in at start, the offer of a first
admin, Switch person (Ctrl+L), the lock after idle minutes that hides every
patient, and what the signed-in person's roles may do shown on the buttons.

The rule itself is in ``core.roles`` and enforced by the store's services; here
the window only follows it (hides or disables), so a nurse never meets a button
that would be refused. A database without accounts shows none of this.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from ..core.roles import Action
from ..core.store import PasswordRefused, SignInRefused, StoreError

if TYPE_CHECKING:
    from ..core.store import Person
    from .main_window import MainWindow

SWITCH_SHORTCUT = "Ctrl+L"
"""Switch person: two keystrokes."""

ACTION_NEEDS: dict[str, Action] = {
    "open": Action.SCREEN, "right": Action.SCREEN, "left": Action.SCREEN, "next": Action.SCREEN,
    "batch": Action.SCREEN, "slip": Action.PRINT_DOCUMENT, "settings": Action.SETTINGS,
}
"""The window's actions (``MainWindow.actions`` keys) and what each needs."""

QUEUE_BUTTON_NEEDS: dict[str, Action] = {
    "open": Action.OPEN_RECORD, "slip": Action.PRINT_DOCUMENT, "printed": Action.PRINT_DOCUMENT,
    "referred": Action.CHANGE_QUEUE, "closed": Action.CHANGE_QUEUE, "reopen": Action.CHANGE_QUEUE,
    "override": Action.CHANGE_QUEUE, "flag": Action.FLAG_FOR_GRADER,
}
"""The queue view's buttons and what each needs."""

INPUT_EVENTS = (QEvent.Type.KeyPress, QEvent.Type.MouseButtonPress, QEvent.Type.MouseMove, QEvent.Type.Wheel)


def _password_edit() -> QLineEdit:
    edit = QLineEdit()
    edit.setEchoMode(QLineEdit.EchoMode.Password)
    return edit


class FirstAdminDialog(QDialog):
    """The offer to start accounts: a first admin's name and password (twice).
    "Not now" keeps the database without accounts, working as before."""

    def __init__(self, store: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store, self.person = store, None
        self.setWindowTitle("Accounts for this clinic")
        intro = QLabel("Create a first administrator to have everyone sign in: the audit log then names "
                       "who did what, and each person may do only what their role allows. "
                       "\"Not now\" keeps working without sign-in.")
        intro.setWordWrap(True)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.name_edit, self.password_edit, self.again_edit = QLineEdit(), _password_edit(), _password_edit()
        form = QFormLayout()
        form.addRow("Administrator's &name", self.name_edit)
        form.addRow("&Password (10 characters or more)", self.password_edit)
        form.addRow("Password &again", self.again_edit)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Create administrator")
        buttons.button(QDialogButtonBox.StandardButton.Cancel).setText("Not now")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        column = QVBoxLayout(self)
        for widget in (intro, self.message):
            column.addWidget(widget)
        column.addLayout(form)
        column.addWidget(buttons)

    def accept(self) -> None:
        """Create the admin and sign them in, or say what is wrong and stay open."""
        name, password = self.name_edit.text().strip(), self.password_edit.text()
        if password != self.again_edit.text():
            self.message.setText("The two passwords differ: type them again.")
            return
        try:
            self.store.add_person(name, password, ["admin"])
            self.person = self.store.sign_in(name, password)
        except (PasswordRefused, ValueError, StoreError) as exc:
            self.message.setText(f"Not created: {exc}.")
            return
        super().accept()


class LockPage(QWidget):
    """What a locked window shows instead of its patients: who was signed in, a
    password field to unlock, and Switch person. ``unlocked(person)`` once signed in."""

    unlocked = Signal(object)

    def __init__(self, store: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("lockPage")
        self.store = store
        self.title = QLabel("EyeScreen is locked")
        self.title.setStyleSheet("font-size: 20pt; font-weight: 600;")
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.name_edit, self.password_edit = QLineEdit(), _password_edit()
        self.name_edit.setPlaceholderText("Name")
        self.password_edit.setPlaceholderText("Password")
        self.unlock_button, self.switch_button = QPushButton("&Unlock"), QPushButton("&Switch person")
        self.unlock_button.setDefault(True)
        self.unlock_button.clicked.connect(self.unlock)
        self.password_edit.returnPressed.connect(self.unlock)
        box = QWidget()
        box.setFixedWidth(440)
        column = QVBoxLayout(box)
        for widget in (self.title, self.message, self.name_edit, self.password_edit, self.unlock_button,
                       self.switch_button):
            column.addWidget(widget)
        outer = QVBoxLayout(self)
        outer.addStretch(1)
        outer.addWidget(box, 0, Qt.AlignmentFlag.AlignHCenter)
        outer.addStretch(2)
        outer.setContentsMargins(80, 40, 80, 40)

    def show_for(self, name: str | None, why: str = "") -> None:
        """Ask ``name``'s password (None: anyone's name and password)."""
        self.title.setText("EyeScreen is locked" if name else "Sign in to EyeScreen")
        self.unlock_button.setText("&Unlock" if name else "&Sign in")
        self.name_edit.setText(name or "")
        self.name_edit.setReadOnly(bool(name))
        self.switch_button.setVisible(bool(name))
        self.password_edit.clear()
        self.message.setText(why or (f"{name} was signed in. Enter the password to go on, or switch person."
                                     if name else "Who is at this workstation? Sign in with your own name."))
        (self.password_edit if name else self.name_edit).setFocus()

    def unlock(self) -> None:
        """Sign in with what was typed; a refusal is said here."""
        try:
            person = self.store.sign_in(self.name_edit.text().strip(), self.password_edit.text())
        except SignInRefused as exc:
            self.password_edit.clear()
            self.message.setText(f"Not signed in: {exc}.")
            return
        self.unlocked.emit(person)


class IdleLock(QObject):
    """Fires ``idle`` after ``minutes`` without a key, click or mouse move anywhere in the
    application (0: never)."""

    idle = Signal()

    def __init__(self, minutes: Callable[[], int], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.minutes = minutes
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.timeout.connect(self.idle)
        app = QApplication.instance()
        if app is not None:
            app.installEventFilter(self)
        self.restart()

    def restart(self) -> None:
        """Count the idle minutes again from now."""
        minutes = int(self.minutes() or 0)
        if minutes > 0:
            self.timer.start(minutes * 60_000)
        else:
            self.timer.stop()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Any input restarts the count (cheap: a timer restart)."""
        if event.type() in INPUT_EVENTS and self.timer.isActive():
            self.timer.start()
        return False

    def stop(self) -> None:
        """Stop watching (the window closes)."""
        self.timer.stop()
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self)


def may(person: Person | None, action: Action, accounts: bool) -> bool:
    """Whether the window offers ``action``: always without accounts, else by the person's roles."""
    return not accounts or (person is not None and person.may(action))


class WindowAccess(QObject):
    """The window's side of accounts: the sign-in page at start, the lock after idle
    minutes, Switch person, and the actions and queue buttons each role may use.
    Without accounts it stays out of the way (and may offer a first admin)."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window, self.store = window, window.store
        self.pages: QStackedWidget = window.central   # the desk; the sign-in page joins it when first needed
        self._lock_page: LockPage | None = None
        self.who = QLabel("")
        self.who.setObjectName("signedIn")
        window.statusBar().addPermanentWidget(self.who)
        self.switch_action = QAction("S&witch person", window)
        self.switch_action.setShortcut(QKeySequence(SWITCH_SHORTCUT))
        self.switch_action.setStatusTip(f"Lock the window and let someone else sign in ({SWITCH_SHORTCUT})")
        self.switch_action.triggered.connect(self.switch_person)
        window.addAction(self.switch_action)
        window.actions["switch"] = self.switch_action
        self.people_action = QAction("&People…", window)
        self.people_action.setStatusTip("Add, disable and reset the clinic's accounts (admins)")
        self.people_action.triggered.connect(self.open_people)
        window.actions["people"] = self.people_action
        file_menu = window.menuBar().actions()[0].menu()
        file_menu.insertAction(window.actions["quit"], self.people_action)
        file_menu.insertAction(window.actions["quit"], self.switch_action)
        self.idle = IdleLock(lambda: int(window.settings.idle_lock_minutes), self)
        self.idle.idle.connect(lambda: self.lock("Locked after a while without use: patient data is hidden."))
        self.first_admin: FirstAdminDialog | None = None
        self.apply()

    @property
    def opening(self) -> bool:
        """The clinic database is still being opened (gui.opening_store): nobody is known
        yet, so nothing is offered, and nothing asks the store (that would wait for it)."""
        return bool(getattr(self.store, "opening", False))

    @property
    def accounts(self) -> bool:
        """Whether this clinic database asks who is there."""
        return not self.opening and bool(self.store.has_accounts())

    @property
    def lock_page(self) -> LockPage:
        """The sign-in page, built the first time the window locks (most clinics have no
        accounts: the window is painted without it)."""
        if self._lock_page is None:
            self._lock_page = LockPage(self.store)
            self._lock_page.unlocked.connect(self._unlocked)
            self._lock_page.switch_button.clicked.connect(self.switch_person)
            self.pages.addWidget(self._lock_page)
        return self._lock_page

    @property
    def locked(self) -> bool:
        """Whether patient data is hidden behind the sign-in page."""
        return self._lock_page is not None and self.pages.currentWidget() is self._lock_page

    def start(self) -> None:
        """At start: the sign-in page on a database with accounts; else, unless declined
        before, the offer of a first admin (non-modal)."""
        if self.accounts:
            self.lock(None)
        elif self.window.settings.offer_first_admin:
            self.offer_first_admin()

    def offer_first_admin(self) -> FirstAdminDialog:
        """Open the first-admin offer; "Not now" stops offering it at start."""
        dialog = FirstAdminDialog(self.store, self.window)
        dialog.accepted.connect(lambda: self._unlocked(dialog.person))
        dialog.rejected.connect(lambda: setattr(self.window.settings, "offer_first_admin", False))
        self.first_admin = dialog
        dialog.open()
        return dialog

    def lock(self, why: str | None = "") -> None:
        """Hide every patient behind the sign-in page. ``why`` None: nobody is signed in
        yet (start, Switch person); otherwise the signed-in person unlocks with a password."""
        if not self.accounts:
            return
        person = self.store.person
        if why is None or person is None:
            self.store.person = None
            self.lock_page.show_for(None)
        else:
            self.lock_page.show_for(person.name, why)
        for dialog in self.window.findChildren(QDialog):   # a slip or visit on show goes too
            if dialog.isVisible():
                dialog.reject()
        self.pages.setCurrentWidget(self.lock_page)
        self.apply()

    def switch_person(self) -> None:
        """Ctrl+L: sign out and let the next person sign in (a batch keeps running as
        whoever started it)."""
        if self.accounts:
            self.store.sign_out()
            self.lock(None)

    def open_people(self) -> QDialog:
        """File > People… (admins)."""
        from .users_dialog import UsersDialog

        dialog = UsersDialog(self.store, self.window)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def _unlocked(self, person: Person | None) -> None:
        self.pages.setCurrentIndex(0)
        self.idle.restart()
        self.apply()

    def may(self, action: Action) -> bool:
        """Whether the window offers ``action`` now."""
        if self.locked or self.opening:
            return False
        return may(self.store.person, action, self.accounts)

    def apply(self) -> None:
        """Enable what the signed-in person may do, disable the rest; say who is signed in."""
        window = self.window
        for key, action in ACTION_NEEDS.items():
            if key in window.actions and key not in ("right", "left"):
                window.actions[key].setEnabled(self.may(action))
        for key in ("right", "left"):
            window.actions[key].setEnabled(self.may(Action.SCREEN) and window.capture_panel.live)
        for key in ("find", "heatmap", "screening", "queues"):   # nothing that shows a patient while locked
            window.actions[key].setEnabled(not self.locked)
        screens = self.may(Action.SCREEN)
        for tab in (window.batch_panel, getattr(window.eye_check, "panel", None)):
            if tab is not None:
                window.tabs.setTabEnabled(window.tabs.indexOf(tab), screens)
        for tab, allowed in ((window.tab_page("grading"), self.may(Action.GRADE)),
                             (window.tab_page("qa"), self.may(Action.GRADE) or self.may(Action.EXPORT))):
            if tab is not None:   # the grading desk for graders; agreement figures for graders and coordinators
                window.tabs.setTabEnabled(window.tabs.indexOf(tab), allowed)
        window.capture_panel.setEnabled(screens)
        window.queues.may = lambda key: self.may(QUEUE_BUTTON_NEEDS.get(key, Action.OPEN_RECORD))
        window.queues._update_buttons()
        self.switch_action.setEnabled(self.accounts)
        self.people_action.setEnabled(self.accounts and self.may(Action.USERS))
        person = None if self.opening else self.store.person
        self.who.setText(f"Signed in: {person.name} ({', '.join(person.roles)})" if person and not self.locked
                         else "")
