"""Several workstations on one clinic database (issue 14).

* encounters.visit_day with a unique (patient_id, visit_day): one desk visit per
  patient per day, whichever workstation starts it first (insert-on-conflict,
  not a check-then-insert race);
* queue_state.version: a row version, so the second of two conflicting changes
  to a patient's queue entry is refused instead of silently overwriting the first;
* audit_log.workstation: the machine a change came from, beside the user;
* batch_claims: which process screens which photograph of a batch, so two
  workstations on the same folder screen each photograph once.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("encounters", sa.Column("visit_day", sa.Text))
    op.create_index("encounters_patient_day", "encounters", ["patient_id", "visit_day"], unique=True,
                    sqlite_where=sa.text("visit_day IS NOT NULL"),
                    postgresql_where=sa.text("visit_day IS NOT NULL"))
    op.add_column("queue_state", sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("0")))
    op.add_column("audit_log", sa.Column("workstation", sa.Text, nullable=False, server_default=sa.text("''")))
    op.create_table(
        "batch_claims",
        sa.Column("batch_key", sa.Text, primary_key=True),
        sa.Column("file", sa.Text, primary_key=True),
        sa.Column("claimed_by", sa.Text, nullable=False),   # "host:pid"
        sa.Column("claimed_at", sa.Text, nullable=False),
    )


def downgrade() -> None:
    raise NotImplementedError("restore the backup copy made before the upgrade")
