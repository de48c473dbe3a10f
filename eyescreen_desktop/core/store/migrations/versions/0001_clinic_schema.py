"""The clinic schema as the hand-written list left it (schema 1-3; 4, the
external-eye check's results.modality and p_checkup; 5, the learned gate's
results.gate; 6, the queue views' index and store_meta), for SQLite and
PostgreSQL alike.

Dates and times are ISO text, as they always were in the SQLite file, so the
store's queries compare and sort them the same way on both engines.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

QUEUES = "('urgent', 'routine', 'review', 'annual')"


def _text(name: str, nullable: bool = True, default: str | None = None, **kw: object) -> sa.Column:
    return sa.Column(name, sa.Text, nullable=nullable,
                     server_default=sa.text(f"'{default}'") if default is not None else None, **kw)


def _id(name: str) -> sa.Column:
    return sa.Column(name, sa.Integer, primary_key=True, autoincrement=True)


def upgrade() -> None:
    op.create_table(
        "patients",
        _text("patient_id", primary_key=True),
        _text("name", False, ""), _text("birth_date"), _text("sex", False, ""), _text("diabetes_type", False, ""),
        sa.Column("diabetes_years", sa.Integer),
        _text("created_at", False), _text("updated_at", False), _text("search_text", False, ""),
    )
    op.create_table(
        "encounters",
        _text("encounter_id", primary_key=True),
        sa.Column("patient_id", sa.Text, sa.ForeignKey("patients.patient_id", onupdate="CASCADE"), nullable=False),
        _text("started_at", False), _text("protocol", False), _text("source", False), _text("batch_key"),
        _text("created_by", False),
        sa.CheckConstraint("source IN ('batch', 'desk')", name="encounters_source"),
    )
    op.create_index("encounters_patient", "encounters", ["patient_id", "started_at"])
    op.create_index("encounters_batch_patient", "encounters", ["batch_key", "patient_id"], unique=True,
                    sqlite_where=sa.text("batch_key IS NOT NULL"),
                    postgresql_where=sa.text("batch_key IS NOT NULL"))
    op.create_table(
        "images",
        _id("image_id"),
        _text("sha256", unique=True), _text("original_path", False), _text("stored_name"),
        sa.Column("size_bytes", sa.BigInteger), _text("added_at", False),
    )
    op.create_table(
        "encounter_images",
        _id("encounter_image_id"),
        sa.Column("encounter_id", sa.Text, sa.ForeignKey("encounters.encounter_id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("image_id", sa.Integer, sa.ForeignKey("images.image_id"), nullable=False),
        _text("eye", False), _text("original_path", False), _text("added_at", False),
        sa.CheckConstraint("eye IN ('L', 'R', '?')", name="encounter_images_eye"),
        sa.UniqueConstraint("encounter_id", "image_id"),
    )
    op.create_table(
        "results",
        _id("result_id"),
        sa.Column("encounter_image_id", sa.Integer,
                  sa.ForeignKey("encounter_images.encounter_image_id", ondelete="CASCADE"), nullable=False),
        sa.Column("encounter_id", sa.Text, sa.ForeignKey("encounters.encounter_id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("image_id", sa.Integer, sa.ForeignKey("images.image_id"), nullable=False),
        _text("model_name", False), _text("model_version", False), _text("model_sha", False),
        _text("protocol", False), _text("op_name"), _text("operating_point"), _text("status", False),
        sa.Column("grade", sa.Integer), _text("probabilities"),
        sa.Column("p_referable", sa.Float), sa.Column("p_urgent", sa.Float), sa.Column("p_maculopathy", sa.Float),
        _text("queue", False), _text("code", False, ""), _text("finding", False, ""), _text("message", False, ""),
        _text("quality_reasons", False, "[]"), _text("quality_advice"), _text("quality_metrics"),
        sa.Column("width", sa.Integer), sa.Column("height", sa.Integer),
        _text("created_at", False), _text("created_by", False),
        sa.Column("heatmap", sa.LargeBinary),
        _text("modality", False, "fundus"), sa.Column("p_checkup", sa.Float), _text("gate", False, ""),
        sa.CheckConstraint("status IN ('ok', 'ungradable', 'not_fundus', 'error')", name="results_status"),
        sa.CheckConstraint("grade BETWEEN 0 AND 4", name="results_grade"),
        sa.CheckConstraint(f"queue IN {QUEUES}", name="results_queue"),
        sa.CheckConstraint("status = 'ok' OR queue = 'review'", name="results_review_unless_ok"),
        sa.CheckConstraint("p_checkup IS NULL OR (p_checkup >= 0 AND p_checkup <= 1)", name="results_p_checkup"),
        sa.UniqueConstraint("encounter_image_id", "model_sha", "protocol"),
    )
    op.create_index("results_cache", "results", ["image_id", "model_sha", "protocol"])
    op.create_index("results_encounter", "results", ["encounter_id"])
    op.create_table(
        "queue_state",
        sa.Column("encounter_id", sa.Text, sa.ForeignKey("encounters.encounter_id", ondelete="CASCADE"),
                  primary_key=True),
        _text("queue", False), _text("due_date", False), _text("state", False, "open"),
        _text("slip_printed_at"), _text("override_queue"), _text("override_reason", False, ""),
        _text("override_due_date"), _text("updated_at", False), _text("slip_saved_at"),
        sa.Column("referred_without_slip", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.CheckConstraint(f"queue IN {QUEUES}", name="queue_state_queue"),
        sa.CheckConstraint("state IN ('open', 'referred', 'closed')", name="queue_state_state"),
        sa.CheckConstraint(f"override_queue IN {QUEUES}", name="queue_state_override"),
    )
    op.create_index("queue_state_due", "queue_state", ["state", "due_date"])
    op.create_index("queue_state_view", "queue_state", [sa.text("COALESCE(override_queue, queue)"), "state",
                                                        sa.text("COALESCE(override_due_date, due_date)")])
    op.create_table(
        "batches",
        _text("batch_key", primary_key=True),
        _text("started_at", False), _text("finished_at"), _text("protocol", False), _text("model_sha", False),
        _text("inputs", False),
    )
    op.create_table(
        "batch_files",
        sa.Column("batch_key", sa.Text, sa.ForeignKey("batches.batch_key"), primary_key=True),
        _text("file", primary_key=True),
        sa.Column("encounter_id", sa.Text, sa.ForeignKey("encounters.encounter_id"), nullable=False),
        sa.Column("result_id", sa.Integer, sa.ForeignKey("results.result_id"), nullable=False),
    )
    op.create_table(
        "audit_log",
        _id("audit_id"),
        _text("at", False), _text("user", False), _text("action", False), _text("entity", False),
        _text("details", False, "{}"),
    )
    op.create_index("audit_entity", "audit_log", ["entity", "audit_id"])
    op.create_table(
        "missing_eyes",
        sa.Column("encounter_id", sa.Text, sa.ForeignKey("encounters.encounter_id", ondelete="CASCADE"),
                  primary_key=True),
        _text("eye", primary_key=True), _text("reason", False), _text("note", False, ""),
        _text("recorded_at", False), _text("recorded_by", False),
        sa.CheckConstraint("eye IN ('L', 'R')", name="missing_eyes_eye"),
    )
    op.create_table(
        "watched_folders",
        _text("folder", primary_key=True), _text("since", False),
    )
    op.create_table(
        "store_meta",
        _text("key", primary_key=True), _text("value", False),
    )


def downgrade() -> None:
    raise NotImplementedError("restore the backup copy made before the upgrade")
