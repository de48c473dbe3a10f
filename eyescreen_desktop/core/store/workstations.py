"""Several workstations on one clinic database: what keeps them from stepping on
each other (issue 14).

* **One visit per patient per day.** :meth:`day_encounter` inserts the day's
  encounter with ``ON CONFLICT DO NOTHING`` on the unique (patient, visit day):
  two capture rooms registering the same patient at once get the same visit.
* **No silent overwrite of a queue change.** Each queue entry carries a row
  version (``EncounterSummary.version``); a change made with the version its
  author saw is refused with :class:`QueueConflict` (holding the current state)
  when someone else changed the entry meanwhile, and the refusal is audited.
* **Each photograph of a shared batch screened once.** :meth:`claim_batch_file`
  is an insert-on-conflict ledger: the process whose claim row is inserted
  screens the file; a claim of a process that died (same machine, its process
  gone; or older than :data:`CLAIM_LEASE_S`) can be taken over.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from typing import Any

from ..roles import Action
from ..protocol import DEFAULT_PROTOCOL, get_protocol
from ..records import EncounterSummary
from .base import _datetime, _iso
from .engine import Db
from .queue_views import QueueViews

CLAIM_LEASE_S = 600
"""A claim older than this (seconds) is taken to be abandoned: a machine that
screens one photograph in well under a second never holds one that long."""


def workstation() -> str:
    """This machine's name, as the audit log records it beside the user."""
    return socket.gethostname() or "unknown"


def claimant() -> str:
    """``host:pid`` of this process, as a batch claim names it."""
    return f"{workstation()}:{os.getpid()}"


def _alive(claimed_by: str) -> bool:
    """False when the claim is this machine's and its process is gone."""
    host, _, pid = claimed_by.rpartition(":")
    if host != workstation() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class QueueConflict(Exception):
    """Someone changed this patient's queue entry after you read it: nothing was
    written; ``current`` is the entry as it is now."""

    def __init__(self, current: EncounterSummary, action: str):
        self.current = current
        super().__init__(f"{current.patient.patient_id}'s visit was changed on another workstation while you "
                         f"were looking at it (now: {current.queue.value}, {current.state}); your change "
                         f"({action}) was not saved: look at it again and redo it if still needed")


class SharedClinic(QueueViews):
    """The parts of the store that several workstations need."""

    def day_encounter(self, patient_id: str, day: dt.date | None = None, protocol: str = DEFAULT_PROTOCOL,
                      user: str | None = None) -> str:
        """The patient's desk visit of ``day`` (today): started by whichever
        workstation asks first, found by every other one."""
        self.require(Action.SCREEN)
        get_protocol(protocol)
        day = day or self.today()
        started = dt.datetime.combine(day, self.now_local().timetz())
        with self._tx() as db:
            if self.get_patient(patient_id) is None:
                raise ValueError(f"unknown patient {patient_id!r}: register the patient first")
            who = self._who(user)
            encounter_id = os.urandom(16).hex()
            made = db.execute(
                "INSERT INTO encounters (encounter_id, patient_id, started_at, protocol, source, created_by, "
                "visit_day) VALUES (?, ?, ?, ?, 'desk', ?, ?) ON CONFLICT (patient_id, visit_day) "
                "WHERE visit_day IS NOT NULL DO NOTHING RETURNING encounter_id",
                (encounter_id, patient_id, _iso(started), protocol, who, day.isoformat())).fetchone()
            if made is None:
                return str(db.execute("SELECT encounter_id FROM encounters WHERE patient_id = ? AND visit_day = ?",
                                      (patient_id, day.isoformat())).fetchone()[0])
            self._audit(db, who, "encounter started", f"encounter:{encounter_id}",
                        {"patient_id": patient_id, "protocol": protocol, "source": "desk",
                         "visit_day": day.isoformat()})
            return encounter_id

    def _changed_meanwhile(self, db: Db, encounter_id: str, expected_version: int | None, user: str | None,
                           action: str, wanted: dict[str, Any]) -> bool:
        """True (and the refusal audited) when the entry's version is no longer ``expected_version``."""
        if expected_version is None:
            return False
        row = db.execute("SELECT version FROM queue_state WHERE encounter_id = ?", (encounter_id,)).fetchone()
        if row is None or int(row[0]) == int(expected_version):
            return False
        self._audit(db, user, "change refused: changed meanwhile", f"encounter:{encounter_id}",
                    {"wanted": action, "changes": wanted, "seen_version": expected_version,
                     "current_version": int(row[0])})
        return True

    def _refuse(self, encounter_id: str, action: str) -> None:
        raise QueueConflict(self.encounter_summary(encounter_id), action)

    def claim_batch_file(self, batch_key: str, file: str, by: str | None = None) -> bool:
        """Claim one photograph of a batch for this process (``by``: its
        :func:`claimant` name); False when another live process holds it (or it
        is done). Insert-on-conflict: two processes can never both win the same file."""
        self.require(Action.SCREEN)
        me = by or claimant()
        with self._tx() as db:
            won = db.execute("INSERT INTO batch_claims (batch_key, file, claimed_by, claimed_at) "
                             "VALUES (?, ?, ?, ?) ON CONFLICT (batch_key, file) DO NOTHING RETURNING file",
                             (batch_key, file, me, self._now())).fetchone()
            if won is not None:
                return True
            held = db.execute("SELECT claimed_by, claimed_at FROM batch_claims WHERE batch_key = ? AND file = ?",
                              (batch_key, file)).fetchone()
            if held["claimed_by"] == me:
                return True
            done = db.execute("SELECT 1 FROM batch_files WHERE batch_key = ? AND file = ?",
                              (batch_key, file)).fetchone()
            stale = _datetime(held["claimed_at"]) < self.clock.now() - dt.timedelta(  # type: ignore[operator]  # claimed_at is NOT NULL
                seconds=CLAIM_LEASE_S)
            if done is not None or (_alive(held["claimed_by"]) and not stale):
                return False
            db.execute("UPDATE batch_claims SET claimed_by = ?, claimed_at = ? WHERE batch_key = ? AND file = ? "
                       "AND claimed_by = ?", (me, self._now(), batch_key, file, held["claimed_by"]))
            self._audit(db, None, "batch file re-claimed", f"batch:{batch_key}",
                        {"file": file, "from": held["claimed_by"]})
            return True
