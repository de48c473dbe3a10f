"""The audit log as a hash chain: an entry edited, removed or added behind the
application's back is found by :func:`verify` (issue 21).

Each entry carries ``prev_hash`` (the previous entry's hash) and ``entry_hash``
(SHA-256 over ``prev_hash`` and the entry's own fields). Editing an entry breaks
its own hash; deleting one breaks the next entry's link. Deleting entries from
the end leaves a shorter chain that is still whole, so a chain head is kept
apart (``audit_head``: how many entries, the last hash) and checked too.

Entries are appended one at a time across workstations: every write transaction
already takes the store's write lock (SQLite ``BEGIN IMMEDIATE``, a PostgreSQL
advisory lock), and on PostgreSQL the head row is also read ``FOR UPDATE``, so
two workstations can never chain onto the same previous entry.

Entries written while the database had no accounts (including those kept from
before the upgrade) are marked :data:`BEFORE_ACCOUNTS`: their ``user`` is the
operating-system user, not a signed-in person. They are chained all the same.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .engine import Db

BEFORE_ACCOUNTS = "before accounts"
"""``audit_log.era`` of an entry written when the database had no accounts."""

GENESIS = "0" * 64
"""The ``prev_hash`` of the first entry."""

FIELDS = ("at", "user", "action", "entity", "details", "workstation", "era")
"""The columns an entry's hash covers (besides ``prev_hash``)."""


def utc_now() -> dt.datetime:
    """Now, timezone-aware UTC: what an audit entry's time is written in."""
    return dt.datetime.now(dt.UTC)


def entry_hash(prev_hash: str, entry: Any) -> str:
    """SHA-256 (hex) of the previous hash and the entry's :data:`FIELDS`, as one
    canonical JSON text: the one definition the writer, the upgrade and the check share."""
    text = json.dumps([prev_hash, *[entry[f] if entry[f] is not None else "" for f in FIELDS]],
                      ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _head(db: Db, dialect: str) -> tuple[int, str]:
    lock = " FOR UPDATE" if dialect == "postgresql" else ""
    row = db.execute(f"SELECT entries, last_hash FROM audit_head WHERE head_id = 1{lock}").fetchone()
    return (int(row[0]), str(row[1])) if row else (0, GENESIS)


def _set_head(db: Db, entries: int, last_hash: str) -> None:
    db.execute("INSERT INTO audit_head (head_id, entries, last_hash) VALUES (1, ?, ?) "
               "ON CONFLICT (head_id) DO UPDATE SET entries = excluded.entries, last_hash = excluded.last_hash",
               (entries, last_hash))


def append(db: Db, dialect: str, entry: Mapping[str, Any]) -> str:
    """Chain ``entry`` (the :data:`FIELDS`) onto the log in the caller's write
    transaction and move the head; returns its hash."""
    entries, prev = _head(db, dialect)
    digest = entry_hash(prev, entry)
    db.execute('INSERT INTO audit_log (at, "user", action, entity, details, workstation, era, prev_hash, entry_hash) '
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (*[entry[f] for f in FIELDS], prev, digest))
    _set_head(db, entries + 1, digest)
    return digest


def rechain(db: Db) -> int:
    """Chain every entry already in the log, oldest first, and set the head (the
    upgrade that introduces the chain); returns how many."""
    prev, count = GENESIS, 0
    rows = db.execute('SELECT audit_id, at, "user", action, entity, details, workstation, era '
                      "FROM audit_log ORDER BY audit_id").fetchall()
    for row in rows:
        digest = entry_hash(prev, row)
        db.execute("UPDATE audit_log SET prev_hash = ?, entry_hash = ? WHERE audit_id = ?",
                   (prev, digest, row[0]))
        prev, count = digest, count + 1
    _set_head(db, count, prev)
    return count


@dataclass(frozen=True)
class ChainCheck:
    """What :func:`verify` found: ``broken_at`` is the first entry whose link or
    hash is wrong (None when the chain is whole), ``problem`` says it in words."""

    entries: int
    before_accounts: int
    broken_at: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        """Whether the chain and its head agree entry for entry."""
        return not self.problem


def verify(rows: Iterable[Any], head: tuple[int, str] | None) -> ChainCheck:
    """Walk the log oldest first: each entry must link to the one before and hash
    to what it says; the last must be the head (so entries removed from the end show)."""
    prev, count, before = GENESIS, 0, 0
    for row in rows:
        audit_id = int(row["audit_id"])
        if row["prev_hash"] != prev:
            return ChainCheck(count, before, audit_id, f"entry {audit_id} does not follow the entry before it "
                              "(an entry before it was removed or changed)")
        if entry_hash(prev, row) != row["entry_hash"]:
            return ChainCheck(count, before, audit_id, f"entry {audit_id} was changed after it was written")
        prev, count = str(row["entry_hash"]), count + 1
        before += row["era"] == BEFORE_ACCOUNTS
    entries, last = head if head is not None else (0, GENESIS)
    if (count, prev) != (entries, last):
        return ChainCheck(count, before, None, f"the log ends after {count} entries but its head records "
                          f"{entries}: entries were removed from the end (or the head was changed)")
    return ChainCheck(count, before)
