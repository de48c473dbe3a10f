"""People (File > People…, admins): the clinic's accounts, their roles, and
adding, disabling and resetting them (issue 21). The store checks the admin
role itself; every change is audited. Accounts are never deleted."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.roles import Role
from ..core.store import PasswordRefused, StoreError


class UsersDialog(QDialog):
    """The list of people and one form: add a person with roles, reset the selected
    person's password, disable them. Refusals are said in the dialog."""

    def __init__(self, store: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.setWindowTitle("People")
        self.setMinimumWidth(620)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Name", "Roles", "Account"])
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.name_edit = QLineEdit(placeholderText="name for a new person")
        self.roles = {role: QCheckBox(role.value) for role in Role}
        self.password_edit = QLineEdit(placeholderText="10 characters or more")
        self.again_edit = QLineEdit()
        for edit in (self.password_edit, self.again_edit):
            edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.add_button = QPushButton("&Add person")
        self.reset_button = QPushButton("&Reset selected person's password")
        self.disable_button = QPushButton("&Disable selected person")
        self.add_button.clicked.connect(self.add_person)
        self.reset_button.clicked.connect(self.reset_password)
        self.disable_button.clicked.connect(self.disable_person)
        self._layout()
        self.refresh()

    def _layout(self) -> None:
        roles = QHBoxLayout()
        for box in self.roles.values():
            roles.addWidget(box)
        form = QFormLayout()
        form.addRow("Name:", self.name_edit)
        form.addRow("Roles:", roles)
        form.addRow("Password:", self.password_edit)
        form.addRow("Password again:", self.again_edit)
        buttons = QHBoxLayout()
        for button in (self.add_button, self.reset_button, self.disable_button):
            buttons.addWidget(button)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        column = QVBoxLayout(self)
        note = QLabel("Accounts are never deleted: the audit log names them. Disabling ends their sessions.")
        note.setObjectName("hint")
        for item in (self.table, note, form, buttons, self.message, close):
            column.addLayout(item) if isinstance(item, (QFormLayout, QHBoxLayout)) else column.addWidget(item)

    def refresh(self) -> None:
        """Read the list again."""
        people = self.store.people()
        self.table.setRowCount(len(people))
        for row, person in enumerate(people):
            for col, text in enumerate((person.name, ", ".join(person.roles),
                                        "disabled" if person.disabled else "active")):
                self.table.setItem(row, col, QTableWidgetItem(text))

    def selected_name(self) -> str | None:
        """The name on the selected row, None when none is selected."""
        rows = self.table.selectionModel().selectedRows()
        return self.table.item(rows[0].row(), 0).text() if rows else None

    def _password(self) -> str | None:
        if self.password_edit.text() != self.again_edit.text():
            self.message.setText("The two passwords differ: type them again.")
            return None
        return self.password_edit.text()

    def _do(self, what: str, change: Any, done: str) -> bool:
        try:
            change()
        except (PasswordRefused, ValueError, StoreError) as exc:
            self.message.setText(f"{what}: {exc}.")
            return False
        self.password_edit.clear()
        self.again_edit.clear()
        self.message.setText(done)
        self.refresh()
        return True

    def add_person(self) -> None:
        """Add the person the form describes."""
        if (password := self._password()) is None:
            return
        name, roles = self.name_edit.text().strip(), [r.value for r, box in self.roles.items() if box.isChecked()]
        if self._do("Not added", lambda: self.store.add_person(name, password, roles), f"{name} added."):
            self.name_edit.clear()

    def reset_password(self) -> None:
        """Give the selected person the password typed in the form."""
        name = self.selected_name()
        if name is None:
            self.message.setText("Select the person first.")
        elif (password := self._password()) is not None:
            self._do("Not reset", lambda: self.store.reset_password(name, password),
                     f"{name}'s password was reset.")

    def disable_person(self) -> None:
        """Disable the selected person."""
        name = self.selected_name()
        if name is None:
            self.message.setText("Select the person first.")
        else:
            self._do("Not disabled", lambda: self.store.disable_person(name), f"{name} disabled.")
