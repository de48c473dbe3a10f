"""The audit log: who did what to which record, when and from which workstation;
checked as a hash chain (:mod:`.chain`) and exported as CSV."""

from __future__ import annotations

import csv
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..roles import Action
from .base import StoreBase, _datetime
from .chain import ChainCheck, verify

CSV_COLUMNS = ("audit_id", "at", "user", "workstation", "action", "entity", "details", "era",
               "prev_hash", "entry_hash")


@dataclass(frozen=True)
class AuditEntry:
    """One line of the audit log: who did what to which record, and when
    (``era`` is "before accounts" for entries written without sign-in)."""

    audit_id: int
    at: dt.datetime   # timezone-aware, local time (kept in UTC)
    user: str
    action: str
    entity: str
    details: dict[str, Any]
    workstation: str = ""
    era: str = ""


class AuditLog(StoreBase):
    """Reading the audit log (rows are written by every change, in its transaction)."""

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
        return [AuditEntry(r["audit_id"], _datetime(r["at"]), r["user"], r["action"],
                           r["entity"], json.loads(r["details"]), r["workstation"], r["era"])
                for r in self._query(sql, params)]

    def verify_audit(self) -> ChainCheck:
        """Check the whole chain and its head (shows no patient data, so needs no sign-in)."""
        with self._lock:
            rows = self._query("SELECT * FROM audit_log ORDER BY audit_id")
            head = self._query("SELECT entries, last_hash FROM audit_head WHERE head_id = 1")
        return verify(rows, (int(head[0][0]), str(head[0][1])) if head else None)

    def export_audit(self, out: Path) -> int:
        """Write the whole log as CSV (it names patients: coordinators only); returns the rows written."""
        self.require(Action.EXPORT)
        rows = self._query("SELECT * FROM audit_log ORDER BY audit_id")
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(CSV_COLUMNS)
            writer.writerows([r[c] for c in CSV_COLUMNS] for r in rows)
        with self._tx() as db:
            self._audit(db, None, "audit log exported", "audit", {"rows": len(rows), "to": str(out)})
        return len(rows)

    def record_photo_check(self, patient_id: str, details: dict[str, Any], user: str | None = None) -> None:
        """Keep what the photograph checks (core.photo_fit: other eye, other patient)
        warned about and what staff answered (store anyway / change eye / cancel),
        so a photograph filed against a warning can be traced to who decided."""
        with self._tx() as db:
            self._audit(db, user, "photograph check answered", f"patient:{patient_id}", details)
