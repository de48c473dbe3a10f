"""Timestamps in UTC (issue 19).

Before this revision the store wrote naive local times (``2026-03-14T09:05:00``).
They order the audit log and compare batch-claim leases between workstations,
which breaks across time zones and at the change to or from summer time. From
here every moment is kept as ISO 8601 in UTC with its offset
(``2026-03-14T08:05:00+00:00``), and shown in local time on screen.

Existing rows are converted by reading each naive text as the local time of the
machine that runs the upgrade (the workstation that wrote them, in a clinic with
one time zone); a text that already carries an offset is left alone. Dates
(``visit_day``, ``due_date``, ``birth_date``) are calendar days and stay as they are.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

MOMENTS: dict[str, tuple[str, ...]] = {
    "patients": ("created_at", "updated_at"),
    "encounters": ("started_at",),
    "images": ("added_at",),
    "encounter_images": ("added_at",),
    "results": ("created_at",),
    "queue_state": ("slip_printed_at", "slip_saved_at", "updated_at"),
    "missing_eyes": ("recorded_at",),
    "batches": ("started_at", "finished_at"),
    "batch_claims": ("claimed_at",),
    "watched_folders": ("since",),
    "audit_log": ("at",),
}
"""Every column that holds a moment (not a calendar date), by table."""


def to_utc(text: str) -> str:
    """A stored moment as UTC text; a naive one is read as this machine's local time.
    Text that is no moment at all (hand-edited, or a test's placeholder) is kept as it is."""
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return text
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment.astimezone(dt.timezone.utc).replace(microsecond=0).isoformat()


def upgrade() -> None:
    conn = op.get_bind()
    for table, columns in MOMENTS.items():
        for column in columns:
            # the quoted name: "at" and "since" are words PostgreSQL reserves in places
            quoted = conn.dialect.identifier_preparer.quote(column)
            values = conn.execute(sa.text(f"SELECT DISTINCT {quoted} FROM {table} WHERE {quoted} IS NOT NULL")).scalars()
            changes = [{"old": v, "new": to_utc(v)} for v in values if to_utc(v) != v]
            if changes:
                conn.execute(sa.text(f"UPDATE {table} SET {quoted} = :new WHERE {quoted} = :old"), changes)


def downgrade() -> None:
    raise NotImplementedError("restore the backup copy made before the upgrade")
