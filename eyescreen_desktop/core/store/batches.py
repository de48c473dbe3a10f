"""The batch ledger: which files of a resumable batch run are done, and in which encounter."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any, Sequence

from ..roles import Action
from ..protocol import get_protocol
from ..records import EyeResult, ModelInfo, OperatingPoint, Status
from .base import _datetime, _iso
from .results import ResultStore
from .rows import _eye_result, _result_values


@dataclass(frozen=True)
class BatchFileRow:
    """One file of a batch as recorded: what results.csv and the summary are built from."""

    file: str
    encounter_id: str
    patient_id: str
    result: EyeResult
    model: ModelInfo | None = None      # the model recorded with the result (None: not known)


@dataclass(frozen=True)
class InterruptedBatch:
    """A folder batch started and never finished (EyeScreen quit or died, or it was cancelled)."""

    batch_key: str
    started_at: dt.datetime
    inputs: tuple[str, ...]
    protocol: str
    files_done: int


class BatchLedger(ResultStore):
    """Resumable batch runs (``eyescreen screen``, the hot folder): their files and encounters."""

    def begin_batch(self, batch_key: str, protocol: str, model_sha: str, inputs: Sequence[str],
                    user: str | None = None) -> bool:
        """Register a batch run; True when the key is new, False when resuming
        (or re-running) one already on record."""
        self.require(Action.SCREEN)
        with self._tx() as db:
            if db.execute("SELECT 1 FROM batches WHERE batch_key = ?", (batch_key,)).fetchone():
                self._audit(db, user, "batch resumed", f"batch:{batch_key}")
                return False
            db.execute("INSERT INTO batches (batch_key, started_at, protocol, model_sha, inputs) "
                       "VALUES (?, ?, ?, ?, ?)", (batch_key, self._now(), protocol, model_sha, json.dumps(list(inputs))))
            self._audit(db, user, "batch started", f"batch:{batch_key}", {"inputs": list(inputs)})
            return True

    def batch_started_at(self, batch_key: str) -> dt.datetime | None:
        """When the batch was first started (its encounters' start time)."""
        rows = self._query("SELECT started_at FROM batches WHERE batch_key = ?", (batch_key,))
        return _datetime(rows[0][0]) if rows else None

    def batch_encounter(self, batch_key: str, patient_id: str, protocol: str,
                        started_at: dt.datetime | None = None, user: str | None = None) -> str:
        """The patient's visit of the batch's day: the batch's own encounter when it has
        one (a resumed batch adds to it), else the visit of that day whichever folder,
        batch, workstation or desk started it (one patient, one visit a day), else a
        new one claiming the day, so a copy of a folder never makes a second visit."""
        self.require(Action.SCREEN)
        get_protocol(protocol)
        started = (started_at or self.now_local()).replace(microsecond=0)
        day = started.astimezone().date().isoformat()   # the clinic's (local) day
        with self._tx() as db:
            rows = self._query("SELECT encounter_id FROM encounters WHERE batch_key = ? AND patient_id = ?",
                               (batch_key, patient_id))
            if rows:
                return str(rows[0][0])
            found = self._day_visit(patient_id, day)
            if found is not None:
                return found
            if self.get_patient(patient_id) is None:
                raise ValueError(f"unknown patient {patient_id!r}: register the patient first")
            who = self._who(user)   # the signed-in person, as the audit entry names
            made = db.execute(
                "INSERT INTO encounters (encounter_id, patient_id, started_at, protocol, source, batch_key, "
                "created_by, visit_day) VALUES (?, ?, ?, ?, 'batch', ?, ?, ?) ON CONFLICT (patient_id, visit_day) "
                "WHERE visit_day IS NOT NULL DO NOTHING RETURNING encounter_id",
                (uuid.uuid4().hex, patient_id, _iso(started), protocol, batch_key, who, day)).fetchone()
            if made is None:            # another workstation started the day's visit meanwhile
                return str(self._day_visit(patient_id, day))
            self._audit(db, who, "encounter started", f"encounter:{made[0]}",
                        {"patient_id": patient_id, "protocol": protocol, "source": "batch",
                         "batch_key": batch_key, "visit_day": day})
            return str(made[0])

    def _day_visit(self, patient_id: str, day: str) -> str | None:
        """The patient's encounter of ``day`` (ISO date): the one holding the day, else
        the first started that day by an older version (no visit day recorded)."""
        rows = self._query("SELECT encounter_id FROM encounters WHERE patient_id = ? AND visit_day = ?",
                           (patient_id, day))
        if not rows:
            rows = self._query("SELECT encounter_id FROM encounters WHERE patient_id = ? AND visit_day IS NULL "
                               "AND started_at LIKE ? ORDER BY started_at, encounter_id", (patient_id, f"{day}%"))
        return str(rows[0][0]) if rows else None

    def batch_done_files(self, batch_key: str) -> set[str]:
        """Files of the batch that already have a committed result."""
        return {r[0] for r in self._query("SELECT file FROM batch_files WHERE batch_key = ?", (batch_key,))}

    def record_batch_file(self, batch_key: str, file: str, encounter_id: str, result: EyeResult,
                          model: ModelInfo, protocol_name: str, operating_point: OperatingPoint | None = None,
                          user: str | None = None) -> int:
        """Save one file's result, queue its encounter and mark the file done in the
        batch, atomically; the photograph is copied into the image store first,
        outside the write lock, so the window's reads never wait on a file copy.

        A photograph the patient already has on record, judged the same way (same
        SHA-256 from any folder or path, same model, protocol and thresholds), is
        recognised: the file is marked done with the result on record and nothing is
        saved or re-queued, so a copy of a folder screened again changes no visit (and
        never undoes what staff did to it). Judged another way (a new model or the
        clinic's new operating point), it is a new result, as a batch's own resume is."""
        self.require(Action.SCREEN)
        get_protocol(protocol_name)
        with self._tx() as db:
            known = self._known_photo(encounter_id, result, _result_values(result, model, protocol_name,
                                                                            operating_point))
            if known is not None:
                self._mark_batch_file(db, batch_key, file, *known)
                self._audit(db, user, "photograph already on record", f"encounter:{known[0]}",
                            {"batch_key": batch_key, "file": file, "sha256": result.sha256})
                return known[1]
        stored = self._stored_copy(result, None)
        with self._tx() as db:
            result_id = self._save_result_locked(encounter_id, result, model, protocol_name, operating_point, user,
                                                 stored)
            self._mark_batch_file(db, batch_key, file, encounter_id, result_id)
            return result_id

    def _known_photo(self, encounter_id: str, result: EyeResult, judged: dict[str, Any]) -> tuple[str, int] | None:
        """(encounter, newest result) of this photograph among the encounter's patient's
        visits, this encounter first, judged as ``judged`` says (model, protocol and
        thresholds: :func:`_result_values`); None when it is new to the patient, or was
        judged another way (or only an unreadable-file result is on record: tried again)."""
        if not result.sha256 or result.status is Status.ERROR:
            return None
        rows = self._query(
            "SELECT r.encounter_id, r.result_id FROM results r JOIN images i ON i.image_id = r.image_id "
            "JOIN encounters e ON e.encounter_id = r.encounter_id WHERE i.sha256 = ? AND r.status != 'error' "
            "AND e.patient_id = (SELECT patient_id FROM encounters WHERE encounter_id = ?) "
            "AND r.model_sha = ? AND r.protocol = ? AND COALESCE(r.operating_point, '') = ? "
            "ORDER BY CASE WHEN r.encounter_id = ? THEN 0 ELSE 1 END, r.result_id DESC",
            (result.sha256, encounter_id, judged["model_sha"], judged["protocol"], judged["operating_point"] or "",
             encounter_id))
        return (str(rows[0][0]), int(rows[0][1])) if rows else None

    def _mark_batch_file(self, db: Any, batch_key: str, file: str, encounter_id: str, result_id: int) -> None:
        db.execute("INSERT INTO batch_files (batch_key, file, encounter_id, result_id) VALUES (?, ?, ?, ?) "
                   "ON CONFLICT (batch_key, file) DO UPDATE SET encounter_id = excluded.encounter_id, "
                   "result_id = excluded.result_id", (batch_key, file, encounter_id, result_id))

    def batch_rows(self, batch_key: str) -> list[BatchFileRow]:
        """Every file of the batch with its result, in file order."""
        rows = self._query(
            "SELECT b.file AS batch_file, e.patient_id AS batch_patient, r.*, ei.eye AS link_eye, "
            "ei.original_path AS link_path, i.sha256 AS image_sha FROM batch_files b "
            "JOIN results r ON r.result_id = b.result_id "
            "JOIN encounter_images ei ON ei.encounter_image_id = r.encounter_image_id "
            "JOIN images i ON i.image_id = r.image_id JOIN encounters e ON e.encounter_id = b.encounter_id "
            "WHERE b.batch_key = ? ORDER BY b.file", (batch_key,))
        return [BatchFileRow(r["batch_file"], r["encounter_id"], r["batch_patient"], _eye_result(r),
                             ModelInfo(r["model_name"], r["model_version"], r["model_sha"])) for r in rows]

    def batch_encounters(self, batch_key: str) -> list[str]:
        """IDs of the batch's encounters: those it started, in the order they were
        started (SQLite's rowid; a server has none, so there by start time, then ID),
        then the visits its files joined (started by the desk or another batch)."""
        order = "rowid" if self.dialect == "sqlite" else "started_at, encounter_id"
        own = [r[0] for r in self._query("SELECT encounter_id FROM encounters WHERE batch_key = ? "
                                         f"ORDER BY {order}", (batch_key,))]
        joined = [r[0] for r in self._query("SELECT encounter_id, MIN(result_id) AS first FROM batch_files "
                                            "WHERE batch_key = ? GROUP BY encounter_id ORDER BY first",
                                            (batch_key,))]
        return list(dict.fromkeys([*own, *joined]))

    def finish_batch(self, batch_key: str, user: str | None = None) -> None:
        """Mark the batch complete."""
        self.require(Action.SCREEN)
        with self._tx() as db:
            db.execute("UPDATE batches SET finished_at = ? WHERE batch_key = ?", (self._now(), batch_key))
            self._audit(db, user, "batch finished", f"batch:{batch_key}")

    def interrupted_batches(self) -> list[InterruptedBatch]:
        """Folder batches on record that never finished, newest first, with how many files
        are done: after a relaunch the window offers to resume them (screening the same
        folder again picks up where it stopped). Camera-folder batches ("hot-") never
        finish by design and are not listed."""
        rows = self._query(
            "SELECT b.batch_key, b.started_at, b.inputs, b.protocol, "
            "(SELECT COUNT(*) FROM batch_files f WHERE f.batch_key = b.batch_key) AS done "
            "FROM batches b WHERE b.finished_at IS NULL AND b.batch_key NOT LIKE 'hot-%' "
            "ORDER BY b.started_at DESC, b.batch_key")
        return [InterruptedBatch(str(r[0]), _datetime(str(r[1])), tuple(json.loads(r[2])), str(r[3]),
                                 int(r[4])) for r in rows]

    # ------------------------------------------------------------------ watched camera folders

    def watch_folder_since(self, folder: str) -> dt.datetime:
        """Since when ``folder`` (a resolved path) is watched as a camera folder,
        recorded on the first call: photographs older than this were there before
        and are left to "Screen folder"; newer ones, even those that arrived while
        EyeScreen was closed, are screened."""
        self.require(Action.SCREEN)
        with self._tx() as db:
            row = db.execute("SELECT since FROM watched_folders WHERE folder = ?", (folder,)).fetchone()
            if row is not None:
                return _datetime(row[0])  # type: ignore[return-value]  # NOT NULL column
            now = self.now_local()
            db.execute("INSERT INTO watched_folders (folder, since) VALUES (?, ?)", (folder, _iso(now)))
            self._audit(db, None, "camera folder watched", f"folder:{folder}", {"since": _iso(now)})
            return now

    def hot_folder_done(self, folder: str, files: Sequence[str]) -> set[str]:
        """Which of ``files`` (names relative to the watched ``folder``) have a result
        on record in any of the folder's camera batches: the database, not memory,
        says what is still to do, so a failed or interrupted job is retried."""
        inputs = json.dumps([folder])
        done: set[str] = set()
        for start in range(0, len(files), 500):
            chunk = list(files[start:start + 500])
            done.update(r[0] for r in self._query(
                "SELECT f.file FROM batches b JOIN batch_files f USING (batch_key) WHERE b.inputs = ? "
                f"AND b.batch_key LIKE 'hot-%' AND f.file IN ({', '.join('?' * len(chunk))})", (inputs, *chunk)))
        return done
