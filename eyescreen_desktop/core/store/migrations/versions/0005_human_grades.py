"""Human grades: a second reader in the loop (issue 22).

* human_grades: one grader's reading of one eye of an encounter (ICDR 0-4, or NULL
  when the grader called it ungradable; maculopathy yes / no / not assessed; other
  findings; where the grade came from: the grading desk or a reading-centre
  import; whether it was a first read or an arbitration), one per grader and eye;
* encounter_grading: where the encounter stands with its human grades (final,
  arbitration pending, arbitrated), the AI's queue and the graders' outcome;
* qa_draws + qa_sample: the random quality-assurance draws of annual encounters,
  with their rate and seed, and every encounter each draw considered (drawn or
  not), so the sample can be audited and every graded eye weighed by 1/P(graded).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

QUEUES = "('urgent', 'routine', 'review', 'annual')"


def upgrade() -> None:
    op.create_table(
        "human_grades",
        sa.Column("grade_id", sa.Integer, primary_key=True),
        sa.Column("encounter_id", sa.Text, sa.ForeignKey("encounters.encounter_id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("eye", sa.Text, nullable=False),
        sa.Column("grader", sa.Text, nullable=False),
        sa.Column("icdr_grade", sa.Integer),          # NULL: the grader called the eye ungradable
        sa.Column("maculopathy", sa.Text, nullable=False, server_default=sa.text("'not_assessed'")),
        sa.Column("findings", sa.Text, nullable=False, server_default=sa.text("'[]'")),   # JSON list
        sa.Column("note", sa.Text, nullable=False, server_default=sa.text("''")),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("role", sa.Text, nullable=False, server_default=sa.text("'first'")),
        sa.Column("graded_at", sa.Text, nullable=False),
        sa.Column("recorded_by", sa.Text, nullable=False),  # who entered or imported it
        sa.CheckConstraint("eye IN ('L', 'R')", name="human_grades_eye"),
        sa.CheckConstraint("icdr_grade IS NULL OR (icdr_grade >= 0 AND icdr_grade <= 4)", name="human_grades_icdr"),
        sa.CheckConstraint("maculopathy IN ('yes', 'no', 'not_assessed')", name="human_grades_maculopathy"),
        sa.CheckConstraint("source IN ('desk', 'import')", name="human_grades_source"),
        sa.CheckConstraint("role IN ('first', 'arbitration')", name="human_grades_role"),
        sa.UniqueConstraint("encounter_id", "eye", "grader", name="human_grades_one_per_grader"),
    )
    op.create_table(
        "encounter_grading",
        sa.Column("encounter_id", sa.Text, sa.ForeignKey("encounters.encounter_id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("ai_queue", sa.Text, nullable=False),
        sa.Column("graded_queue", sa.Text, nullable=False),
        sa.Column("final_queue", sa.Text),            # NULL while arbitration is pending
        sa.Column("updated_at", sa.Text, nullable=False),
        sa.CheckConstraint("state IN ('final', 'arbitration_pending', 'arbitrated')", name="encounter_grading_state"),
        sa.CheckConstraint(f"ai_queue IN {QUEUES} AND graded_queue IN {QUEUES} AND "
                           f"(final_queue IS NULL OR final_queue IN {QUEUES})", name="encounter_grading_queues"),
    )
    op.create_table(
        "qa_draws",
        sa.Column("draw_id", sa.Integer, primary_key=True),
        sa.Column("drawn_at", sa.Text, nullable=False),
        sa.Column("drawn_by", sa.Text, nullable=False),
        sa.Column("rate", sa.Float, nullable=False),
        sa.Column("seed", sa.BigInteger, nullable=False),
        sa.Column("considered", sa.Integer, nullable=False),
        sa.Column("drawn", sa.Integer, nullable=False),
        sa.CheckConstraint("rate > 0 AND rate <= 1", name="qa_draws_rate"),
    )
    op.create_table(
        "qa_sample",
        sa.Column("encounter_id", sa.Text, sa.ForeignKey("encounters.encounter_id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("draw_id", sa.Integer, sa.ForeignKey("qa_draws.draw_id"), nullable=False),
        sa.Column("drawn", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    raise NotImplementedError("restore the backup copy made before the upgrade")
