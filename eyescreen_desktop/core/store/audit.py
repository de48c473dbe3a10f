"""The audit log: who did what to which record, and when."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from .base import StoreBase, _datetime


@dataclass(frozen=True)
class AuditEntry:
    """One line of the audit log: who did what to which record, and when."""

    audit_id: int
    at: dt.datetime   # timezone-aware, local time (kept in UTC)
    user: str
    action: str
    entity: str
    details: dict[str, Any]


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
                           r["entity"], json.loads(r["details"])) for r in self._query(sql, params)]

    def record_photo_check(self, patient_id: str, details: dict[str, Any], user: str | None = None) -> None:
        """Keep what the photograph checks (core.photo_fit: other eye, other patient)
        warned about and what staff answered (store anyway / change eye / cancel),
        so a photograph filed against a warning can be traced to who decided."""
        with self._tx() as db:
            self._audit(db, user, "photograph check answered", f"patient:{patient_id}", details)
