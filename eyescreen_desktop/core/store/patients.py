"""Patients and their encounters (visits)."""

from __future__ import annotations

import datetime as dt
import uuid

from ..roles import Action
from .engine import Row
from ..protocol import DEFAULT_PROTOCOL, get_protocol
from ..records import Patient
from .base import StoreBase, _iso, fold_text, search_text
from .rows import _patient

SOURCES = ("batch", "desk")


def _like_escape(text: str) -> str:
    """Text matched literally by LIKE ... ESCAPE '\\' (``%`` and ``_`` are no wildcards)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class PatientStore(StoreBase):
    """Patients (created, updated, found) and the encounters opened for them."""

    def upsert_patient(self, patient: Patient, user: str | None = None) -> None:
        """Create the patient or update their details (audited with what changed)."""
        self.require(Action.SCREEN)
        new = {"name": patient.name, "birth_date": _iso(patient.birth_date), "sex": patient.sex,
               "diabetes_type": patient.diabetes_type, "diabetes_years": patient.diabetes_years}
        with self._tx() as db:
            old = db.execute("SELECT * FROM patients WHERE patient_id = ?", (patient.patient_id,)).fetchone()
            now = self._now()
            folded = search_text(patient.patient_id, patient.name, new["birth_date"])
            if old is None:
                db.execute("INSERT INTO patients (patient_id, name, birth_date, sex, diabetes_type, "
                           "diabetes_years, created_at, updated_at, search_text) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (patient.patient_id, *new.values(), now, now, folded))
                self._audit(db, user, "patient created", f"patient:{patient.patient_id}", new)
                return
            changed = {k: v for k, v in new.items() if old[k] != v}
            if changed:
                sets = ", ".join(f"{k} = ?" for k in changed)
                db.execute(f"UPDATE patients SET {sets}, updated_at = ?, search_text = ? WHERE patient_id = ?",
                           (*changed.values(), now, folded, patient.patient_id))
                self._audit(db, user, "patient updated", f"patient:{patient.patient_id}",
                            {k: {"from": old[k], "to": v} for k, v in changed.items()})

    def ensure_patient(self, patient_id: str, user: str | None = None) -> Patient:
        """The patient, created with only their ID when unknown (batch without a patient list)."""
        self.require(Action.SCREEN)
        with self._tx():
            found = self.get_patient(patient_id)
            if found is None:
                found = Patient(patient_id)
                self.upsert_patient(found, user)
            return found

    def get_patient(self, patient_id: str) -> Patient | None:
        """The patient with this clinic ID, or None."""
        rows = self._query("SELECT * FROM patients WHERE patient_id = ?", (patient_id,))
        return _patient(rows[0]) if rows else None

    def open_record(self, patient_id: str) -> Patient | None:
        """The patient, to show their record: audited ("record opened"), so the log
        says who viewed whom; None when unknown."""
        self.require(Action.OPEN_RECORD)
        patient = self.get_patient(patient_id)
        if patient is not None:
            with self._tx() as db:
                self._audit(db, None, "record opened", f"patient:{patient_id}")
        return patient

    def find_patients(self, text: str = "", limit: int = 50) -> list[Patient]:
        """Patients whose ID, name or birth date contain every word of ``text``, ignoring
        case and accents ("nunez" finds "Zoë Ñúñez", "21/03/1956" the birth date), by ID.

        One SQL query over the folded ``search_text`` column (no Python scan of the
        table per keystroke); patients whose ID starts with the text come first."""
        words = fold_text(text).split()
        where = " AND ".join("search_text LIKE ? ESCAPE '\\'" for _ in words) or "1 = 1"
        params: list[object] = [f"%{_like_escape(w)}%" for w in words]
        prefix = _like_escape(fold_text(text).strip()) + "%"
        rows = self._query(f"SELECT * FROM patients WHERE {where} "
                           "ORDER BY (search_text NOT LIKE ? ESCAPE '\\'), patient_id LIMIT ?",
                           (*params, prefix, limit))
        return [_patient(r) for r in rows]

    def start_encounter(self, patient_id: str, started_at: dt.datetime | None = None,
                        protocol: str = DEFAULT_PROTOCOL, source: str = "desk",
                        batch_key: str | None = None, user: str | None = None) -> str:
        """Open a visit for a known patient; returns the new encounter ID."""
        self.require(Action.SCREEN)
        get_protocol(protocol)
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
        started = (started_at or self.now_local()).replace(microsecond=0)
        encounter_id = uuid.uuid4().hex
        with self._tx() as db:
            if self.get_patient(patient_id) is None:
                raise ValueError(f"unknown patient {patient_id!r}: register the patient first")
            who = self._who(user)
            db.execute("INSERT INTO encounters (encounter_id, patient_id, started_at, protocol, source, "
                       "batch_key, created_by) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (encounter_id, patient_id, _iso(started), protocol, source, batch_key, who))
            self._audit(db, who, "encounter started", f"encounter:{encounter_id}",
                        {"patient_id": patient_id, "protocol": protocol, "source": source,
                         "batch_key": batch_key})
        return encounter_id

    def _encounter_row(self, encounter_id: str) -> Row:
        rows = self._query("SELECT * FROM encounters WHERE encounter_id = ?", (encounter_id,))
        if not rows:
            raise KeyError(f"no encounter {encounter_id!r}")
        return rows[0]
