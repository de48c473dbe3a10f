"""Who is being screened: find a patient already on record, or enter a new one.

The clinic's own patient ID is the only required field; everything else
(name, birth date, sex, diabetes type and duration) is optional because the
slip is still useful without it. Searching reads the clinic database as you
type (a few milliseconds, debounced); saving happens on the worker with the
first photograph, so an abandoned form never creates a patient.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from PySide6.QtCore import QDate, QLocale, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QCalendarWidget,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
    QWidgetAction,
)

from ..core.records import Patient
from ..core.store import StoreError

SEXES = ("", "female", "male", "other")
DIABETES_TYPES = ("", "type 1", "type 2", "gestational", "other")
OLDEST_BIRTH_YEAR = 1900
TYPICAL_AGE_YEARS = 60        # the calendar opens here when no date is given: most patients are 40-80
SEARCH_DELAY_MS = 250
MAX_MATCHES = 20


def patient_label(patient: Patient) -> str:
    """"P001 · Ada Lovelace · born 1950-02-03": one line for the match list."""
    parts = [patient.patient_id, patient.name]
    if patient.birth_date:
        parts.append(f"born {patient.birth_date.isoformat()}")
    return " · ".join(p for p in parts if p)


def parse_birth_date(text: str, locale: QLocale | None = None) -> dt.date | None:
    """A typed birth date: ISO (1958-03-14, 19580314) or the clinic's own short or
    numeric format (14/03/1958 in a day-first locale); None when it is not one, is in
    the future or before 1900. Why: staff type the date as their forms print it."""
    text = text.strip()
    if not text:
        return None
    locale = locale or QLocale()
    day_first = locale.dateFormat(QLocale.FormatType.ShortFormat).lower().lstrip("'").startswith("d")
    numeric = ("dd/MM/yyyy", "d/M/yyyy", "dd.MM.yyyy", "d.M.yyyy", "dd-MM-yyyy") if day_first else \
        ("MM/dd/yyyy", "M/d/yyyy", "MM-dd-yyyy")
    formats = ("yyyy-MM-dd", "yyyyMMdd", "yyyy/MM/dd", "yyyy.MM.dd", *numeric)
    candidates = [QDate.fromString(text, f) for f in formats]
    candidates += [locale.toDate(text, QLocale.FormatType.ShortFormat),
                   locale.toDate(text, QLocale.FormatType.LongFormat)]
    for date in candidates:
        if date.isValid():
            if 0 < date.year() < 100:          # a two-digit year ("14/03/58") is a birth in the last century
                date = date.addYears(1900 if date.year() + 2000 > QDate.currentDate().year() else 2000)
            if OLDEST_BIRTH_YEAR <= date.year() and date <= QDate.currentDate():
                return dt.date(date.year(), date.month(), date.day())
    return None


class BirthDateField(QWidget):
    """A birth date typed as the form prints it, or picked from a calendar that opens
    near a typical patient's age (not January 1900). Empty means "not given"."""

    dateChanged = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.edit = QLineEdit(placeholderText="not given (yyyy-mm-dd)", clearButtonEnabled=True)
        self.edit.setToolTip("Type the date (1958-03-14, or as this computer writes dates: "
                             f"{self._example(QLocale.FormatType.ShortFormat)}), or pick it from the calendar")
        self.calendar = QCalendarWidget()
        self.calendar.setMinimumDate(QDate(OLDEST_BIRTH_YEAR, 1, 1))
        self.calendar.setMaximumDate(QDate.currentDate())
        self.calendar.clicked.connect(self._picked)
        self.calendar.activated.connect(self._picked)
        self.menu = QMenu(self)
        holder = QWidgetAction(self.menu)
        holder.setDefaultWidget(self.calendar)
        self.menu.addAction(holder)
        self.menu.aboutToShow.connect(self._open_near_age)
        self.button = QToolButton(toolTip="Pick from a calendar")
        self.button.setArrowType(Qt.ArrowType.DownArrow)
        self.button.setStyleSheet("QToolButton::menu-indicator { image: none; }")   # one arrow, not two
        self.button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.button.setMenu(self.menu)
        self.edit.textChanged.connect(lambda _text: self.dateChanged.emit())
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(2)
        row.addWidget(self.edit, 1)
        row.addWidget(self.button)
        self.setFocusProxy(self.edit)

    @staticmethod
    def _example(kind: QLocale.FormatType | None = None) -> str:
        sample = QDate(1958, 3, 14)
        return sample.toString("yyyy-MM-dd") if kind is None else QLocale().toString(sample, kind)

    def date(self) -> dt.date | None:
        """The date given, or None (empty, or not a date: see :meth:`unreadable`)."""
        return parse_birth_date(self.edit.text())

    def unreadable(self) -> bool:
        """True when something is typed that is not a birth date."""
        return bool(self.edit.text().strip()) and self.date() is None

    def set_date(self, date: dt.date | None) -> None:
        self.edit.setText(date.isoformat() if date else "")

    def text(self) -> str:
        return self.edit.text()

    def clear(self) -> None:
        self.edit.clear()

    def setReadOnly(self, on: bool) -> None:  # noqa: N802 - Qt's name
        self.edit.setReadOnly(on)
        self.button.setEnabled(not on)

    def _open_near_age(self) -> None:
        """The calendar shows the date given, else a month 60 years ago."""
        given = self.date()
        start = QDate(given.year, given.month, given.day) if given else \
            QDate.currentDate().addYears(-TYPICAL_AGE_YEARS)
        self.calendar.setSelectedDate(start)
        self.calendar.setCurrentPage(start.year(), start.month())

    def popup_calendar(self) -> QCalendarWidget:
        """The calendar as it opens (tests and the button's menu)."""
        self._open_near_age()
        return self.calendar

    def _picked(self, date: QDate) -> None:
        self.set_date(dt.date(date.year(), date.month(), date.day()))
        self.menu.hide()


class PatientPanel(QGroupBox):
    """The patient form with a search box above it.

    ``patientChanged()`` fires whenever the form changes; :meth:`patient`
    returns the form as a :class:`Patient`, or None while no ID is entered."""

    patientChanged = Signal()
    searched = Signal()   # a search's answer is on show

    def __init__(self, store: Any, parent: QWidget | None = None):
        super().__init__("Patient", parent)
        self.store = store
        self._search_ticket = 0   # the latest search asked of the database
        self._timer = QTimer(self, singleShot=True, interval=SEARCH_DELAY_MS)
        self._timer.timeout.connect(self.search)
        self.search_edit = QLineEdit(placeholderText="Find by patient ID, name or birth date…", clearButtonEnabled=True)
        self.matches = QListWidget()
        self.id_edit = QLineEdit(placeholderText="required, e.g. clinic number")
        self.name_edit = QLineEdit()
        self.birth_edit = BirthDateField()
        self.sex_box = QComboBox()
        self.type_box = QComboBox()
        self.years_box = QSpinBox()
        self.hint = QLabel()
        self._build()

    # ------------------------------------------------------------------ UI

    def _build(self) -> None:
        self.search_edit.textEdited.connect(lambda _text: self._timer.start())
        self.search_edit.returnPressed.connect(self.search)
        self.matches.setMaximumHeight(110)
        self.matches.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)   # long names elide
        self.matches.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.matches.setVisible(False)
        self.matches.itemActivated.connect(self._choose)
        self.matches.itemClicked.connect(self._choose)
        self.sex_box.addItems([s or "not given" for s in SEXES])
        self.type_box.addItems([t or "not given" for t in DIABETES_TYPES])
        self.years_box.setRange(-1, 90)
        self.years_box.setSpecialValueText("not given")
        self.years_box.setSuffix(" years")
        self.years_box.setValue(-1)
        self.hint.setObjectName("hint")
        self.hint.setWordWrap(True)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Patient &ID:", self.id_edit)
        form.addRow("&Name:", self.name_edit)
        form.addRow("&Birth date:", self.birth_edit)
        form.addRow("&Sex:", self.sex_box)
        form.addRow("&Diabetes:", self.type_box)
        form.addRow("Diabetic for:", self.years_box)
        layout = QVBoxLayout(self)
        layout.addWidget(self.search_edit)
        layout.addWidget(self.matches)
        layout.addLayout(form)
        layout.addWidget(self.hint)
        for edit in (self.id_edit, self.name_edit):
            edit.textChanged.connect(self._changed)
        self.birth_edit.dateChanged.connect(self._changed)
        for box in (self.sex_box, self.type_box):
            box.currentIndexChanged.connect(self._changed)
        self.years_box.valueChanged.connect(self._changed)
        self._changed()

    # ------------------------------------------------------------------ search

    @Slot()
    def search(self) -> None:
        """List the patients on record whose ID or name contains the search text.
        The database is asked on the background helper (a batch may hold it for
        seconds); ``searched()`` fires once the answer is on show, and an answer
        to an older search text is dropped."""
        from .worker import run_in_background

        self._timer.stop()
        text = self.search_edit.text().strip()
        self._search_ticket += 1
        if not text:
            self._show_matches((self._search_ticket, text, []))
            return
        ticket, store = self._search_ticket, self.store
        run_in_background(lambda: (ticket, text, store.find_patients(text, limit=MAX_MATCHES)), self._show_matches,
                          self._search_failed)

    @Slot(object)
    def _show_matches(self, answer: tuple[int, str, list[Patient]]) -> None:
        ticket, text, found = answer
        if ticket != self._search_ticket:
            return   # the text changed meanwhile: a newer search is on its way
        self.matches.clear()
        for patient in found:
            item = QListWidgetItem(patient_label(patient))
            item.setToolTip(patient_label(patient))
            item.setData(Qt.ItemDataRole.UserRole, patient)
            self.matches.addItem(item)
        if text and not found:
            self.matches.addItem(QListWidgetItem("No patient found: fill in the form below for a new one"))
        self.matches.setVisible(bool(text))
        self.searched.emit()

    @Slot(str)
    def _search_failed(self, message: str) -> None:
        self.matches.clear()
        self.matches.addItem(QListWidgetItem(f"The search failed: {message}"))
        self.matches.setVisible(True)
        self.searched.emit()

    @property
    def locked(self) -> bool:
        """True once a photograph of this visit was submitted: the patient is fixed."""
        return self.id_edit.isReadOnly()

    def _choose(self, item: QListWidgetItem) -> None:
        patient = item.data(Qt.ItemDataRole.UserRole)
        if isinstance(patient, Patient) and self.locked and patient.patient_id != self.id_edit.text().strip():
            self.hint.setText(f"This visit is {self.id_edit.text().strip()}'s: press Ctrl+N for the next patient "
                              f"before choosing {patient.patient_id}.")
            self.hint.setVisible(True)
            return
        if isinstance(patient, Patient):
            opened = getattr(self.store, "open_record", None)   # audited: who viewed whom
            try:
                patient = (opened(patient.patient_id) if opened else None) or patient
            except StoreError as exc:   # e.g. a role that does not open records
                self.hint.setText(f"{patient.patient_id} not opened: {exc}.")
                self.hint.setVisible(True)
                return
            self.set_patient(patient)
            self.matches.setVisible(False)
            self.search_edit.clear()

    # ------------------------------------------------------------------ the form

    def patient(self) -> Patient | None:
        """The form as a Patient, or None while the ID is empty."""
        patient_id = self.id_edit.text().strip()
        if not patient_id:
            return None
        years = self.years_box.value()
        return Patient(
            patient_id=patient_id, name=self.name_edit.text().strip(),
            birth_date=self.birth_edit.date(),
            sex=SEXES[self.sex_box.currentIndex()], diabetes_type=DIABETES_TYPES[self.type_box.currentIndex()],
            diabetes_years=None if years < 0 else years,
        )

    def set_patient(self, patient: Patient) -> None:
        """Fill the form with a patient (from the search or a reopened encounter)."""
        self.id_edit.setText(patient.patient_id)
        self.name_edit.setText(patient.name)
        self.birth_edit.set_date(patient.birth_date)
        self.sex_box.setCurrentIndex(SEXES.index(patient.sex) if patient.sex in SEXES else 0)
        t = patient.diabetes_type
        self.type_box.setCurrentIndex(DIABETES_TYPES.index(t) if t in DIABETES_TYPES else 0)
        self.years_box.setValue(-1 if patient.diabetes_years is None else patient.diabetes_years)

    def clear(self) -> None:
        """An empty form for the next patient."""
        self.set_locked(False)
        self.set_patient(Patient(""))
        self._search_ticket += 1   # a search still being answered is for the last patient
        self.search_edit.clear()
        self.matches.clear()
        self.matches.setVisible(False)

    def set_locked(self, locked: bool) -> None:
        """Once photographs are on record for this visit the ID cannot change
        (start the next patient instead)."""
        self.id_edit.setReadOnly(locked)
        self.id_edit.setToolTip("Fixed for this visit: press Ctrl+N for the next patient" if locked else "")

    def birth_calendar(self) -> QCalendarWidget:
        """The birth date's calendar, as it opens (near a typical age when no date is given)."""
        return self.birth_edit.popup_calendar()

    def _changed(self, *_args: object) -> None:
        hint = ""
        if not self.id_edit.text().strip():
            hint = "Enter the patient ID (or find the patient above) before adding photographs."
        elif self.birth_edit.unreadable():
            hint = (f"The birth date \"{self.birth_edit.text().strip()}\" is not a date: type it as 1958-03-14 "
                    "or pick it from the calendar (it is not saved as it is).")
        self.hint.setText(hint)
        self.hint.setVisible(bool(hint))
        self.patientChanged.emit()
