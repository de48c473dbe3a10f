"""The batch ledger: which files of a resumable batch run are done, and in which encounter."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Sequence

from ..roles import Action
from ..protocol import get_protocol
from ..records import EyeResult, ModelInfo, OperatingPoint
from .base import _datetime, _now
from .results import ResultStore
from .rows import _eye_result


@dataclass(frozen=True)
class BatchFileRow:
    """One file of a batch as recorded: what results.csv and the summary are built from."""

    file: str
    encounter_id: str
    patient_id: str
    result: EyeResult


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
        self.require(Action.SCREEN)
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
        """Save one file's result, queue its encounter and mark the file done in the
        batch, atomically; the photograph is copied into the image store first,
        outside the write lock, so the window's reads never wait on a file copy."""
        self.require(Action.SCREEN)
        get_protocol(protocol_name)
        stored = self._stored_copy(result, None)
        with self._tx() as db:
            result_id = self._save_result_locked(encounter_id, result, model, protocol_name, operating_point, user,
                                                 stored)
            db.execute("INSERT INTO batch_files (batch_key, file, encounter_id, result_id) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (batch_key, file) DO UPDATE SET encounter_id = excluded.encounter_id, "
                       "result_id = excluded.result_id", (batch_key, file, encounter_id, result_id))
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
        """IDs of the batch's encounters, in the order they were started (SQLite's
        rowid; a server has none, so there by start time, then ID)."""
        order = "rowid" if self.dialect == "sqlite" else "started_at, encounter_id"
        return [r[0] for r in self._query("SELECT encounter_id FROM encounters WHERE batch_key = ? "
                                          f"ORDER BY {order}", (batch_key,))]

    def finish_batch(self, batch_key: str, user: str | None = None) -> None:
        """Mark the batch complete."""
        self.require(Action.SCREEN)
        with self._tx() as db:
            db.execute("UPDATE batches SET finished_at = ? WHERE batch_key = ?", (_now(), batch_key))
            self._audit(db, user, "batch finished", f"batch:{batch_key}")

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
                return dt.datetime.fromisoformat(row[0])
            now = dt.datetime.now().replace(microsecond=0)
            db.execute("INSERT INTO watched_folders (folder, since) VALUES (?, ?)", (folder, now.isoformat()))
            self._audit(db, None, "camera folder watched", f"folder:{folder}", {"since": now.isoformat()})
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
