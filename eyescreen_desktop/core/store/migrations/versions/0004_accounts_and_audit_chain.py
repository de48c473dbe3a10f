"""Accounts, sign-in sessions and a tamper-evident audit log (issue 21).

* people: the clinic's accounts (never deleted: the audit log names them),
  argon2id password hashes, roles, disabled, failed sign-ins in a row and the
  lock-out that follows;
* sign_in_sessions: the SHA-256 of each session or service token (the token
  itself only lives in the signed-in person's data folder);
* audit_log.era, prev_hash, entry_hash: the hash chain (``store.chain``); the
  entries already there are kept, marked "before accounts" and chained;
* audit_head: the chain head kept apart, so entries removed from the end show.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from eyescreen_desktop.core.store.chain import BEFORE_ACCOUNTS, rechain
from eyescreen_desktop.core.store.engine import Db

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "people",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("roles", sa.Text, nullable=False),            # "nurse,grader"
        sa.Column("password_hash", sa.Text, nullable=False),    # argon2id, PHC string
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("password_set_at", sa.Text, nullable=False),
        sa.Column("disabled_at", sa.Text),
        sa.Column("failures", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("locked_until", sa.Text),
    )
    op.create_table(
        "sign_in_sessions",
        sa.Column("token_sha256", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, sa.ForeignKey("people.name"), nullable=False),
        sa.Column("kind", sa.Text, nullable=False),             # "person" | "service"
        sa.Column("workstation", sa.Text, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("expires_at", sa.Text),                       # NULL: a service token
        sa.Column("ended_at", sa.Text),
    )
    op.add_column("audit_log", sa.Column("era", sa.Text, nullable=False, server_default=sa.text("''")))
    op.add_column("audit_log", sa.Column("prev_hash", sa.Text, nullable=False, server_default=sa.text("''")))
    op.add_column("audit_log", sa.Column("entry_hash", sa.Text, nullable=False, server_default=sa.text("''")))
    op.create_table(
        "audit_head",
        sa.Column("head_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("entries", sa.Integer, nullable=False),
        sa.Column("last_hash", sa.Text, nullable=False),
    )
    db = Db(op.get_bind())
    db.execute("UPDATE audit_log SET era = ?", (BEFORE_ACCOUNTS,))
    rechain(db)


def downgrade() -> None:
    raise NotImplementedError("restore the backup copy made before the upgrade")
