"""A grader's raised outcome (issue 22): the outcome follows from the grades by the
clinic's protocol, and a grader may only raise it, with a reason.

* raised_outcomes: one grader's raise of one encounter's graded outcome (the queue
  they raised it to, their reason, when and who entered it). Kept apart from the
  grades so the protocol's outcome stays what the grades say and the raise is a
  visible, audited step on top of it.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "raised_outcomes",
        sa.Column("raise_id", sa.Integer, primary_key=True),
        sa.Column("encounter_id", sa.Text, sa.ForeignKey("encounters.encounter_id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("grader", sa.Text, nullable=False),
        sa.Column("queue", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("raised_at", sa.Text, nullable=False),
        sa.Column("recorded_by", sa.Text, nullable=False),
        sa.CheckConstraint("queue IN ('urgent', 'routine', 'review')", name="raised_outcomes_queue"),
        sa.CheckConstraint("length(reason) > 0", name="raised_outcomes_reason"),
        sa.UniqueConstraint("encounter_id", "grader", name="raised_outcomes_one_per_grader"),
    )


def downgrade() -> None:
    op.drop_table("raised_outcomes")
