"""The clinic database: patients, encounters, images, results, queues and the audit log.

One SQLite file in the user's data folder (``DataPaths.database``) plus a managed
image store (``DataPaths.image_store``) holding a copy of every photograph,
named by the SHA-256 of its bytes. Why it looks the way it does:

* **Recognise, never duplicate.** An image row is unique by content hash; the
  same photograph screened twice links to the one image row (and its one stored
  copy), and a result already computed for it with the same model and protocol
  can be reused (:meth:`ClinicStore.result_for`).
* **Crash-safe.** WAL journal, ``synchronous=FULL`` and one transaction per
  image result: a process killed mid-batch (``kill -9``) leaves every finished
  image committed and nothing half-written, so running the batch again finishes
  it (see ``batch.py``: batches and ``batch_files``).
* **Traceable.** Every change writes an audit row (who, when, action, entity,
  details) in the same transaction as the change. ``user`` defaults to the
  operating-system user name.
* **Upgradable.** ``PRAGMA user_version`` holds the schema version; the
  ``MIGRATIONS`` list brings an older file up to date (after a backup copy),
  and a file from a newer EyeScreen is refused with a clear message.

Threads: one connection opened with ``check_same_thread=False`` and every
method serialised by one re-entrant lock, so the GUI thread and the screening
worker may share a ``ClinicStore``; each call is short (milliseconds). Other
processes (a CLI batch while the window is open) can read concurrently thanks
to WAL; writers wait up to ``BUSY_TIMEOUT_MS``.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import logging
import os
import sqlite3
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from .paths import DataPaths
from .protocol import DEFAULT_PROTOCOL, get_protocol, patient_queue
from .records import (
    EncounterSummary,
    Eye,
    EyeDecision,
    EyeResult,
    ModelInfo,
    OperatingPoint,
    Patient,
    Prediction,
    QualityReport,
    Queue,
    Status,
)

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000
STATES = ("open", "referred", "closed")
SOURCES = ("batch", "desk")
_EYE_ORDER = {Eye.RIGHT: 0, Eye.LEFT: 1, Eye.UNKNOWN: 2}  # right eye first, as on clinic forms

_SCHEMA_V1 = """
CREATE TABLE patients (
    patient_id      TEXT PRIMARY KEY,
    name            TEXT NOT NULL DEFAULT '',
    birth_date      TEXT,
    sex             TEXT NOT NULL DEFAULT '',
    diabetes_type   TEXT NOT NULL DEFAULT '',
    diabetes_years  INTEGER,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE TABLE encounters (
    encounter_id    TEXT PRIMARY KEY,
    patient_id      TEXT NOT NULL REFERENCES patients(patient_id) ON UPDATE CASCADE,
    started_at      TEXT NOT NULL,
    protocol        TEXT NOT NULL,
    source          TEXT NOT NULL CHECK (source IN ('batch', 'desk')),
    batch_key       TEXT,
    created_by      TEXT NOT NULL
);
CREATE INDEX encounters_patient ON encounters(patient_id, started_at);
CREATE UNIQUE INDEX encounters_batch_patient ON encounters(batch_key, patient_id)
    WHERE batch_key IS NOT NULL;
CREATE TABLE images (
    image_id        INTEGER PRIMARY KEY,
    sha256          TEXT UNIQUE,            -- NULL: the file could not be read at all
    original_path   TEXT NOT NULL,          -- where it was first seen
    stored_name     TEXT,                   -- copy under the image store, NULL when none
    size_bytes      INTEGER,
    added_at        TEXT NOT NULL
);
CREATE TABLE encounter_images (
    encounter_image_id INTEGER PRIMARY KEY,
    encounter_id    TEXT NOT NULL REFERENCES encounters(encounter_id) ON DELETE CASCADE,
    image_id        INTEGER NOT NULL REFERENCES images(image_id),
    eye             TEXT NOT NULL CHECK (eye IN ('L', 'R', '?')),
    original_path   TEXT NOT NULL,
    added_at        TEXT NOT NULL,
    UNIQUE (encounter_id, image_id)
);
CREATE TABLE results (
    result_id       INTEGER PRIMARY KEY,
    encounter_image_id INTEGER NOT NULL REFERENCES encounter_images(encounter_image_id) ON DELETE CASCADE,
    encounter_id    TEXT NOT NULL REFERENCES encounters(encounter_id) ON DELETE CASCADE,
    image_id        INTEGER NOT NULL REFERENCES images(image_id),
    model_name      TEXT NOT NULL,
    model_version   TEXT NOT NULL,
    model_sha       TEXT NOT NULL,
    protocol        TEXT NOT NULL,
    op_name         TEXT,
    operating_point TEXT,                   -- JSON thresholds
    status          TEXT NOT NULL CHECK (status IN ('ok', 'ungradable', 'not_fundus', 'error')),
    grade           INTEGER CHECK (grade BETWEEN 0 AND 4),
    probabilities   TEXT,                   -- JSON list of ICDR grade 0-4 probabilities
    p_referable     REAL,
    p_urgent        REAL,
    p_maculopathy   REAL,
    queue           TEXT NOT NULL CHECK (queue IN ('urgent', 'routine', 'review', 'annual')),
    code            TEXT NOT NULL DEFAULT '',
    finding         TEXT NOT NULL DEFAULT '',
    message         TEXT NOT NULL DEFAULT '',
    quality_reasons TEXT NOT NULL DEFAULT '[]',
    quality_advice  TEXT,
    quality_metrics TEXT,                   -- JSON; NULL when the gate never ran (unreadable file)
    width           INTEGER,
    height          INTEGER,
    created_at      TEXT NOT NULL,
    created_by      TEXT NOT NULL,
    CHECK (status = 'ok' OR queue = 'review'),
    UNIQUE (encounter_image_id, model_sha, protocol)
);
CREATE INDEX results_cache ON results(image_id, model_sha, protocol);
CREATE INDEX results_encounter ON results(encounter_id);
CREATE TABLE queue_state (
    encounter_id    TEXT PRIMARY KEY REFERENCES encounters(encounter_id) ON DELETE CASCADE,
    queue           TEXT NOT NULL CHECK (queue IN ('urgent', 'routine', 'review', 'annual')),
    due_date        TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'referred', 'closed')),
    slip_printed_at TEXT,
    override_queue  TEXT CHECK (override_queue IN ('urgent', 'routine', 'review', 'annual')),
    override_reason TEXT NOT NULL DEFAULT '',
    override_due_date TEXT,
    updated_at      TEXT NOT NULL
);
CREATE INDEX queue_state_due ON queue_state(state, due_date);
CREATE TABLE batches (
    batch_key       TEXT PRIMARY KEY,
    started_at      TEXT NOT NULL,
    finished_at     TEXT,
    protocol        TEXT NOT NULL,
    model_sha       TEXT NOT NULL,
    inputs          TEXT NOT NULL           -- JSON list of resolved input paths
);
CREATE TABLE batch_files (
    batch_key       TEXT NOT NULL REFERENCES batches(batch_key),
    file            TEXT NOT NULL,          -- as written in results.csv
    encounter_id    TEXT NOT NULL REFERENCES encounters(encounter_id),
    result_id       INTEGER NOT NULL REFERENCES results(result_id),
    PRIMARY KEY (batch_key, file)
);
CREATE TABLE audit_log (
    audit_id        INTEGER PRIMARY KEY,
    at              TEXT NOT NULL,
    user            TEXT NOT NULL,
    action          TEXT NOT NULL,
    entity          TEXT NOT NULL,          -- "patient:P001", "encounter:<id>", "result:12" ...
    details         TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_entity ON audit_log(entity, audit_id);
"""

# Version 2: the heat map of a graded photograph (a small 8-bit PNG), so a slip
# printed from the queues days later shows where the network looked.
_SCHEMA_V2 = """
ALTER TABLE results ADD COLUMN heatmap BLOB;
"""

# Each entry brings the schema from version i to i + 1. Append, never edit.
MIGRATIONS: list[str] = [_SCHEMA_V1, _SCHEMA_V2]
HEATMAP_SIDE = 96  # stored heat maps are this many pixels square (they are smooth: 12x12 features at 384 px)
SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(Exception):
    """The database cannot be used; the message says which file and what to do."""


@dataclass(frozen=True)
class AuditEntry:
    """One line of the audit log: who did what to which record, and when."""

    audit_id: int
    at: dt.datetime
    user: str
    action: str
    entity: str
    details: dict[str, Any]


@dataclass(frozen=True)
class BatchFileRow:
    """One file of a batch as recorded: what results.csv and the summary are built from."""

    file: str
    encounter_id: str
    patient_id: str
    result: EyeResult


def default_user() -> str:
    """The operating-system user name: who an audit row names when no one else is given."""
    try:
        return getpass.getuser() or "unknown"
    except Exception:  # noqa: BLE001 - no login name (e.g. some containers)
        return "unknown"


def _now() -> str:
    return dt.datetime.now().isoformat(timespec="seconds")


def _iso(value: dt.date | dt.datetime | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="seconds")
    return value.isoformat()


def _date(text: str | None) -> dt.date | None:
    return dt.date.fromisoformat(text) if text else None


def _datetime(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


class ClinicStore:
    """The clinic database. Pass it to whoever needs it (GUI, worker, batch,
    reports); use as a context manager or call :meth:`close`."""

    def __init__(self, path: Path | str, image_store: Path | str | None = None):
        self.path = Path(path)
        self.image_store = Path(image_store) if image_store else self.path.parent / "images"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._depth = 0
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                       timeout=BUSY_TIMEOUT_MS / 1000)
            self._db.row_factory = sqlite3.Row
            self._configure()
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not a usable EyeScreen database ({exc}): "
                             "restore it from a backup or choose another data folder") from None

    @classmethod
    def open(cls, data_paths: DataPaths) -> "ClinicStore":
        """The clinic database and image store under a data folder (created if needed)."""
        data_paths.ensure()
        return cls(data_paths.database, data_paths.image_store)

    def __enter__(self) -> "ClinicStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None  # type: ignore[assignment]

    # ------------------------------------------------------------------ plumbing

    def _configure(self) -> None:
        self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            log.warning("database %s is not in WAL mode (%s)", self.path, mode)
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.execute("PRAGMA foreign_keys = ON")

    @property
    def schema_version(self) -> int:
        """``PRAGMA user_version`` of the open file."""
        with self._lock:
            return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        version = self.schema_version
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path} was written by a newer EyeScreen (schema {version}, this one "
                             f"knows {SCHEMA_VERSION}): update EyeScreen")
        if 0 < version < SCHEMA_VERSION:
            self._backup(self.path.with_name(f"{self.path.name}.schema{version}.bak"))
        for target in range(version + 1, SCHEMA_VERSION + 1):
            log.info("migrating %s to schema %d", self.path, target)
            try:
                self._db.executescript(f"BEGIN IMMEDIATE;\n{MIGRATIONS[target - 1]}\n"
                                       f"PRAGMA user_version = {target};\nCOMMIT;")
            except sqlite3.Error:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def _backup(self, dest: Path) -> None:
        """A full copy before a migration, so an upgrade can always be undone."""
        with sqlite3.connect(dest) as copy:
            self._db.backup(copy)
        copy.close()

    @contextmanager
    def transaction(self) -> Iterator["ClinicStore"]:
        """Group several calls into one commit (all or nothing), e.g. registering
        the patients of a batch; the calls inside join it."""
        with self._tx():
            yield self

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (re-entrant: nested calls join the outer one)."""
        with self._lock:
            if self._db is None:
                raise StoreError("the clinic database is closed")
            outer = self._depth == 0
            if outer:
                self._db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield self._db
            except BaseException:
                self._depth -= 1
                if outer:
                    self._db.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                self._db.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            if self._db is None:
                raise StoreError("the clinic database is closed")
            return self._db.execute(sql, params).fetchall()

    def _audit(self, db: sqlite3.Connection, user: str | None, action: str, entity: str,
               details: dict[str, Any] | None = None) -> None:
        db.execute("INSERT INTO audit_log (at, user, action, entity, details) VALUES (?, ?, ?, ?, ?)",
                   (_now(), user or default_user(), action, entity,
                    json.dumps(details or {}, sort_keys=True, default=str)))

    # ------------------------------------------------------------------ patients

    def upsert_patient(self, patient: Patient, user: str | None = None) -> None:
        """Create the patient or update their details (audited with what changed)."""
        new = {"name": patient.name, "birth_date": _iso(patient.birth_date), "sex": patient.sex,
               "diabetes_type": patient.diabetes_type, "diabetes_years": patient.diabetes_years}
        with self._tx() as db:
            old = db.execute("SELECT * FROM patients WHERE patient_id = ?", (patient.patient_id,)).fetchone()
            now = _now()
            if old is None:
                db.execute("INSERT INTO patients (patient_id, name, birth_date, sex, diabetes_type, "
                           "diabetes_years, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           (patient.patient_id, *new.values(), now, now))
                self._audit(db, user, "patient created", f"patient:{patient.patient_id}", new)
                return
            changed = {k: v for k, v in new.items() if old[k] != v}
            if changed:
                sets = ", ".join(f"{k} = ?" for k in changed)
                db.execute(f"UPDATE patients SET {sets}, updated_at = ? WHERE patient_id = ?",
                           (*changed.values(), now, patient.patient_id))
                self._audit(db, user, "patient updated", f"patient:{patient.patient_id}",
                            {k: {"from": old[k], "to": v} for k, v in changed.items()})

    def ensure_patient(self, patient_id: str, user: str | None = None) -> Patient:
        """The patient, created with only their ID when unknown (batch without a patient list)."""
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

    def find_patients(self, text: str = "", limit: int = 50) -> list[Patient]:
        """Patients whose ID or name contains ``text`` (case-insensitive), by ID."""
        like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self._query("SELECT * FROM patients WHERE patient_id LIKE ? ESCAPE '\\' "
                           "OR name LIKE ? ESCAPE '\\' ORDER BY patient_id LIMIT ?", (like, like, limit))
        return [_patient(r) for r in rows]

    # ------------------------------------------------------------------ encounters and images

    def start_encounter(self, patient_id: str, started_at: dt.datetime | None = None,
                        protocol: str = DEFAULT_PROTOCOL, source: str = "desk",
                        batch_key: str | None = None, user: str | None = None) -> str:
        """Open a visit for a known patient; returns the new encounter ID."""
        get_protocol(protocol)
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
        started = (started_at or dt.datetime.now()).replace(microsecond=0)
        encounter_id = uuid.uuid4().hex
        with self._tx() as db:
            if self.get_patient(patient_id) is None:
                raise ValueError(f"unknown patient {patient_id!r}: register the patient first")
            who = user or default_user()
            db.execute("INSERT INTO encounters (encounter_id, patient_id, started_at, protocol, source, "
                       "batch_key, created_by) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (encounter_id, patient_id, _iso(started), protocol, source, batch_key, who))
            self._audit(db, who, "encounter started", f"encounter:{encounter_id}",
                        {"patient_id": patient_id, "protocol": protocol, "source": source,
                         "batch_key": batch_key})
        return encounter_id

    def add_image(self, encounter_id: str, path: Path | str, sha256: str, eye: Eye = Eye.UNKNOWN,
                  user: str | None = None, copy: bool = True) -> int:
        """Attach a photograph to an encounter; returns its image ID.

        The image is recognised by ``sha256``: a photograph seen before reuses its
        row and stored copy, and attaching it twice to one encounter is a no-op.
        ``copy`` puts a copy in the managed image store (named by the hash) so the
        record survives the camera card being wiped. A file that could not be read
        at all (``sha256`` empty) still gets a row, so its error is on record.
        """
        stored = self._copy_into_store(Path(path), sha256) if (copy and sha256) else None
        return self._link_image(encounter_id, str(path), sha256, Eye(eye), user, stored)[0]

    def _link_image(self, encounter_id: str, path: str, sha256: str, eye: Eye, user: str | None,
                    stored: str | None) -> tuple[int, int]:
        """(image_id, encounter_image_id), creating what is missing."""
        with self._tx() as db:
            image_id = self._image_row(db, path, sha256, stored, user)
            link = db.execute("SELECT encounter_image_id FROM encounter_images WHERE encounter_id = ? "
                              "AND image_id = ?", (encounter_id, image_id)).fetchone()
            if link is not None:
                return image_id, int(link[0])
            cur = db.execute("INSERT INTO encounter_images (encounter_id, image_id, eye, original_path, added_at) "
                             "VALUES (?, ?, ?, ?, ?)", (encounter_id, image_id, eye.value, path, _now()))
            self._audit(db, user, "image added", f"encounter:{encounter_id}",
                        {"image_id": image_id, "eye": eye.value, "path": path})
            return image_id, int(cur.lastrowid)

    def _image_row(self, db: sqlite3.Connection, path: str, sha256: str, stored: str | None,
                   user: str | None) -> int:
        if sha256:
            row = db.execute("SELECT image_id, stored_name FROM images WHERE sha256 = ?", (sha256,)).fetchone()
            if row is not None:
                if stored and not row["stored_name"]:
                    db.execute("UPDATE images SET stored_name = ? WHERE image_id = ?", (stored, row["image_id"]))
                return int(row["image_id"])
        size = _file_size(Path(path))
        cur = db.execute("INSERT INTO images (sha256, original_path, stored_name, size_bytes, added_at) "
                         "VALUES (?, ?, ?, ?, ?)", (sha256 or None, path, stored, size, _now()))
        self._audit(db, user, "image stored", f"image:{cur.lastrowid}",
                    {"sha256": sha256, "path": path, "stored_name": stored})
        return int(cur.lastrowid)

    def _copy_into_store(self, source: Path, sha256: str) -> str | None:
        """Copy the file into the image store as ``ab/<sha256><suffix>`` (atomic; the
        bytes are checked against the hash so the store never holds a wrong copy)."""
        name = f"{sha256[:2]}/{sha256}{source.suffix.lower()}"
        dest = self.image_store / name
        if dest.is_file():
            return name
        try:
            data = source.read_bytes()
            if hashlib.sha256(data).hexdigest() != sha256:
                log.warning("%s changed while being screened; not copied into the image store", source)
                return None
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, dest)
            return name
        except OSError as exc:
            log.warning("could not copy %s into the image store: %s", source, exc)
            return None

    def image_file(self, sha256: str) -> Path | None:
        """The managed copy of a photograph, or None when there is none."""
        rows = self._query("SELECT stored_name FROM images WHERE sha256 = ?", (sha256,))
        if not rows or not rows[0]["stored_name"]:
            return None
        path = self.image_store / rows[0]["stored_name"]
        return path if path.is_file() else None

    # ------------------------------------------------------------------ results

    def save_result(self, encounter_id: str, result: EyeResult, model: ModelInfo, protocol_name: str,
                    operating_point: OperatingPoint | None = None, user: str | None = None,
                    copy: bool | None = None) -> int:
        """Record what the engine found for one photograph of an encounter, in one
        transaction (image row, link, result, audit); returns the result ID.

        Saving again for the same photograph, model and protocol replaces the
        earlier result instead of adding a second one. ``copy`` defaults to
        copying every file that could be read into the image store.
        """
        get_protocol(protocol_name)
        copy = (result.status is not Status.ERROR) if copy is None else copy
        stored = self._copy_into_store(Path(result.path), result.sha256) if (copy and result.sha256) else None
        with self._tx() as db:  # the file copy above happens outside the lock
            image_id, link_id = self._link_image(encounter_id, result.path, result.sha256, result.eye,
                                                 user, stored)
            values = _result_values(result, model, protocol_name, operating_point)
            cols = ", ".join(values)
            updates = ", ".join(f"{k} = excluded.{k}" for k in values)
            row = db.execute(
                f"INSERT INTO results (encounter_image_id, encounter_id, image_id, {cols}, created_at, created_by) "
                f"VALUES (?, ?, ?, {', '.join('?' * len(values))}, ?, ?) "
                f"ON CONFLICT (encounter_image_id, model_sha, protocol) DO UPDATE SET {updates}, "
                f"created_at = excluded.created_at, created_by = excluded.created_by RETURNING result_id",
                (link_id, encounter_id, image_id, *values.values(), _now(), user or default_user()),
            ).fetchone()
            result_id = int(row[0])
            self._audit(db, user, "result saved", f"result:{result_id}",
                        {"encounter_id": encounter_id, "status": result.status.value,
                         "queue": result.queue.value, "model": f"{model.name} {model.version}",
                         "protocol": protocol_name})
            return result_id

    def result_for(self, sha256: str, model_sha: str, protocol: str,
                   operating_point: str | None = None) -> EyeResult | None:
        """The newest result for this photograph by this model and protocol (and
        operating point, when named), so a photograph seen before need not be
        graded again; None when there is none. ERROR results are never reused:
        their cause (a failed read, a model failure) may have gone away."""
        if not sha256:
            return None
        sql = (_RESULT_SELECT + " WHERE i.sha256 = ? AND r.model_sha = ? AND r.protocol = ? AND r.status != 'error'"
               + (" AND r.op_name = ?" if operating_point else "") + " ORDER BY r.result_id DESC LIMIT 1")
        params = (sha256, model_sha, protocol) + ((operating_point,) if operating_point else ())
        rows = self._query(sql, params)
        return _eye_result(rows[0], heatmap=True) if rows else None

    # ------------------------------------------------------------------ queues

    def finish_encounter(self, encounter_id: str, queue: Queue, due_date: dt.date,
                         user: str | None = None) -> None:
        """Put the encounter in its queue with its due date. Calling it again (new
        results) updates queue and date but keeps state, slip and override."""
        queue = Queue(queue)
        with self._tx() as db:
            self._encounter_row(encounter_id)
            old = db.execute("SELECT queue, due_date FROM queue_state WHERE encounter_id = ?",
                             (encounter_id,)).fetchone()
            if old is not None and (old["queue"], old["due_date"]) == (queue.value, _iso(due_date)):
                return  # nothing changed: no write, no audit row
            db.execute("INSERT INTO queue_state (encounter_id, queue, due_date, updated_at) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (encounter_id) DO UPDATE SET queue = excluded.queue, "
                       "due_date = excluded.due_date, updated_at = excluded.updated_at",
                       (encounter_id, queue.value, _iso(due_date), _now()))
            self._audit(db, user, "encounter queued", f"encounter:{encounter_id}",
                        {"queue": queue.value, "due_date": _iso(due_date)})

    def set_state(self, encounter_id: str, state: str, user: str | None = None) -> None:
        """Move a queued encounter to open, referred or closed."""
        if state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}, not {state!r}")
        self._update_queue_state(encounter_id, user, "state changed", state=state)

    def mark_slip_printed(self, encounter_id: str, user: str | None = None) -> None:
        """Note that the referral slip was printed (shown in the queue views)."""
        self._update_queue_state(encounter_id, user, "slip printed", slip_printed_at=_now())

    def override_queue(self, encounter_id: str, queue: Queue, reason: str, user: str | None = None) -> None:
        """A clinician moves the encounter to another queue; the reason is required
        and the due date follows the new queue."""
        if not reason or not reason.strip():
            raise ValueError("a reason is required to override the queue")
        queue = Queue(queue)
        enc = self._encounter_row(encounter_id)
        started = _datetime(enc["started_at"]) or dt.datetime.now()
        due = get_protocol(enc["protocol"]).due_date(queue, started.date())
        self._update_queue_state(encounter_id, user, "queue overridden", override_queue=queue.value,
                                 override_reason=reason.strip(), override_due_date=_iso(due))

    def _update_queue_state(self, encounter_id: str, user: str | None, action: str, **changes: Any) -> None:
        with self._tx() as db:
            old = db.execute("SELECT * FROM queue_state WHERE encounter_id = ?", (encounter_id,)).fetchone()
            if old is None:
                self._encounter_row(encounter_id)
                raise ValueError(f"encounter {encounter_id} has not been queued yet: finish screening it first")
            sets = ", ".join(f"{k} = ?" for k in changes)
            db.execute(f"UPDATE queue_state SET {sets}, updated_at = ? WHERE encounter_id = ?",
                       (*changes.values(), _now(), encounter_id))
            self._audit(db, user, action, f"encounter:{encounter_id}",
                        {k: {"from": old[k], "to": v} for k, v in changes.items()})

    def _encounter_row(self, encounter_id: str) -> sqlite3.Row:
        rows = self._query("SELECT * FROM encounters WHERE encounter_id = ?", (encounter_id,))
        if not rows:
            raise KeyError(f"no encounter {encounter_id!r}")
        return rows[0]

    def encounter_summary(self, encounter_id: str) -> EncounterSummary:
        """Everything a referral slip or queue row needs about one visit, heat maps included."""
        self._encounter_row(encounter_id)
        return self.encounter_summaries([encounter_id], heatmaps=True)[0]

    def encounters(self, queue: Queue | None = None, state: str | None = None,
                   since: dt.date | dt.datetime | None = None, heatmaps: bool = False) -> list[EncounterSummary]:
        """Queued encounters, most pressing due date first, optionally filtered by
        (effective) queue, state and start date; ``heatmaps`` as for
        :meth:`encounter_summaries`."""
        where, params = ["1 = 1"], []
        if queue is not None:
            where.append("COALESCE(q.override_queue, q.queue) = ?")
            params.append(Queue(queue).value)
        if state is not None:
            where.append("q.state = ?")
            params.append(state)
        if since is not None:
            where.append("e.started_at >= ?")
            params.append(_iso(since))
        rows = self._query(
            "SELECT e.encounter_id FROM encounters e JOIN queue_state q USING (encounter_id) "
            f"WHERE {' AND '.join(where)} "
            "ORDER BY COALESCE(q.override_due_date, q.due_date), e.started_at, e.encounter_id", params)
        return self.encounter_summaries([r[0] for r in rows], heatmaps)

    def queue_counts(self, state: str | None = "open") -> dict[Queue, int]:
        """How many encounters wait in each queue (all four queues present)."""
        sql = "SELECT COALESCE(override_queue, queue) AS q, COUNT(*) FROM queue_state"
        rows = self._query(sql + (" WHERE state = ?" if state else "") + " GROUP BY q",
                           (state,) if state else ())
        counts = {q: 0 for q in Queue}
        counts.update({Queue(r[0]): int(r[1]) for r in rows})
        return counts

    def encounter_summaries(self, encounter_ids: Sequence[str], heatmaps: bool = False) -> list[EncounterSummary]:
        """Summaries of existing encounters in the given order, with three queries per
        500 encounters (queue views and batch reports list thousands). Stored heat
        maps are decoded only with ``heatmaps`` (slips want them; a queue view of
        thousands of eyes would spend ~40 us per eye on them)."""
        if not encounter_ids:
            return []
        out: list[EncounterSummary] = []
        for start in range(0, len(encounter_ids), 500):  # SQLite's parameter limit
            chunk = list(encounter_ids[start:start + 500])
            marks = ", ".join("?" * len(chunk))
            encs = {r["encounter_id"]: r for r in self._query(
                "SELECT e.*, q.queue, q.due_date, q.state, q.slip_printed_at, q.override_queue, "
                "q.override_reason, q.override_due_date FROM encounters e "
                f"LEFT JOIN queue_state q USING (encounter_id) WHERE e.encounter_id IN ({marks})", chunk)}
            patients = {r["patient_id"]: _patient(r) for r in self._query(
                f"SELECT * FROM patients WHERE patient_id IN ({', '.join('?' * len(encs))})",
                [e["patient_id"] for e in encs.values()])}
            results: dict[str, list[sqlite3.Row]] = {}
            for r in self._query(_RESULT_SELECT + f" WHERE r.encounter_id IN ({marks}) AND r.result_id = "
                                 "(SELECT MAX(result_id) FROM results x WHERE x.encounter_image_id = "
                                 "r.encounter_image_id) ORDER BY r.result_id", chunk):
                results.setdefault(r["encounter_id"], []).append(r)
            out += [_summary(encs[e], patients[encs[e]["patient_id"]], results.get(e, []), heatmaps)
                    for e in chunk]
        return out

    # ------------------------------------------------------------------ batches (resumable CLI runs)

    def begin_batch(self, batch_key: str, protocol: str, model_sha: str, inputs: Sequence[str],
                    user: str | None = None) -> bool:
        """Register a batch run; True when the key is new, False when resuming
        (or re-running) one already on record."""
        with self._tx() as db:
            if db.execute("SELECT 1 FROM batches WHERE batch_key = ?", (batch_key,)).fetchone():
                self._audit(db, user, "batch resumed", f"batch:{batch_key}")
                return False
            db.execute("INSERT INTO batches (batch_key, started_at, protocol, model_sha, inputs) "
                       "VALUES (?, ?, ?, ?, ?)", (batch_key, _now(), protocol, model_sha, json.dumps(list(inputs))))
            self._audit(db, user, "batch started", f"batch:{batch_key}", {"inputs": list(inputs)})
            return True

    def batch_started_at(self, batch_key: str) -> dt.datetime | None:
        """When the batch was first started (its encounters' start time)."""
        rows = self._query("SELECT started_at FROM batches WHERE batch_key = ?", (batch_key,))
        return _datetime(rows[0][0]) if rows else None

    def batch_encounter(self, batch_key: str, patient_id: str, protocol: str,
                        started_at: dt.datetime | None = None, user: str | None = None) -> str:
        """The batch's encounter for this patient, started on first use, so a
        resumed batch adds to the same visit instead of counting it twice."""
        with self._tx():
            rows = self._query("SELECT encounter_id FROM encounters WHERE batch_key = ? AND patient_id = ?",
                               (batch_key, patient_id))
            if rows:
                return str(rows[0][0])
            return self.start_encounter(patient_id, started_at, protocol, "batch", batch_key, user)

    def batch_done_files(self, batch_key: str) -> set[str]:
        """Files of the batch that already have a committed result."""
        return {r[0] for r in self._query("SELECT file FROM batch_files WHERE batch_key = ?", (batch_key,))}

    def record_batch_file(self, batch_key: str, file: str, encounter_id: str, result: EyeResult,
                          model: ModelInfo, protocol_name: str, operating_point: OperatingPoint | None = None,
                          user: str | None = None) -> int:
        """Save one file's result and mark it done in the batch, atomically."""
        with self._tx() as db:
            result_id = self.save_result(encounter_id, result, model, protocol_name, operating_point, user)
            db.execute("INSERT OR REPLACE INTO batch_files (batch_key, file, encounter_id, result_id) "
                       "VALUES (?, ?, ?, ?)", (batch_key, file, encounter_id, result_id))
            return result_id

    def batch_rows(self, batch_key: str) -> list[BatchFileRow]:
        """Every file of the batch with its result, in file order."""
        rows = self._query(
            "SELECT b.file AS batch_file, e.patient_id AS batch_patient, r.*, ei.eye AS link_eye, "
            "ei.original_path AS link_path, i.sha256 AS image_sha FROM batch_files b "
            "JOIN results r ON r.result_id = b.result_id "
            "JOIN encounter_images ei ON ei.encounter_image_id = r.encounter_image_id "
            "JOIN images i ON i.image_id = r.image_id JOIN encounters e ON e.encounter_id = b.encounter_id "
            "WHERE b.batch_key = ? ORDER BY b.file", (batch_key,))
        return [BatchFileRow(r["batch_file"], r["encounter_id"], r["batch_patient"], _eye_result(r)) for r in rows]

    def batch_encounters(self, batch_key: str) -> list[str]:
        """IDs of the batch's encounters, in the order they were started."""
        return [r[0] for r in self._query("SELECT encounter_id FROM encounters WHERE batch_key = ? "
                                          "ORDER BY rowid", (batch_key,))]

    def finish_batch(self, batch_key: str, user: str | None = None) -> None:
        """Mark the batch complete."""
        with self._tx() as db:
            db.execute("UPDATE batches SET finished_at = ? WHERE batch_key = ?", (_now(), batch_key))
            self._audit(db, user, "batch finished", f"batch:{batch_key}")

    # ------------------------------------------------------------------ audit

    def audit(self, entity: str | None = None, limit: int | None = None) -> list[AuditEntry]:
        """The audit log, oldest first: all of it, one entity (``"encounter:<id>"``)
        or one kind of entity (``"encounter"``)."""
        sql, params = "SELECT * FROM audit_log", []
        if entity:
            sql += " WHERE entity = ?" if ":" in entity else " WHERE entity LIKE ?"
            params.append(entity if ":" in entity else f"{entity}:%")
        sql += " ORDER BY audit_id"
        if limit:
            sql = f"SELECT * FROM ({sql.replace(' ORDER BY audit_id', ' ORDER BY audit_id DESC')} LIMIT ?) " \
                  "ORDER BY audit_id"
            params.append(limit)
        return [AuditEntry(r["audit_id"], dt.datetime.fromisoformat(r["at"]), r["user"], r["action"],
                           r["entity"], json.loads(r["details"])) for r in self._query(sql, params)]


# ---------------------------------------------------------------------- row <-> record


_RESULT_SELECT = (
    "SELECT r.*, ei.eye AS link_eye, ei.original_path AS link_path, i.sha256 AS image_sha "
    "FROM results r JOIN encounter_images ei ON ei.encounter_image_id = r.encounter_image_id "
    "JOIN images i ON i.image_id = r.image_id"
)


def _file_size(path: Path) -> int | None:
    try:
        return path.stat().st_size if path.is_file() else None
    except OSError:
        return None


def _result_values(result: EyeResult, model: ModelInfo, protocol: str,
                   op: OperatingPoint | None) -> dict[str, Any]:
    p, q, d = result.prediction, result.quality, result.decision
    return {
        "model_name": model.name, "model_version": model.version, "model_sha": model.sha256,
        "protocol": protocol, "op_name": op.name if op else None,
        "operating_point": json.dumps({"referable": op.referable, "urgent": op.urgent,
                                       "maculopathy": op.maculopathy}) if op else None,
        "status": result.status.value, "grade": result.grade,
        "probabilities": json.dumps(list(p.grade_probs)) if p else None,
        "p_referable": p.p_referable if p else None, "p_urgent": p.p_urgent if p else None,
        "p_maculopathy": p.p_maculopathy if p else None,
        "queue": result.queue.value, "code": d.code if d else "", "finding": d.finding if d else "",
        "message": result.message, "quality_reasons": json.dumps(list(q.reasons) if q else []),
        "quality_advice": q.advice if q else None,
        "quality_metrics": json.dumps(q.metrics) if q else None,
        "width": result.width, "height": result.height,
        "heatmap": encode_heatmap(result.heatmap) if result.status is Status.OK else None,
    }


def encode_heatmap(heatmap: Any) -> bytes | None:
    """A heat map in [0, 1] as a small grey PNG (about 2 KB), or None."""
    if heatmap is None:
        return None
    import cv2

    heat = np.nan_to_num(np.asarray(heatmap, np.float32)).clip(0.0, 1.0)
    if heat.ndim != 2 or min(heat.shape) < 1:
        return None
    small = cv2.resize(heat, (HEATMAP_SIDE, HEATMAP_SIDE), interpolation=cv2.INTER_AREA)
    ok, png = cv2.imencode(".png", np.round(small * 255).astype(np.uint8))
    return png.tobytes() if ok else None


def decode_heatmap(blob: bytes | None) -> np.ndarray | None:
    """The stored heat map as float32 in [0, 1], or None (none stored, or unreadable)."""
    if not blob:
        return None
    import cv2

    grey = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_GRAYSCALE)
    return None if grey is None else grey.astype(np.float32) / 255.0


def _eye_result(r: sqlite3.Row, heatmap: bool = False) -> EyeResult:
    """The result of one row; its stored heat map decoded only when asked for."""
    status = Status(r["status"])
    probs = json.loads(r["probabilities"]) if r["probabilities"] else None
    prediction = Prediction(tuple(probs), r["p_referable"], r["p_urgent"], r["p_maculopathy"]) if probs else None
    quality = None
    if r["quality_metrics"] is not None:
        quality = QualityReport(status, tuple(json.loads(r["quality_reasons"])), r["quality_advice"] or "",
                                json.loads(r["quality_metrics"]))
    return EyeResult(
        path=r["link_path"], eye=Eye(r["link_eye"]), status=status, message=r["message"],
        sha256=r["image_sha"] or "", quality=quality, prediction=prediction,
        decision=EyeDecision(Queue(r["queue"]), r["code"], r["finding"], r["grade"]),
        width=r["width"] or 0, height=r["height"] or 0, heatmap=decode_heatmap(r["heatmap"]) if heatmap else None,
    )


def _patient(r: sqlite3.Row) -> Patient:
    return Patient(r["patient_id"], r["name"], _date(r["birth_date"]), r["sex"], r["diabetes_type"],
                   r["diabetes_years"])


def _operating_point(r: sqlite3.Row) -> OperatingPoint | None:
    if not r["operating_point"]:
        return None
    v = json.loads(r["operating_point"])
    return OperatingPoint(r["op_name"] or "default", v["referable"], v["urgent"], v.get("maculopathy", 0.5))


def _summary(enc: sqlite3.Row, patient: Patient, rows: list[sqlite3.Row], heatmaps: bool) -> EncounterSummary:
    eyes = tuple(sorted((_eye_result(r, heatmaps) for r in rows), key=lambda e: _EYE_ORDER[e.eye]))
    protocol = get_protocol(enc["protocol"])
    started = _datetime(enc["started_at"]) or dt.datetime.now()
    queue = Queue(enc["override_queue"] or enc["queue"] or patient_queue(eyes).value)
    due = _date(enc["override_due_date"] or enc["due_date"]) or protocol.due_date(queue, started.date())
    last = rows[-1] if rows else None
    return EncounterSummary(
        encounter_id=enc["encounter_id"], patient=patient, started_at=started, eyes=eyes, queue=queue,
        due_date=due, action=protocol.action(queue), protocol_name=protocol.name,
        operating_point=_operating_point(last) if last else None,
        model=ModelInfo(last["model_name"], last["model_version"], last["model_sha"]) if last else None,
        state=enc["state"] or "open", override_reason=enc["override_reason"] or "",
        slip_printed_at=_datetime(enc["slip_printed_at"]),
    )
