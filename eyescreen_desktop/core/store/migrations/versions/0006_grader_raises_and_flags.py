"""A grader's raised outcome and staff's flags for a grader (issue 22): the outcome follows from the grades by the
clinic's protocol, and a grader may only raise it, with a reason.

* raised_outcomes: one grader's raise of one encounter's graded outcome (the queue
  they raised it to, their reason, when and who entered it). Kept apart from the
  grades so the protocol's outcome stays what the grades say and the raise is a
  visible, audited step on top of it;
* grading_flags: an encounter staff flagged for a grader (who, when, why), on the
  grading worklist until a grade settles it (``cleared_at``).

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

    op.create_table(
        "grading_flags",
        sa.Column("flag_id", sa.Integer, primary_key=True),
        sa.Column("encounter_id", sa.Text, sa.ForeignKey("encounters.encounter_id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("flagged_at", sa.Text, nullable=False),
        sa.Column("flagged_by", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=sa.text("''")),
        sa.Column("cleared_at", sa.Text),             # NULL while it waits for a grader
    )
    op.create_index("grading_flags_open", "grading_flags", ["encounter_id", "cleared_at"])


def downgrade() -> None:
    op.drop_index("grading_flags_open", table_name="grading_flags")
    op.drop_table("grading_flags")
    op.drop_table("raised_outcomes")
